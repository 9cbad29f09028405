//! The pgdrill image scripts/build-images.sh builds: a whole drill runs inside it on the
//! native backend, and it says which pgdrill it holds.

use std::process::Command;

use super::{docker_or_skip, image_present};

const IMAGE: &str = "pgdrill/pgdrill:local";

#[test]
fn the_pgdrill_image_runs_a_native_drill_and_names_its_version_and_commit() {
    let test = "pgdrill image";
    if !docker_or_skip(test) {
        return;
    }
    if !image_present(IMAGE) {
        assert!(
            std::env::var("PGDRILL_REQUIRE_DOCKER").as_deref() != Ok("1"),
            "{IMAGE} is missing: scripts/build-images.sh builds it from target/release/pgdrill (scripts/setup.sh runs both)"
        );
        eprintln!("skipped: {test}: {IMAGE} is not built");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let run = Command::new("docker")
        .args(["run", "--rm", "-v"])
        .arg(format!("{}:/out", out.path().display()))
        .args([
            IMAGE,
            "drill",
            "--backend",
            "native",
            "--rows",
            "500",
            "--app",
            "none",
        ])
        .args(["--out", "/out/drill"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("drill/report.json")).unwrap())
            .unwrap();
    assert_eq!(report["verdict"], "pass", "{text}");
    assert_eq!(report["environment"]["backend"], "native");
    assert!(out.path().join("drill/SHA256SUMS").is_file());

    let labels = Command::new("docker")
        .args(["inspect", "--format", "{{json .Config.Labels}}", IMAGE])
        .output()
        .unwrap();
    let labels: serde_json::Value = serde_json::from_slice(&labels.stdout).unwrap();
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION"),
        "{labels}"
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision.len() == 40 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{labels}"
    );
}
