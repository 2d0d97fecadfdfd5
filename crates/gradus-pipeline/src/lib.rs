//! The gradus pipeline runner: one TOML file names the stages (import, clean,
//! tokenizer, encode, examples, pretrain, finetune, multitask, eval), their configs and
//! which stage's output each reads (`@stage`); [`Plan::load`] resolves the graph and
//! [`run`] runs it, each stage a process of its binary with its own log.
//!
//! - **Concurrency**: stages run as soon as their upstreams finish; an encode stage whose
//!   input is another stage's dataset starts once that stage commits its first shard
//!   and follows the rest (`--follow`).
//! - **Incremental**: a stage is skipped when its last run finished with the same
//!   settings all the way up and read the same upstream outputs (see [`stamp`]);
//!   `force`, `from` and [`dry_run`] as `make -B` / `make -n`.
//! - **Checked first**: before any stage starts, every stage's binary checks its config
//!   and flags ([`check_configs`]), so a mistyped key refuses the run with nothing
//!   replaced.
//! - **Interrupts**: Ctrl-C stops the children; each stage's record stays `running`, so
//!   the next run resumes those stages from their partial outputs.
//!
//! ```
//! use gradus_pipeline::{PipelineFile, Plan};
//! let file: PipelineFile = toml::from_str(r#"
//!     [[stage]]
//!     name = "tokens"
//!     kind = "encode"
//!     input = ["@docs"]
//!     tokenizer = "tokenizer.json"
//!
//!     [[stage]]
//!     name = "docs"
//!     kind = "import"
//!     input = ["corpus.txt"]
//! "#).unwrap();
//! let plan = Plan::from_file(file, "p.toml".as_ref(), Some("runs/x".as_ref())).unwrap();
//! // Upstream first; encode follows the import's shards as they are committed.
//! assert_eq!(plan.stages[0].name, "docs");
//! assert_eq!(plan.stages[1].follows, Some(0));
//! assert!(plan.stages[1].args.contains(&"--follow".to_string()));
//! ```

mod error;
mod exec;
pub mod plan;
pub mod spec;
pub mod stamp;
mod summary;

pub use error::{PipelineError, Result};
pub use exec::{RunOptions, check_configs, command_line, dry_run, last_line, run};
pub use plan::{Plan, Stage};
pub use spec::{PipelineFile, StageKind, StageSpec};
pub use summary::{Outcome, RunReport, StageReport, key_figure};
