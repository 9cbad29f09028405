//! A user-style application through the full drill: the same phases, its own files restored,
//! its release deployed by its script, nothing of it changed and no secret of it shown.

use chrono::Utc;
use clap::Parser;
use serde_json::json;

use super::secrets::{assert_no_generated_secret, assert_no_secret, config_manifest};
use super::user::{UserApp, USER_DEPLOY};
use super::{args, assert_nothing_left, phase_names, FULL, FULL_PHASES};
use crate::support::{Pgdrill, CADENCE};

/// The plan the command line makes of `extra` (for its planned phases).
fn plan_of(extra: &[String]) -> pgdrill::plan::Plan {
    let argv = ["pgdrill", "drill", "--rows", "300"]
        .into_iter()
        .map(String::from)
        .chain(extra.iter().cloned());
    let cli = pgdrill::cmd::Cli::try_parse_from(argv).expect("the flags parse");
    let pgdrill::cmd::Command::Drill(a) = cli.command else {
        unreachable!("a drill")
    };
    a.into_plan(Utc::now()).expect("a valid plan")
}

#[test]
fn a_user_style_application_goes_through_the_same_phases_and_is_left_unchanged() {
    let user = UserApp::new();
    let before = user.state();
    assert_eq!(before.status, "");
    let extra = args(&[FULL, CADENCE])
        .into_iter()
        .map(String::from)
        .chain(user.default_args())
        .collect::<Vec<_>>();
    let planned: Vec<&str> = pgdrill::drill::planned_phases(&plan_of(&extra))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(planned, FULL_PHASES);
    let run = Pgdrill::drill(extra).env("PGDRILL_LOG", "debug").run();
    let r = run.assert_pass();
    assert_eq!(phase_names(r), planned);
    for p in r["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "pass", "{p}");
    }

    // The user's own files, restored from the encrypted backup, with their keys checked.
    let c = &r["config"];
    assert_eq!(c["files"], json!([".env", "wg-office.conf"]));
    assert_eq!(
        c["required_keys"],
        json!(["API_KEY", "VPN_PEER", "PrivateKey"])
    );
    let checks = c["checks"].to_string();
    for want in [
        "wg-office.conf parses as a WireGuard config",
        "required key API_KEY is present and non-empty",
        "required key PrivateKey is present and non-empty",
    ] {
        assert!(checks.contains(want), "no check {want:?} in {checks}");
    }

    // The user's release before the one at HEAD, deployed by their script, reported by
    // their app (which runs only on the restored configuration and the deployed release).
    let rb = &r["rollback"];
    assert_eq!(rb["repository"], user.repo.display().to_string());
    assert_eq!(
        rb["from"],
        json!({"tag": "v1.1.0", "commit": user.commit("v1.1.0")})
    );
    assert_eq!(
        rb["to"],
        json!({"tag": "v1.0.0", "commit": user.commit("v1.0.0")})
    );
    assert_eq!(rb["reported"]["source"], "the version endpoint");
    assert_eq!(rb["reported"]["release"], "v1.0.0");
    assert_eq!(rb["reported"]["commit"], user.commit("v1.0.0"));
    assert!(run.phase("code_rollback")["detail"]
        .as_str()
        .unwrap()
        .contains(USER_DEPLOY));
    let rpo = &r["rpo"];
    assert_eq!(rpo["backups_taken"], 2);
    assert_eq!(
        rpo["lost_commits"].as_u64().unwrap(),
        rpo["acknowledged_commits"].as_u64().unwrap() - rpo["restored_commits"].as_u64().unwrap()
    );

    // Nothing of the user's changed: the repository (status, refs, HEAD, every byte and
    // mtime under it, .git included) and the configuration files.
    assert_eq!(user.state(), before);
    assert_no_secret(&run, &user.secrets());
    assert!(config_manifest(&run).contains("API_KEY"));
    user.assert_stopped();
    assert_nothing_left(r);
}

#[test]
fn no_secret_of_the_config_files_appears_in_any_output() {
    // The sample app on the user's configuration files: a canary API key and WireGuard
    // private key, with every log at debug.
    let user = UserApp::new();
    let before = user.state();
    let extra = args(&[FULL])
        .into_iter()
        .map(String::from)
        .chain(user.config_args())
        .collect::<Vec<_>>();
    let run = Pgdrill::drill(extra).env("PGDRILL_LOG", "debug").run();
    let r = run.assert_pass();
    assert_eq!(r["config"]["files"], json!([".env", "wg-office.conf"]));
    // The restarted sample app read the restored .env: it has no other API_KEY.
    assert_eq!(run.phase("app_healthy")["status"], "pass");
    assert_no_secret(&run, &user.secrets());
    assert_no_generated_secret(&run);
    // The manifest names the keys (so it is where a leak would show), never their values.
    let manifest = config_manifest(&run);
    for key in ["API_KEY", "VPN_PEER", "PrivateKey"] {
        assert!(manifest.contains(key), "{key} not in the manifest");
    }
    assert_eq!(user.state(), before);
    assert_nothing_left(r);
}
