//! Shared test fixtures: a scratch directory per test and the built binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `payrun` binary cargo built for this test run.
pub fn payrun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_payrun"))
}

/// The repository root, for `samples/`.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}
