//! The library API from a crate outside this repository: a tiny crate that depends on pgdrill
//! by path writes the user guide's `cargo test` (docs/src/library.md) and runs it.

use std::path::Path;
use std::process::Command;

const TEST: &str = r#"
#[tokio::test(flavor = "multi_thread")]
async fn my_backup_restores() -> Result<(), pgdrill::Error> {
    let out = tempfile::tempdir().unwrap();
    let report = pgdrill::Drill::builder()
        .backend(pgdrill::BackendKind::Native)
        .rows(300)
        .seed(7)
        .app(pgdrill::AppChoice::None)
        .out(out.path())
        .run()
        .await?;
    assert!(report.passed(), "{}", report.summary());
    assert!(out.path().join("report.json").is_file());
    Ok(())
}
"#;

#[test]
#[ignore = "the outside crate's feature set rebuilds pgdrill's dependencies: about 5 minutes on 2 cores the first time; run with --run-ignored all"]
fn a_crate_outside_the_repository_runs_a_drill_in_its_own_cargo_test() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = tempfile::Builder::new()
        .prefix("pgdrill-test-user-crate-")
        .tempdir()
        .unwrap();
    std::fs::write(
        krate.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"user-drill\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
             [workspace]\n\n\
             [dependencies]\npgdrill = {{ path = {:?} }}\n\n\
             [dev-dependencies]\ntokio = {{ version = \"1\", features = [\"full\"] }}\ntempfile = \"3\"\n\n\
             [profile.dev.package.\"*\"]\nopt-level = 2\n",
            repo.display().to_string()
        ),
    )
    .unwrap();
    // The same versions as this repository: nothing to resolve offline, little to rebuild.
    std::fs::copy(repo.join("Cargo.lock"), krate.path().join("Cargo.lock")).unwrap();
    std::fs::create_dir_all(krate.path().join("src")).unwrap();
    std::fs::write(krate.path().join("src/lib.rs"), "").unwrap();
    std::fs::create_dir_all(krate.path().join("tests")).unwrap();
    std::fs::write(krate.path().join("tests/drill.rs"), TEST).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["test", "--offline", "--test", "drill"])
        .current_dir(krate.path())
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("my_backup_restores ... ok") && text.contains("1 passed"),
        "{text}"
    );
}
