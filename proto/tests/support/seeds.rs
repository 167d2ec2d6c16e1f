//! Replaying a committed seed corpus (`<crate>/fuzz/seeds/<target>/`, one input per file)
//! through the function its cargo-fuzz target calls. Shared by `proto/tests/fuzz_seeds.rs` and
//! `router/tests/fuzz_seeds.rs` (included by path: the two crates share no test crate).

use std::path::Path;

/// Runs every seed of `target` under `manifest_dir` through `check`; fails naming the first
/// seed that breaks it, or if there is none.
pub(crate) fn replay(
    manifest_dir: &str,
    target: &str,
    check: impl Fn(&[u8]) + std::panic::RefUnwindSafe,
) {
    let dir = Path::new(manifest_dir).join("fuzz/seeds").join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: seed {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "no seeds in {}", dir.display());
}
