//! Keeping the pool's other workers awake while a training stage runs.
//!
//! A training step is hundreds of short parallel ops (each matrix product, each fused
//! kernel) with a little serial work between them. Left to itself a rayon worker that
//! finds no work yields a few times and then sleeps on a futex, so the next op has to wake
//! it: on a virtual machine whose idle vCPU halts, that wake-up is an inter-processor
//! interrupt and a VM entry, and the op waits for it. OpenMP runtimes (what PyTorch uses)
//! avoid this by spinning between parallel regions for a while before sleeping. This does
//! the same for rayon: while [`crate::cli::on_worker`] runs its work, every other worker
//! runs a task that takes pool work as soon as it appears ([`rayon::yield_now`]), gives
//! the CPU to any other runnable thread every few looks (`sched_yield`, so concurrent
//! stages still share the cores), and after a stretch with no work naps in short sleeps,
//! so a long serial phase (a checkpoint write, an evaluation on one thread) costs next to
//! no CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a worker keeps looking for work without sleeping: longer than the serial
/// gaps inside a training step, short enough that an idle stage stops spinning quickly.
const SPIN_WITHOUT_WORK: Duration = Duration::from_millis(2);

/// The sleep between looks once a worker has been idle for [`SPIN_WITHOUT_WORK`].
const NAP: Duration = Duration::from_micros(200);

/// Ends the keep-awake tasks when dropped (also when the work panics).
pub(crate) struct Awake(Arc<AtomicBool>);

impl Drop for Awake {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Starts a keep-awake task on every pool worker but the calling one; they run until the
/// returned guard is dropped. Call from a pool worker.
pub(crate) fn keep_awake() -> Awake {
    let done = Arc::new(AtomicBool::new(false));
    let me = rayon::current_thread_index();
    if rayon::current_num_threads() > 1 {
        let stop = done.clone();
        rayon::spawn_broadcast(move |ctx| {
            // The caller's own copy returns at once: it must never spin under the work
            // it is waiting for.
            if Some(ctx.index()) != me {
                look_for_work(&stop);
            }
        });
    }
    Awake(done)
}

/// Looks for work between two `sched_yield`s: a look is a few hundred nanoseconds, the
/// system call more, and only the yield lets another process's thread in.
const LOOKS_PER_YIELD: u32 = 16;

fn look_for_work(done: &AtomicBool) {
    let mut idle_since = Instant::now();
    let mut looks = 0u32;
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Executed) = rayon::yield_now() {
            idle_since = Instant::now();
        } else if idle_since.elapsed() >= SPIN_WITHOUT_WORK {
            std::thread::sleep(NAP);
        } else {
            looks += 1;
            if looks.is_multiple_of(LOOKS_PER_YIELD) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awake_workers_run_parallel_work_and_stop_with_the_guard() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let (sum, stopped) = pool.install(|| {
            let guard = keep_awake();
            let flag = guard.0.clone();
            let sum: u64 = (0..10_000u64)
                .collect::<Vec<_>>()
                .par_chunks(100)
                .map(|c| c.iter().sum::<u64>())
                .sum();
            drop(guard);
            (sum, flag.load(Ordering::Acquire))
        });
        assert_eq!(sum, 49_995_000);
        assert!(stopped);
        // The other worker left its task: the pool runs a broadcast on both threads again.
        let seen = pool.broadcast(|ctx| ctx.index());
        assert_eq!(seen, vec![0, 1]);
    }

    use rayon::prelude::*;
}
