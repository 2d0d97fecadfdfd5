//! The order in which a training stream reads a tokens dataset, epoch by epoch, as mosaic
//! streaming's block shuffles do for data larger than memory: the shards' order is
//! shuffled, the shuffled list is cut into blocks of [`BLOCK_SHARDS`], and what a block
//! holds (documents, windows) is shuffled together. Everything is a function of (seed,
//! epoch, block), so the order is the same for any thread count, a cursor is a position,
//! and memory holds one block whatever the dataset's size.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Shards whose contents are shuffled together (and held in memory together). The shards'
/// order is shuffled first, so a dataset grouped by source is mixed across sources within
/// a block and block by block across the epoch.
pub const BLOCK_SHARDS: usize = 8;

/// How a stream orders its epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochOrder {
    pub seed: u64,
    pub shuffle: bool,
    /// A followed dataset's first epoch is read as its shards arrive, in order; it is
    /// sealed before the second begins.
    pub follow: bool,
}

impl EpochOrder {
    /// Whether `epoch` is read in a shuffled order.
    pub fn shuffles(&self, epoch: u64) -> bool {
        self.shuffle && (!self.follow || epoch > 0)
    }

    /// Blocks in `epoch` of a dataset of `shards`: blocks of [`BLOCK_SHARDS`] when
    /// shuffling, else single shards.
    pub fn blocks(&self, epoch: u64, shards: usize) -> usize {
        if self.shuffles(epoch) {
            shards.div_ceil(BLOCK_SHARDS)
        } else {
            shards
        }
    }

    /// The shards of block `at` of `epoch`, in the order they are read.
    pub fn block_shards(&self, epoch: u64, at: usize, shards: usize) -> Vec<usize> {
        if !self.shuffles(epoch) {
            return if at < shards { vec![at] } else { Vec::new() };
        }
        let mut order: Vec<usize> = (0..shards).collect();
        order.shuffle(&mut self.rng(epoch, None));
        order
            .into_iter()
            .skip(at * BLOCK_SHARDS)
            .take(BLOCK_SHARDS)
            .collect()
    }

    /// A generator for `epoch`'s order: of its shards (`block` none) or of what block
    /// `block` holds. Unused when not shuffling.
    pub fn rng(&self, epoch: u64, block: Option<usize>) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch.wrapping_mul(1 << 32) + block.map_or(0, |b| b as u64 + 1));
        rng
    }

    /// Tokens skipped at the start of `epoch` (below `modulo`), so that each shuffled
    /// epoch cuts its windows at other places; 0 for the first epoch and in order.
    pub fn offset(&self, epoch: u64, modulo: u64) -> u64 {
        if epoch == 0 || !self.shuffles(epoch) || modulo == 0 {
            return 0;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        rng.set_stream(epoch.wrapping_mul(1 << 32) + (1 << 32) - 1);
        rng.random_range(0..modulo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_every_shard_once_in_a_seeded_order() {
        let order = EpochOrder {
            seed: 3,
            shuffle: true,
            follow: false,
        };
        let shards = 19;
        assert_eq!(order.blocks(1, shards), 3);
        let read: Vec<usize> = (0..3)
            .flat_map(|b| order.block_shards(1, b, shards))
            .collect();
        let mut sorted = read.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..shards).collect::<Vec<_>>());
        assert_ne!(
            read, sorted,
            "a shuffled epoch reads the shards out of order"
        );
        let next: Vec<usize> = (0..3)
            .flat_map(|b| order.block_shards(2, b, shards))
            .collect();
        assert_ne!(read, next, "each epoch has its own order");
    }

    #[test]
    fn in_order_and_a_followed_first_epoch_read_shard_by_shard() {
        let plain = EpochOrder {
            seed: 3,
            shuffle: false,
            follow: false,
        };
        assert_eq!(plain.blocks(4, 5), 5);
        assert_eq!(plain.block_shards(4, 2, 5), vec![2]);
        assert_eq!(plain.offset(4, 64), 0);
        let followed = EpochOrder {
            shuffle: true,
            follow: true,
            ..plain
        };
        assert_eq!(followed.block_shards(0, 2, 5), vec![2]);
        assert_eq!(followed.blocks(1, 5), 1);
    }
}
