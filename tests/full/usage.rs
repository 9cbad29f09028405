//! Every usage error of the full drill's flags names its flag, before anything starts.

use std::path::PathBuf;

use rstest::rstest;

use super::files_under;
use crate::support::Pgdrill;

#[rstest]
#[case::config_file_without_full(&["--config-file", "{file}"], &["--config-file", "--scope full"])]
#[case::require_without_full(&["--require", "API_KEY"], &["--require", "--scope full"])]
#[case::full_with_a_backup_file(&["--scope", "full", "--backup-file", "{file}"], &["--scope full", "--backup-file"])]
#[case::full_without_an_app(&["--scope", "full", "--app", "none"], &["--scope full", "--app none"])]
#[case::custom_app_without_code_repo(&["--scope", "full", "--app", "custom", "--app-start", "true", "--app-health-url", "http://127.0.0.1:9/health", "--config-file", "{file}"], &["--code-repo", "--deploy"])]
#[case::code_repo_without_deploy(&["--scope", "full", "--code-repo", "{dir}"], &["--code-repo needs --deploy"])]
#[case::deploy_without_code_repo(&["--scope", "full", "--deploy", "true"], &["--deploy needs --code-repo"])]
#[case::fault_without_full(&["--fault", "config-tamper"], &["--fault", "--scope full"])]
fn a_full_drill_usage_error_names_the_flag(#[case] flags: &[&str], #[case] names: &[&str]) {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join(".env");
    std::fs::write(&file, "API_KEY=k\n").unwrap();
    let flags: Vec<String> = flags
        .iter()
        .map(|f| {
            f.replace("{file}", &file.display().to_string())
                .replace("{dir}", &scratch.path().display().to_string())
        })
        .collect();
    let run = Pgdrill::drill(flags).run();
    assert_eq!(run.code(), 2, "{}", run.text());
    let err = String::from_utf8_lossy(&run.output.stderr);
    for n in names {
        assert!(err.contains(n), "the usage error must name {n:?}: {err}");
    }
    // Refused before anything started.
    assert!(run.report.is_none());
    assert_eq!(
        files_under(run.out.path()),
        Vec::<PathBuf>::new(),
        "{}",
        run.text()
    );
}
