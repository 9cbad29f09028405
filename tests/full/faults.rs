//! Every fault of a full drill failing at its phase with its class: the configuration, the
//! code rollback (the sample app's and a user's), and the RPO writer.

use std::path::PathBuf;

use rstest::rstest;

use super::secrets::assert_no_secret;
use super::user::UserApp;
use super::{args, assert_failed_at, assert_failed_then, files_under, phase_names, FULL};
use crate::support::{Pgdrill, TestServer};

#[test]
fn a_required_key_missing_from_the_config_backup_fails_config_restore_naming_only_the_key() {
    let user = UserApp::new();
    let mut extra: Vec<String> = args(&[FULL]).into_iter().map(String::from).collect();
    extra.extend(user.config_args());
    extra.extend(["--require".into(), "NO_SUCH_KEY".into()]);
    let run = Pgdrill::drill(extra).run();
    let msg = assert_failed_at(&run, "config_restore", "backup_incomplete");
    assert!(msg.contains("required key NO_SUCH_KEY is missing"), "{msg}");
    assert_no_secret(&run, &user.secrets());
}

#[rstest]
#[case::tampered_archive(&["--fault", "config-tamper"], "config_restore", "backup_unusable", &["damaged or tampered with"])]
#[case::wrong_identity(&["--fault", "config-wrong-identity"], "config_restore", "backup_unusable", &["wrong identity", "was not encrypted to any key"])]
#[case::missing_tag(&["--rollback-to", "v9.9.9"], "code_rollback", "backup_incomplete", &["tag v9.9.9 does not exist", "v1.1.0", "of 3"])]
fn a_sample_app_fault_fails_at_its_phase(
    #[case] fault: &[&str],
    #[case] phase: &str,
    #[case] class: &str,
    #[case] names: &[&str],
) {
    let run = Pgdrill::drill(args(&[FULL, fault])).run();
    let msg = assert_failed_at(&run, phase, class);
    for n in names {
        assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
    }
}

/// What goes wrong with the user's application.
#[derive(Debug, Clone, Copy)]
enum UserFault {
    /// Its deploy command exits 7.
    DeployFails,
    /// Its deploy command deploys the working copy (the bad release at HEAD) where the app
    /// runs, not the checked-out release: the app reports another version.
    WrongReleaseDeployed,
    /// Its repository has an uncommitted file.
    DirtyRepo,
}

#[rstest]
#[case::deploy_fails(UserFault::DeployFails)]
#[case::wrong_release_deployed(UserFault::WrongReleaseDeployed)]
#[case::dirty_repo(UserFault::DirtyRepo)]
fn a_user_app_fault_fails_at_its_phase_naming_the_versions(#[case] fault: UserFault) {
    let user = UserApp::new();
    let app = match fault {
        UserFault::DeployFails => user.args(
            "$PGDRILL_DEPLOY_DIR",
            r#"echo "deploying $PGDRILL_RELEASE_TAG: no space left on the app server"; exit 7"#,
        ),
        UserFault::WrongReleaseDeployed => user.args(
            "${PGDRILL_DEPLOY_DIR:+$PGDRILL_DEPLOY_DIR/current}",
            &format!(
                r#"mkdir -p "$PGDRILL_DEPLOY_DIR/current" && cp '{}/release.env' "$PGDRILL_DEPLOY_DIR/current/""#,
                user.repo.display()
            ),
        ),
        UserFault::DirtyRepo => {
            std::fs::write(user.repo.join("hotfix.patch"), "--- a local change\n").unwrap();
            user.default_args()
        }
    };
    let before = user.state();
    let extra = args(&[FULL])
        .into_iter()
        .map(String::from)
        .chain(app)
        .collect::<Vec<_>>();
    let run = Pgdrill::drill(extra).run();
    let good = user.commit("v1.0.0");
    match fault {
        UserFault::DeployFails => {
            let msg = assert_failed_at(&run, "code_rollback", "restore_failed");
            for n in [
                "the deploy command for v1.0.0 failed (exit code 7)",
                "deploying v1.0.0: no space left on the app server",
            ] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
        }
        UserFault::WrongReleaseDeployed => {
            // The app was observed, so the checklist still runs: the wrong release is healthy.
            let msg = assert_failed_then(&run, "app_version", "restore_failed", &["checklist"]);
            for n in [
                "reports release v1.1.0",
                &format!("expected v1.0.0 at commit {good}"),
            ] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
            // The code was rolled back; the app just does not run it.
            assert_eq!(run.report()["rollback"]["to"]["tag"], "v1.0.0");
        }
        UserFault::DirtyRepo => {
            let msg = assert_failed_at(&run, "code_rollback", "restore_failed");
            for n in ["uncommitted changes", "hotfix.patch"] {
                assert!(msg.contains(n), "the failure must say {n:?}: {msg}");
            }
        }
    }
    assert_eq!(user.state(), before);
    assert_no_secret(&run, &user.secrets());
    user.assert_stopped();
}

#[test]
fn a_writer_that_cannot_write_is_an_environment_error_before_any_backup() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start("full-writer"));
    let db = rt.block_on(server.create_db("shop"));
    let dsn = format!("{} dbname={db}", server.dsn());
    let run = Pgdrill::drill([
        "--backend",
        "native",
        "--source-dsn",
        &dsn,
        "--writer-rate",
        "50",
    ])
    .run();
    let msg = assert_failed_at(&run, "writer_start", "environment");
    assert!(
        msg.contains("the RPO writer cannot write") && msg.contains("read-only"),
        "{msg}"
    );
    assert_eq!(
        phase_names(run.report())[..3],
        ["provision", "writer_start", "backup"]
    );
    // No backup was taken, and the source was not written to.
    let backup_dir = run.out.path().join("backup");
    let dumps: Vec<PathBuf> = if backup_dir.exists() {
        files_under(&backup_dir)
    } else {
        Vec::new()
    };
    assert!(dumps.is_empty(), "a backup was written: {dumps:?}");
    let schemas: i64 = rt.block_on(async {
        server
            .connect(&db)
            .await
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'pgdrill'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(
        schemas, 0,
        "the writer created its ledger on a read-only source"
    );
}
