//! Test support: where the shared real datasets are, and the rule for when they are not.
//!
//! Real data lives outside the repository, in `../shared/datasets/` beside the checkout
//! (override with `GRADUS_SHARED_DATASETS`). A test that needs it calls [`shared`]: it
//! gets the path, or `None` after a loud message on stderr so the test can return early.
//! Under `CI=true` a missing dataset is a failure, never a skip.
//!
//! ```
//! if let Some(path) = gradus_testkit::shared("tinyshakespeare/input.txt") {
//!     assert!(path.ends_with("input.txt"));
//! }
//! ```

use std::path::PathBuf;

/// The folder holding the shared datasets.
pub fn shared_root() -> PathBuf {
    std::env::var_os("GRADUS_SHARED_DATASETS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"),
        PathBuf::from,
    )
}

/// The path of `relative` inside the shared datasets, or `None` (announced loudly) when
/// it is absent. Panics when it is absent under `CI=true`.
pub fn shared(relative: &str) -> Option<PathBuf> {
    let path = shared_root().join(relative);
    if path.exists() {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(
        !ci,
        "shared dataset {} is missing, and CI=true forbids skipping",
        path.display()
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "\n*** SKIPPED: shared dataset {} is missing (set GRADUS_SHARED_DATASETS) ***\n",
            path.display()
        );
    }
    None
}
