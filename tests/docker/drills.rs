//! Drills on the docker backend: the same integrity snapshot as the native backend, server
//! loss that really removes a container, a failing drill that leaves nothing, `--backend auto`
//! over a live source, and a restore server that lacks an extension the dump needs.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::{
    assert_no_docker_leftovers, container_ids, docker, docker_or_skip, drill_id, image_present,
    phase, Sweep, DEFAULT_IMAGE, LOCAL_IMAGE,
};
use crate::support::{assert_mentions, leftovers, read_report, Pgdrill};

/// The integrity snapshot S0 recorded in a drill's manifest: per table (name, rows,
/// fingerprint) and the schema fingerprint.
fn manifest_snapshot(report: &Value) -> (Vec<(String, Value, Value)>, Value) {
    let path = report["backup"]["manifest"]
        .as_str()
        .expect("manifest path");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let s = &m["snapshot"];
    let tables = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["rows"].clone(),
                t["fingerprint"].clone(),
            )
        })
        .collect();
    (tables, s["schema"]["fingerprint"].clone())
}

fn wait_output(child: std::process::Child, out: &Path) -> (std::process::Output, Value) {
    let output = child.wait_with_output().unwrap();
    let report = read_report(out).unwrap_or_else(|| {
        panic!(
            "no report.json; output:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

#[test]
fn docker_drill_passes_and_matches_the_native_snapshot() {
    if !docker_or_skip("docker_drill_passes_and_matches_the_native_snapshot") {
        return;
    }
    let (docker_child, docker_out) =
        Pgdrill::drill(["--backend", "docker", "--seed", "7", "--app", "none"]).spawn();
    let (native_child, native_out) =
        Pgdrill::drill(["--backend", "native", "--seed", "7", "--app", "none"]).spawn();
    let (output, d) = wait_output(docker_child, docker_out.path());
    let _sweep = Sweep(drill_id(&d));
    let (native_output, n) = wait_output(native_child, native_out.path());
    for (o, r) in [(&output, &d), (&native_output, &n)] {
        assert_eq!(
            (o.status.code(), r["verdict"].as_str()),
            (Some(0), Some("pass")),
            "{} drill failed: {}\n{}",
            r["environment"]["backend"],
            r["failure"],
            String::from_utf8_lossy(&o.stderr)
        );
    }

    assert_eq!(d["environment"]["backend"], "docker");
    let provision = phase(&d, "provision")["detail"].as_str().unwrap();
    assert!(
        provision.starts_with("docker backend (requested): docker container "),
        "{provision}"
    );
    assert!(provision.contains("127.0.0.1:"), "{provision}");
    for tool in ["pg_dump", "pg_restore", "pg_amcheck"] {
        let v = d["environment"]["tools"][tool].as_str().unwrap_or_default();
        assert!(v.contains("(PostgreSQL) 15."), "{tool}: {v}");
    }
    for t in d["integrity"]["tables"].as_array().unwrap() {
        assert_eq!(t["match"], true, "{t}");
    }
    assert_eq!(d["integrity"]["tables"][3]["rows_after"], 300);

    // Same seed, same rows: the same data, byte for byte, whichever backend ran it.
    let (docker_tables, docker_schema) = manifest_snapshot(&d);
    let (native_tables, native_schema) = manifest_snapshot(&n);
    assert_eq!(docker_tables.len(), 5);
    assert_eq!(docker_tables, native_tables);
    assert!(docker_schema.is_string());
    assert_eq!(docker_schema, native_schema);

    // Server loss: the restore ran in a new container, and the old one is gone.
    let source = container_ids(provision);
    let disaster = phase(&d, "disaster")["detail"].as_str().unwrap();
    let replaced = phase(&d, "replace_server")["detail"].as_str().unwrap();
    let mut ids = container_ids(disaster);
    assert_eq!(source.len(), 1, "{provision}");
    assert_eq!(ids.first(), source.first(), "{disaster}");
    assert_eq!(ids.len(), 1, "{disaster}");
    ids.extend(container_ids(replaced));
    assert_eq!(ids.len(), 2, "{replaced}");
    assert_ne!(
        ids[1], source[0],
        "the restored database must live in a new container"
    );

    let id = drill_id(&d);
    assert_no_docker_leftovers(&id);
    assert!(leftovers(&drill_id(&n)).is_empty());
}

#[test]
fn a_failing_drop_db_drill_leaves_nothing() {
    if !docker_or_skip("a_failing_drop_db_drill_leaves_nothing") {
        return;
    }
    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--disaster",
        "drop-db",
        "--tamper-sql",
        "UPDATE users SET full_name = 'tampered' WHERE id = 2",
    ])
    .run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(
        r["failure"]["class"], "integrity_mismatch",
        "{}",
        r["failure"]
    );
    // drop-db: everything up to the restore passed inside the one running container.
    for p in [
        "provision",
        "seed",
        "backup",
        "disaster",
        "precheck",
        "roles",
        "createdb",
        "pg_restore",
        "analyze",
    ] {
        assert_eq!(
            phase(&r, p)["status"],
            "pass",
            "{p}: {}",
            phase(&r, p)["detail"]
        );
    }
    assert!(
        r["disaster"]["detail"]
            .as_str()
            .unwrap()
            .contains("dropped database"),
        "{}",
        r["disaster"]
    );
    assert_no_docker_leftovers(&id);
}

#[test]
fn auto_picks_docker_without_postgres_programs_and_dumps_a_live_source_with_the_image() {
    if !docker_or_skip(
        "auto_picks_docker_without_postgres_programs_and_dumps_a_live_source_with_the_image",
    ) {
        return;
    }
    // A live source (a native server started here), reached from a one-off container on the
    // host network, since this PATH offers docker and nothing of PostgreSQL.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = pgdrill::env::native::NativeBackend::discover("test-docker-auto").unwrap();
    let server = rt.block_on(backend.provision("external")).unwrap();
    let admin = server.endpoint.clone();
    rt.block_on(async {
        let c = admin.connect().await.unwrap();
        c.batch_execute("CREATE DATABASE shop").await.unwrap();
        let c = admin.with_db("shop").connect().await.unwrap();
        c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 120) g;")
            .await
            .unwrap();
    });
    let dsn = format!(
        "postgresql://postgres:{}@127.0.0.1:{}/shop",
        admin.password().unwrap(),
        admin.port
    );
    let bin = tempfile::tempdir().unwrap();
    let docker_bin = which("docker").expect("docker on PATH");
    std::os::unix::fs::symlink(docker_bin, bin.path().join("docker")).unwrap();

    let d = Pgdrill::new(["drill", "--source-dsn", &dsn, "--jobs", "2"])
        .env("PATH", &bin.path().display().to_string())
        .env("PGDRILL_PG_BINDIR", "/nonexistent");
    let out = d.out_dir().display().to_string();
    let run = d.push_arg("--out").push_arg(out).run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    run.assert_pass();
    let provision = phase(&r, "provision")["detail"].as_str().unwrap();
    assert!(
        provision.starts_with("docker backend (chosen by --backend auto)"),
        "{provision}"
    );
    assert_eq!(r["integrity"]["tables"][0]["rows_after"], 120);
    assert_no_docker_leftovers(&id);
    rt.block_on(server.destroy()).unwrap();
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A PostgreSQL image built from the local one in the test, without the hstore extension's
/// files: a restore server that lacks an extension the dump needs. Removed on drop.
struct ImageWithoutHstore(String);

impl ImageWithoutHstore {
    fn build() -> ImageWithoutHstore {
        let base = std::env::var("PGDRILL_POSTGRES_IMAGE")
            .ok()
            .filter(|i| image_present(i))
            .unwrap_or_else(|| {
                if image_present(DEFAULT_IMAGE) {
                    DEFAULT_IMAGE.into()
                } else {
                    LOCAL_IMAGE.into()
                }
            });
        let tag = format!(
            "pgdrill-test/postgres-without-hstore:{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let image = ImageWithoutHstore(tag);
        let dir = tempfile::tempdir().unwrap();
        // No pull: FROM a local image, and nothing fetched by the RUN.
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!(
                "FROM {base}\nRUN rm -f /usr/share/postgresql/*/extension/hstore* /usr/lib/postgresql/*/lib/hstore*\n"
            ),
        )
        .unwrap();
        let out = Command::new("docker")
            .args(["build", "--pull=false", "-q", "-t", &image.0])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        image
    }
}

impl Drop for ImageWithoutHstore {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "-f", &self.0]);
    }
}

#[test]
fn an_extension_missing_on_the_restore_server_fails_at_the_preflight_naming_it() {
    if !docker_or_skip(
        "an_extension_missing_on_the_restore_server_fails_at_the_preflight_naming_it",
    ) {
        return;
    }
    let image = ImageWithoutHstore::build();
    // The dump comes from a native server that has hstore (this machine's installation).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(crate::support::TestServer::start("hstore"));
    let db = rt.block_on(async {
        let db = server.create_db("hstore").await;
        server
            .connect(&db)
            .await
            .batch_execute(
                "CREATE EXTENSION hstore;
                 CREATE TABLE settings (id int PRIMARY KEY, attrs hstore);
                 INSERT INTO settings VALUES (1, 'a=>1, b=>2'), (2, 'colour=>blue');",
            )
            .await
            .unwrap();
        db
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("hstore.dump");
    server.pg_dump(&db, &dump);
    drop(server);

    let run = Pgdrill::drill([
        "--backend",
        "docker",
        "--app",
        "none",
        "--backup-file",
        dump.to_str().unwrap(),
    ])
    .env("PGDRILL_POSTGRES_IMAGE", &image.0)
    .run();
    let r = run.report().clone();
    let id = drill_id(&r);
    let _sweep = Sweep(id.clone());
    assert_eq!(run.code(), 1, "{}", run.text());
    assert!(
        r["phases"].to_string().contains(&image.0),
        "the drill ran on the derived image: {}",
        r["phases"]
    );
    let f = &r["failure"];
    assert_eq!(f["phase"], "roles", "{f}");
    let msg = f["message"].as_str().unwrap();
    assert_mentions(msg, &["\"hstore\"", "install the extension's package"]);
    assert_eq!(
        phase(&r, "pg_restore")["status"],
        "skipped",
        "{}",
        phase(&r, "pg_restore")
    );
    assert_no_docker_leftovers(&id);
    drop(image);
}
