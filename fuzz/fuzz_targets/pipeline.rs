#![no_main]
libfuzzer_sys::fuzz_target!(
    init: {
        // The shipped pipelines name the model cache and the shared datasets through these
        // variables; planning hashes what they point at (a 90 MB model), which would make
        // each run take seconds. Pointing them nowhere keeps the fuzzer on the parser.
        for var in ["HOME", "GRADUS_CACHE", "GRADUS_SHARED_DATASETS"] {
            // SAFETY: set once, before the fuzzer starts any thread.
            unsafe { std::env::set_var(var, "/nonexistent-gradus-fuzz") };
        }
    },
    |data: &[u8]| gradus_fuzz::pipeline(data)
);
