//! Where things are: the repository, the build output, the web page, the legacy page, axe-core
//! and the screenshots.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives in `<root>/e2e`; CARGO_MANIFEST_DIR locates source files, it is not
    // configuration.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target folder, found from the running test executable
/// (`<target>/<profile>/deps/<test>-<hash>`), so that `CARGO_TARGET_DIR` and `--release` are
/// honoured; `<root>/target` when that layout is not recognised.
pub fn target_dir() -> PathBuf {
    profile_dir()
        .and_then(|dir| dir.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The profile folder the tests were built into (`<target>/debug` for `cargo test`).
pub(crate) fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    deps.parent().map(Path::to_path_buf)
}

/// `<target>/e2e-screenshots`, created when missing.
///
/// # Errors
/// The folder cannot be created.
pub fn screenshot_dir() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("e2e-screenshots");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// The built web page (`trunk build` output), which the server serves at `/`.
pub fn web_page_dir() -> PathBuf {
    workspace_root().join("frontend").join("dist")
}

/// The legacy jQuery page, opened as a `file://` URL.
pub fn legacy_page_path() -> PathBuf {
    workspace_root()
        .join("e2e")
        .join("legacy")
        .join("jquery.html")
}

/// axe-core's browser build, installed by `npm install` in `e2e/axe` (scripts/setup.sh test).
pub fn axe_script_path() -> PathBuf {
    workspace_root()
        .join("e2e")
        .join("axe")
        .join("node_modules")
        .join("axe-core")
        .join("axe.min.js")
}
