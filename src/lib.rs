//! The gradus binaries' shared code: the CLI conventions every stage follows (`gradus
//! import` is `gradus_clean::import`; `inspect` and `verify` are `gradus_shard::inspect`).
//!
//! The stages themselves live in their own crates, each with its config, run and
//! summary (`gradus-clean`, `gradus-tokenize`, `gradus-pretrain`, `gradus-finetune` for
//! one task or several, `gradus-eval`); each binary parses its flags and calls into one.

/// Every gradus binary allocates through mimalloc, which keeps freed pages for reuse
/// instead of returning them to the OS (see ARCHITECTURE.md, "Training speed").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `purge_delay` option.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells the allocator never to hand freed memory back to the OS. By default mimalloc
/// purges pages that stay free for a while (1 s in mimalloc 3), and training steps then
/// fault their activations back in, zeroed by the kernel (ARCHITECTURE.md, "Measured",
/// has the cost).
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    // SAFETY: setting an allocator option is thread-safe and valid at any time; −1
    // means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

pub mod cli;
pub mod outputs;
mod workers;

#[cfg(test)]
mod tests {
    /// The option set is mimalloc's purge delay: 1,000 ms by default (unless a test in
    /// this process already set it), -1 after.
    #[test]
    #[allow(unsafe_code)]
    fn the_allocator_is_told_to_keep_freed_memory() {
        // SAFETY: reading an allocator option is thread-safe and valid at any time.
        let get = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert!(
            [1000, -1].contains(&get()),
            "option {} is not purge_delay",
            get()
        );
        super::keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
