//! Records the git commit pgdrill is built from (report.json's `record.pgdrill_commit`),
//! when it is built from a git checkout; a build from a source archive has none.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Tells cargo to run this again when `path` changes; a path that does not exist would
/// make cargo run it on every build.
fn watch(path: String) {
    if std::path::Path::new(&path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        // A new commit moves HEAD or the branch it names (or packed-refs after a gc).
        let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
            .unwrap_or(dir.clone());
        watch(format!("{dir}/HEAD"));
        watch(format!("{common}/packed-refs"));
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(format!("{common}/{r}"));
        }
    }
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        println!("cargo:rustc-env=PGDRILL_COMMIT={commit}");
    }
}
