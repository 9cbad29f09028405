//! Every output of a full drill searched for secrets: the user's canaries and the secrets
//! the drill generates for the sample app.

use super::files_under;
use crate::support::Run;

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything a drill wrote: its stdout, its stderr, and every file under `--out` (the
/// report files, the events, the backups, the configuration archive and its manifest, the
/// app's logs), each with its name.
fn outputs(run: &Run) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("stdout".to_string(), run.output.stdout.clone()),
        ("stderr".to_string(), run.output.stderr.clone()),
    ];
    for f in files_under(run.out.path()) {
        let name = f
            .strip_prefix(run.out.path())
            .unwrap()
            .display()
            .to_string();
        out.push((name, std::fs::read(&f).unwrap()));
    }
    out
}

/// The outputs `needle` appears in.
fn found_in(outputs: &[(String, Vec<u8>)], needle: &str) -> Vec<String> {
    outputs
        .iter()
        .filter(|(_, bytes)| contains(bytes, needle.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// No secret appears in any output; the messages never quote the secret itself.
pub(super) fn assert_no_secret(run: &Run, secrets: &[&str]) {
    let outputs = outputs(run);
    for (i, s) in secrets.iter().enumerate() {
        let found = found_in(&outputs, s);
        assert!(found.is_empty(), "secret #{i} appears in {found:?}");
    }
    // What was searched: everything a leak could end up in.
    let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
    for must in ["events.ndjson", "report.json", "report.md", "junit.xml"] {
        assert!(names.contains(&must), "no {must} in {names:?}");
    }
    for (prefix, suffix) in [
        ("backup/config/config_", ".tar.age"),
        ("backup/config/config_", ".manifest.json"),
        ("backup/backup_", ".dump"),
        ("app/", ".log"),
    ] {
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(prefix) && n.ends_with(suffix)),
            "no {prefix}*{suffix} in {names:?}"
        );
    }
    // The search sees what is there: the drill id is in the report, the events and the log.
    let id = run.report()["drill_id"].as_str().unwrap();
    let seen = found_in(&outputs, id);
    for must in ["stdout", "events.ndjson", "report.json"] {
        assert!(
            seen.iter().any(|n| n == must),
            "the drill id not found in {must}: {seen:?}"
        );
    }
}

/// Whether `bytes` holds `prefix` followed by `hex` hex digits, at the start of a word.
fn has_shaped(bytes: &[u8], prefix: &str, hex: usize) -> bool {
    let p = prefix.as_bytes();
    (0..bytes.len()).any(|i| {
        bytes[i..].starts_with(p)
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
            && bytes.len() >= i + p.len() + hex
            && bytes[i + p.len()..i + p.len() + hex]
                .iter()
                .all(u8::is_ascii_hexdigit)
    })
}

/// The sample app's configuration the drill writes holds secrets it generates: an API_KEY
/// `ak-<32 hex>`, a VPN_PEER `peer-<12 hex>`, and in DATABASE_URL the app role's password,
/// which the drill sets on each server. None of them appears in any output, and the role's
/// password is sent as a SCRAM verifier, never in clear in SQL (whose text debug logs show).
pub(super) fn assert_no_generated_secret(run: &Run) {
    let outputs = outputs(run);
    for (name, bytes) in &outputs {
        assert!(
            !has_shaped(bytes, "ak-", 32),
            "the sample API_KEY appears in {name}"
        );
        assert!(
            !has_shaped(bytes, "peer-", 12),
            "the sample VPN_PEER appears in {name}"
        );
        assert!(
            !contains(bytes, b"postgres://pgdrill_app:")
                && !contains(bytes, b"postgresql://pgdrill_app:"),
            "the sample DATABASE_URL with its password appears in {name}"
        );
    }
    let stderr = String::from_utf8_lossy(&run.output.stderr);
    let set: Vec<&str> = stderr
        .match_indices("PASSWORD '")
        .map(|(i, m)| &stderr[i + m.len()..])
        .collect();
    // Debug logs show the statements: the one setting the app role's password is among them.
    assert!(
        !set.is_empty(),
        "PGDRILL_LOG=debug shows no ALTER ROLE … PASSWORD"
    );
    for rest in set {
        assert!(
            rest.starts_with("SCRAM-SHA-256$"),
            "a role password is set in clear in SQL that the debug log shows"
        );
    }
}

/// The configuration manifest lists the key names of the backed-up files (never a value).
pub(super) fn config_manifest(run: &Run) -> String {
    let dir = run.out.path().join("backup/config");
    let m = files_under(&dir)
        .into_iter()
        .find(|f| f.to_string_lossy().ends_with(".manifest.json"))
        .expect("a config manifest");
    std::fs::read_to_string(m).unwrap()
}
