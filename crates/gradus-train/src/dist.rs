//! Data-parallel training: one process per device (started by `gradus-launch`), each a
//! *rank* that reads its own shards, computes gradients on them, and sums them with the
//! others before every update, so all ranks take the same step from the same weights.
//!
//! - Data: rank `r` of `w` reads shards `r, r + w, r + 2w, …` of the tokens dataset
//!   ([`RankShards`]), a disjoint, deterministic split; validation reads everything.
//! - Gradients: the [`Collective`] sums each gradient over the ranks (NCCL on GPUs,
//!   [`crate::nccl`]); losses are divided by the step's weight over all ranks, so the
//!   sum is the gradient of the global mean loss, as one process with the whole batch.
//! - Checkpoints: rank 0 writes them; each rank's data cursor and dropout generator go
//!   in rank 0's `trainer.json` (gathered through files in `checkpoints/.ranks/`), so a
//!   resumed run continues every rank where it stopped.
//!
//! The environment `gradus-launch` sets: `GRADUS_RANK`, `GRADUS_WORLD_SIZE`,
//! `GRADUS_NCCL_ID_FILE` (where rank 0 publishes the NCCL unique id).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Which shards a rank reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RankShards {
    pub rank: usize,
    pub world: usize,
}

impl RankShards {
    /// Whether shard `i` (its index in the manifest) is this rank's.
    pub fn owns(&self, shard: usize) -> bool {
        shard % self.world == self.rank
    }
}

/// This process's place among the ranks, from `gradus-launch`'s environment; `None`
/// when it runs alone.
pub fn rank_from_env() -> Result<Option<RankShards>> {
    let var = |name: &str| std::env::var(name).ok();
    let (Some(rank), Some(world)) = (var("GRADUS_RANK"), var("GRADUS_WORLD_SIZE")) else {
        return Ok(None);
    };
    let parse = |name: &str, v: &str| {
        v.parse::<usize>()
            .map_err(|_| TrainError::Config(format!("{name}={v:?} is not a number")))
    };
    let (rank, world) = (
        parse("GRADUS_RANK", &rank)?,
        parse("GRADUS_WORLD_SIZE", &world)?,
    );
    if world == 0 || rank >= world {
        return Err(TrainError::Config(format!(
            "GRADUS_RANK {rank} is not below GRADUS_WORLD_SIZE {world}"
        )));
    }
    Ok((world > 1).then_some(RankShards { rank, world }))
}

/// The file where rank 0 publishes the NCCL unique id, from `gradus-launch`.
pub fn nccl_id_file() -> Result<PathBuf> {
    std::env::var_os("GRADUS_NCCL_ID_FILE")
        .map(PathBuf::from)
        .ok_or_else(|| {
            TrainError::Config(
                "GRADUS_NCCL_ID_FILE is not set (start ranks with gradus-launch)".into(),
            )
        })
}

/// The collective operations data-parallel training needs.
pub trait Collective: Send + Sync + std::fmt::Debug {
    fn ranks(&self) -> RankShards;
    /// The element-wise sum of `t` over all ranks (every rank passes the same shape, in
    /// the same order of calls).
    fn sum(&self, t: &Tensor) -> Result<Tensor>;

    /// The sum of one number over all ranks.
    fn sum_scalar(&self, x: f64, device: &Device) -> Result<f64> {
        let t = Tensor::new(&[x as f32], device)?;
        Ok(f64::from(self.sum(&t)?.to_vec1::<f32>()?[0]))
    }

    /// Returns once every rank has called it.
    fn barrier(&self, device: &Device) -> Result<()> {
        self.sum_scalar(1.0, device).map(|_| ())
    }
}

/// Ranks as threads of one process, summing through shared memory: data-parallel
/// training on a CPU machine, and the tests' stand-in for NCCL. Sums add the ranks'
/// values in rank order, so every rank gets bit-identical results.
#[derive(Debug)]
pub struct ThreadCollective {
    ranks: RankShards,
    shared: Arc<ThreadShared>,
}

#[derive(Debug)]
struct ThreadShared {
    slots: Mutex<Vec<Vec<f32>>>,
    barrier: Barrier,
}

impl ThreadCollective {
    /// One collective per rank of a group of `world`.
    pub fn group(world: usize) -> Vec<Self> {
        let shared = Arc::new(ThreadShared {
            slots: Mutex::new(vec![Vec::new(); world]),
            barrier: Barrier::new(world),
        });
        (0..world)
            .map(|rank| Self {
                ranks: RankShards { rank, world },
                shared: shared.clone(),
            })
            .collect()
    }
}

impl Collective for ThreadCollective {
    fn ranks(&self) -> RankShards {
        self.ranks
    }

    fn sum(&self, t: &Tensor) -> Result<Tensor> {
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        let poisoned = || TrainError::Config("a rank thread panicked".into());
        self.shared.slots.lock().map_err(|_| poisoned())?[self.ranks.rank] = values;
        self.shared.barrier.wait();
        let sum = {
            let slots = self.shared.slots.lock().map_err(|_| poisoned())?;
            let mut sum = vec![0f32; slots[0].len()];
            for slot in slots.iter() {
                if slot.len() != sum.len() {
                    return Err(TrainError::Config(
                        "ranks summed tensors of different sizes".into(),
                    ));
                }
                sum.iter_mut().zip(slot).for_each(|(s, v)| *s += v);
            }
            sum
        };
        // Nobody overwrites a slot before everyone has read them all.
        self.shared.barrier.wait();
        Ok(Tensor::from_vec(sum, t.shape(), t.device())?)
    }
}

/// Where rank `r` leaves its state for rank 0's checkpoint.
pub(crate) fn rank_state_path(checkpoints: &Path, rank: usize) -> PathBuf {
    checkpoints.join(".ranks").join(format!("rank-{rank}.json"))
}

/// Waits for `path` to appear (rank 0 writing the NCCL id), up to `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration) -> Result<Vec<u8>> {
    let start = Instant::now();
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return Ok(bytes);
        }
        if start.elapsed() > timeout {
            return Err(TrainError::Config(format!(
                "{} did not appear within {timeout:?} (did rank 0 start?)",
                path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_split_the_shards_disjointly_and_completely() {
        let world = 3;
        let owners: Vec<Vec<usize>> = (0..10)
            .map(|shard| {
                (0..world)
                    .filter(|&rank| RankShards { rank, world }.owns(shard))
                    .collect()
            })
            .collect();
        assert!(owners.iter().all(|o| o.len() == 1));
        assert_eq!(owners[0], [0]);
        assert_eq!(owners[4], [1]);
        assert_eq!(owners[8], [2]);
    }
}
