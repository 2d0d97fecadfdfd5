//! The one training loop of gradus, shared by pretraining, fine-tuning and multi-task
//! training: a stage supplies an [`Objective`] (its data and its loss); the [`Trainer`]
//! does the rest.
//!
//! - Optimisers with saved state: [`optim::AdamW`] (decoupled weight decay, off for
//!   biases, norms and embeddings by default) and SGD with momentum.
//! - Schedules: constant, warmup + cosine or linear decay to a floor, warmup-stable-decay.
//! - Global-norm clipping; accumulation normalised by the tokens of the whole step; a
//!   non-finite loss or gradient stops the run with its step, keeping the last good
//!   checkpoint.
//! - Periodic evaluation, checkpoints every N steps keeping the last K and the best,
//!   early stopping; exact resume (model, optimiser, step, RNG and data cursor), so a
//!   resumed run's losses are bit-identical to an uninterrupted one's.
//! - Data-parallel training over several processes ([`dist`]; NCCL on GPUs behind the
//!   `nccl` feature).

mod checkpoint;
pub mod dist;
mod error;
mod logs;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod optim;
mod run_dir;
pub mod schedule;
mod stage_run;
mod throughput;
mod trainer;

pub use gradus_metrics::{Direction, Metric};

pub use checkpoint::{
    CHECKSUMS_FILE, Checkpoints, LogPositions, RankState, TrainerState, write_json,
};
pub use error::{Result, TrainError};
pub use gradus_record::{Best, RUN_RECORD, RunFacts, RunKind, RunRecord};
pub use logs::{Flush, SideLog};
pub use run_dir::{RunDir, RunEnd, RunSpec, TRAINING_OUTPUTS};
pub use stage_run::StageRun;
pub use throughput::StepTimes;
pub use trainer::{
    Objective, StepOutput, TrainConfig, TrainReport, Trainer, cursor_from_json, cursor_to_json,
};
