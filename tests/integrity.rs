//! Verification catches what a restore silently lost, and the integrity snapshot of a fixed
//! seed is pinned, so any change to seeding or fingerprinting shows up in review.

use rstest::rstest;

use crate::support::Pgdrill;

#[rstest]
#[case::rows_deleted(
    "DELETE FROM payments WHERE id IN (SELECT id FROM payments ORDER BY id LIMIT 3)",
    "public.payments",
    "rows"
)]
#[case::value_changed(
    "UPDATE users SET full_name = 'Mallory' WHERE id = 1",
    "public.users",
    "fingerprint"
)]
#[case::grant_lost("REVOKE INSERT ON payments FROM pgdrill_app", "pgdrill_app", "schema")]
#[case::index_lost("DROP INDEX payments_failed_idx", "payments_failed_idx", "schema")]
#[case::sequence_behind("SELECT setval('users_id_seq', 1)", "users_id_seq", "sequence")]
fn tampering_after_restore_fails_verification_naming_the_table(
    #[case] sql: &str,
    #[case] names: &str,
    #[case] metric: &str,
) {
    // No app: a restored app would now wait for health the tampered data may deny it.
    let run = Pgdrill::drill(["--backend", "native", "--app", "none", "--tamper-sql", sql]).run();
    assert_eq!(run.code(), 1, "{}", run.text());
    let r = run.report();
    assert_eq!(r["verdict"], "fail");
    assert_eq!(r["failure"]["phase"], "compare", "{}", r["failure"]);
    assert_eq!(r["failure"]["class"], "integrity_mismatch");
    let msg = r["failure"]["message"].as_str().unwrap();
    assert!(msg.contains(names), "diff must name {names}: {msg}");
    assert!(
        msg.to_lowercase().contains(metric),
        "diff must name the metric {metric}: {msg}"
    );
    assert_eq!(r["integrity"]["verdict"], "fail");
    assert_eq!(run.phase("tamper_hook")["status"], "pass");
}

#[test]
fn owners_grants_and_extensions_survive_server_loss() {
    let run = Pgdrill::drill(["--backend", "native", "--disaster", "server-loss"]).run();
    let r = run.assert_pass();
    // The comparison that passed covers owners, grants and extensions.
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.dump().with_extension("manifest.json")).unwrap(),
    )
    .unwrap();
    let objects: Vec<String> = manifest["snapshot"]["schema"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    let all = objects.join("\n");
    for needle in ["pgdrill_owner", "pgdrill_app", "citext", "pgcrypto"] {
        assert!(
            all.contains(needle),
            "schema snapshot lacks {needle}:\n{all}"
        );
    }
    assert_eq!(r["integrity"]["schema"]["match"], true);
    assert!(run.phase("roles")["detail"]
        .as_str()
        .unwrap()
        .contains("replayed"));
}

#[test]
fn integrity_snapshot_of_a_fixed_seed_is_stable() {
    // No app: it writes during the backup, which S0 captures exactly but not reproducibly.
    let run = Pgdrill::drill(["--backend", "native", "--seed", "2026", "--app", "none"]).run();
    run.assert_pass();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.dump().with_extension("manifest.json")).unwrap(),
    )
    .unwrap();
    insta::assert_json_snapshot!("integrity_seed_2026_rows_300", manifest["snapshot"], {
        ".server_version" => "[server_version]",
        ".database" => "[database]",
        ".taken_at" => "[timestamp]",
    });
}
