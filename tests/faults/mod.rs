//! The fault table of issue 19: each row a real fault injected into a real drill or backup,
//! and the verdict pgdrill must give (class, exit code, what is named, what is left behind).
//! The long rows run only with `PGDRILL_FAULTS=long` (the monthly workflow sets it).
//!
//! | fault | test |
//! |---|---|
//! | `kill -9` of pg_restore | `lost_server::kill_9_of_pg_restore_is_a_failed_restore_naming_the_signal` |
//! | target postmaster killed in pg_restore, snapshot, amcheck | `lost_server::the_target_s_postmaster_killed_is_a_lost_server_not_the_backup_s_fault` |
//! | source killed mid-dump | `lost_server::a_source_killed_mid_dump_fails_the_backup_and_leaves_no_partial_file` |
//! | source connection frozen mid-dump (drill, `backup`) | `hang::drill_from_a_source_frozen_mid_dump_…`, `hang::backup_from_a_source_frozen_mid_dump_…` |
//! | disk full in the repo | `regime::backup_faults_are_environment_errors_with_clear_messages` |
//! | disk full in `--out` | `disk_full::a_full_out_dir_is_an_environment_error_naming_the_file` |
//! | disk full in the target's data dir | `drill::a_full_disk_during_pg_restore_is_an_environment_error_naming_the_directory` |
//! | disk full during seeding | `disk_full::a_full_disk_while_seeding_names_the_path_and_not_the_schema` |
//! | SIGTERM in each phase in turn | `signals::sigterm_in_each_phase_of_a_drill_…` (the full drill's: long) |
//! | SIGTERM while waiting for the repo lock | `hang::backup_behind_a_held_repo_lock_names_the_holder_gives_up_and_exits_3_on_sigterm` |
//! | `kill -9` of pgdrill, then `pgdrill clean` | `leftovers::clean_removes_what_a_killed_drill_left_and_never_a_live_drills_dirs` (docker: `leftovers::clean_removes_the_containers_and_network_of_a_killed_docker_drill`) |
//! | `kill -9` of `pgdrill backup`, then `verify`, `clean --repo` | `repo::kill_9_of_a_backup_leaves_a_temp_file_that_verify_names_and_clean_repo_removes` |
//! | 4 backup loops + prune + verify + audit verify | `repo::four_backup_loops_with_prune_verify_and_audit_lose_nothing` (10 s; 60 s long) |

mod disk_full;
mod hang;
mod lost_server;
mod repo;
mod signals;

/// Whether the long fault rows run (`PGDRILL_FAULTS=long`).
#[allow(dead_code)]
pub fn long() -> bool {
    std::env::var("PGDRILL_FAULTS").is_ok_and(|v| v == "long")
}
