//! The restore target's server settings: `--server-setting KEY=VALUE`, the `[server]` table of
//! a plan file and `--server-settings-from DSN` give them; the disposable server is started
//! with them (`-c KEY=VALUE`), and after the restore the report reads back what the server
//! actually ran with. A restore's speed depends on them (shared_buffers, max_wal_size,
//! maintenance_work_mem…), so a drill on PostgreSQL's defaults measures another server's RTO.

use serde::{Deserialize, Serialize};

use crate::env_error::EnvError;
use crate::pg::Endpoint;

/// The settings that move a restore's time (or its durability), read back from the restore
/// target after every restore and listed in the report.
pub const RESTORE_RELEVANT: [&str; 10] = [
    "fsync",
    "synchronous_commit",
    "wal_level",
    "full_page_writes",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "work_mem",
];

/// What `--server-settings-from` never copies of the [`RESTORE_RELEVANT`] ones: a server
/// running without them is misconfigured, and a drill that copied them would measure a
/// restore faster than a durable replacement's: the RTO claimed must never be better than a
/// correctly configured server gives.
pub const NEVER_COPIED: [&str; 2] = ["fsync", "full_page_writes"];

/// What `--server-settings-from` copies: the restore-relevant settings but [`NEVER_COPIED`].
pub fn copied() -> impl Iterator<Item = &'static str> {
    RESTORE_RELEVANT
        .into_iter()
        .filter(|n| !NEVER_COPIED.contains(n))
}

/// Every parameter name PostgreSQL 12 to 17 accepts (lower case), besides the read-only ones
/// in [`READ_ONLY`]: a name outside both is a typo, told before anything starts.
const KNOWN: &str = "
allow_alter_system allow_in_place_tablespaces allow_system_table_mods application_name
archive_cleanup_command archive_command archive_library archive_mode archive_timeout
array_nulls authentication_timeout autovacuum autovacuum_analyze_scale_factor
autovacuum_analyze_threshold autovacuum_freeze_max_age autovacuum_max_workers
autovacuum_multixact_freeze_max_age autovacuum_naptime autovacuum_vacuum_cost_delay
autovacuum_vacuum_cost_limit autovacuum_vacuum_insert_scale_factor
autovacuum_vacuum_insert_threshold autovacuum_vacuum_scale_factor
autovacuum_vacuum_threshold autovacuum_work_mem backend_flush_after backslash_quote
backtrace_functions bgwriter_delay bgwriter_flush_after bgwriter_lru_maxpages
bgwriter_lru_multiplier bonjour bonjour_name bytea_output check_function_bodies
checkpoint_completion_target checkpoint_flush_after checkpoint_timeout checkpoint_warning
client_connection_check_interval client_encoding client_min_messages cluster_name
commit_delay commit_siblings commit_timestamp_buffers compute_query_id config_file
constraint_exclusion cpu_index_tuple_cost cpu_operator_cost cpu_tuple_cost
createrole_self_grant cursor_tuple_fraction data_directory data_sync_retry datestyle
db_user_namespace deadlock_timeout debug_discard_caches debug_io_direct
debug_logical_replication_streaming debug_parallel_query debug_pretty_print
debug_print_parse debug_print_plan debug_print_rewritten default_statistics_target
default_table_access_method default_tablespace default_text_search_config
default_toast_compression default_transaction_deferrable default_transaction_isolation
default_transaction_read_only dynamic_library_path dynamic_shared_memory_type
effective_cache_size effective_io_concurrency enable_async_append enable_bitmapscan
enable_gathermerge enable_group_by_reordering enable_hashagg enable_hashjoin
enable_incremental_sort enable_indexonlyscan enable_indexscan enable_material enable_memoize
enable_mergejoin enable_nestloop enable_parallel_append enable_parallel_hash
enable_partition_pruning enable_partitionwise_aggregate enable_partitionwise_join
enable_presorted_aggregate enable_seqscan enable_sort enable_tidscan escape_string_warning
event_source event_triggers exit_on_error extension_destdir external_pid_file
extra_float_digits force_parallel_mode from_collapse_limit fsync full_page_writes geqo
geqo_effort geqo_generations geqo_pool_size geqo_seed geqo_selection_bias geqo_threshold
gin_fuzzy_search_limit gin_pending_list_limit gss_accept_delegation hash_mem_multiplier
hba_file hot_standby hot_standby_feedback huge_page_size huge_pages icu_validation_level
ident_file idle_in_transaction_session_timeout idle_session_timeout ignore_checksum_failure
ignore_invalid_pages ignore_system_indexes intervalstyle io_combine_limit jit jit_above_cost
jit_debugging_support jit_dump_bitcode jit_expressions jit_inline_above_cost
jit_optimize_above_cost jit_profiling_support jit_provider jit_tuple_deforming
join_collapse_limit krb_caseins_users krb_server_keyfile lc_messages lc_monetary lc_numeric
lc_time listen_addresses lo_compat_privileges local_preload_libraries lock_timeout
log_autovacuum_min_duration log_checkpoints log_connections log_destination log_directory
log_disconnections log_duration log_error_verbosity log_executor_stats log_file_mode
log_filename log_hostname log_line_prefix log_lock_waits log_min_duration_sample
log_min_duration_statement log_min_error_statement log_min_messages log_parameter_max_length
log_parameter_max_length_on_error log_parser_stats log_planner_stats
log_recovery_conflict_waits log_replication_commands log_rotation_age log_rotation_size
log_startup_progress_interval log_statement log_statement_sample_rate log_statement_stats
log_temp_files log_timezone log_transaction_sample_rate log_truncate_on_rotation
logging_collector logical_decoding_work_mem logical_replication_mode
maintenance_io_concurrency maintenance_work_mem max_connections max_files_per_process
max_locks_per_transaction max_logical_replication_workers max_notify_queue_pages
max_parallel_apply_workers_per_subscription max_parallel_maintenance_workers
max_parallel_workers max_parallel_workers_per_gather max_pred_locks_per_page
max_pred_locks_per_relation max_pred_locks_per_transaction max_prepared_transactions
max_replication_slots max_slot_wal_keep_size max_stack_depth max_standby_archive_delay
max_standby_streaming_delay max_sync_workers_per_subscription max_wal_senders max_wal_size
max_worker_processes min_dynamic_shared_memory min_parallel_index_scan_size
min_parallel_table_scan_size min_wal_size multixact_member_buffers multixact_offset_buffers
notify_buffers old_snapshot_threshold operator_precedence_warning
parallel_leader_participation parallel_setup_cost parallel_tuple_cost password_encryption
plan_cache_mode port post_auth_delay pre_auth_delay primary_conninfo primary_slot_name
promote_trigger_file quote_all_identifiers random_page_cost recovery_end_command
recovery_init_sync_method recovery_min_apply_delay recovery_prefetch recovery_target
recovery_target_action recovery_target_inclusive recovery_target_lsn recovery_target_name
recovery_target_time recovery_target_timeline recovery_target_xid recursive_worktable_factor
remove_temp_files_after_crash reserved_connections restart_after_crash restore_command
restrict_nonsystem_relation_kind row_security scram_iterations search_path
send_abort_for_crash send_abort_for_kill seq_page_cost serializable_buffers
session_preload_libraries session_replication_role shared_buffers shared_memory_type
shared_preload_libraries ssl ssl_ca_file ssl_cert_file ssl_ciphers ssl_crl_dir ssl_crl_file
ssl_dh_params_file ssl_ecdh_curve ssl_key_file ssl_max_protocol_version
ssl_min_protocol_version ssl_passphrase_command ssl_passphrase_command_supports_reload
ssl_prefer_server_ciphers standard_conforming_strings statement_timeout
stats_fetch_consistency stats_temp_directory subtransaction_buffers summarize_wal
superuser_reserved_connections sync_replication_slots synchronize_seqscans
synchronized_standby_slots synchronous_commit synchronous_standby_names syslog_facility
syslog_ident syslog_sequence_numbers syslog_split_messages tcp_keepalives_count
tcp_keepalives_idle tcp_keepalives_interval tcp_user_timeout temp_buffers temp_file_limit
temp_tablespaces timezone timezone_abbreviations trace_connection_negotiation trace_notify
trace_recovery_messages trace_sort track_activities track_activity_query_size
track_commit_timestamp track_counts track_functions track_io_timing track_wal_io_timing
transaction_buffers transaction_deferrable transaction_isolation transaction_read_only
transaction_timeout transform_null_equals unix_socket_directories unix_socket_group
unix_socket_permissions update_process_title vacuum_buffer_usage_limit
vacuum_cleanup_index_scale_factor vacuum_cost_delay vacuum_cost_limit vacuum_cost_page_dirty
vacuum_cost_page_hit vacuum_cost_page_miss vacuum_defer_cleanup_age vacuum_failsafe_age
vacuum_freeze_min_age vacuum_freeze_table_age vacuum_multixact_failsafe_age
vacuum_multixact_freeze_min_age vacuum_multixact_freeze_table_age wal_buffers
wal_compression wal_consistency_checking wal_decode_buffer_size wal_init_zero
wal_keep_segments wal_keep_size wal_level wal_log_hints wal_receiver_create_temp_slot
wal_receiver_status_interval wal_receiver_timeout wal_recycle wal_retrieve_retry_interval
wal_sender_timeout wal_skip_threshold wal_summary_keep_time wal_sync_method wal_writer_delay
wal_writer_flush_after work_mem xmlbinary xmloption zero_damaged_pages
";

/// Parameters the server computes or fixes at initdb: never settable at start.
const READ_ONLY: [&str; 21] = [
    "block_size",
    "data_checksums",
    "data_directory_mode",
    "debug_assertions",
    "huge_pages_status",
    "in_hot_standby",
    "integer_datetimes",
    "lc_collate",
    "lc_ctype",
    "max_function_args",
    "max_identifier_length",
    "max_index_keys",
    "segment_size",
    "server_encoding",
    "server_version",
    "server_version_num",
    "shared_memory_size",
    "shared_memory_size_in_huge_pages",
    "ssl_library",
    "wal_block_size",
    "wal_segment_size",
];

/// Parameters pgdrill itself must decide for a disposable server, and why.
fn refused(name: &str) -> Option<&'static str> {
    Some(match name {
        "listen_addresses" | "port" | "unix_socket_directories" | "unix_socket_group"
        | "unix_socket_permissions" => {
            "pgdrill decides where a disposable server listens (127.0.0.1 on a free port, a socket directory of its own) and connects there"
        }
        "data_directory" | "config_file" | "hba_file" | "ident_file" | "external_pid_file" => {
            "a disposable server's files are the fresh cluster pgdrill made (or the image's), not a path on your servers"
        }
        "logging_collector" | "log_destination" => {
            "pgdrill reads the server's log on its stderr to tell a crashed server or a full disk from a bad backup"
        }
        n if READ_ONLY.contains(&n) => {
            "it is read-only: fixed when the cluster is made (initdb) or the server is built, never set at start"
        }
        _ => return None,
    })
}

/// Where a setting of the restore target came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingOrigin {
    /// pgdrill set nothing: the server's own value (PostgreSQL's default, the image's
    /// configuration file, or a named server's configuration).
    Default,
    /// `--server-setting` (or the plan file's `[server]` table).
    ServerSetting,
    /// Copied from the server `--server-settings-from` names.
    Copied,
}

impl SettingOrigin {
    /// How report.md and the console say it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingOrigin::Default => "default",
            SettingOrigin::ServerSetting => "--server-setting",
            SettingOrigin::Copied => "copied",
        }
    }
}

/// One parameter the restore target is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSetting {
    /// The parameter, lower case.
    pub name: String,
    /// The value as given (PostgreSQL checks it when the server starts).
    pub value: String,
    /// Who gave it.
    pub origin: SettingOrigin,
}

/// A `--server-setting` pgdrill refuses before anything starts (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// No `=`, or nothing before it.
    #[error("--server-setting {given}: expected KEY=VALUE, a PostgreSQL parameter and its value, e.g. --server-setting maintenance_work_mem=1GB")]
    NotAPair {
        /// What was given.
        given: String,
    },
    /// A name PostgreSQL does not know.
    #[error("--server-setting {given}: `{name}` is not a PostgreSQL parameter{hint}; the names are those `SHOW ALL` lists (an extension's own are written with its prefix, e.g. pg_stat_statements.max)")]
    Unknown {
        /// What was given.
        given: String,
        /// The name.
        name: String,
        /// `; did you mean …?`, or nothing.
        hint: String,
    },
    /// A parameter a disposable server cannot take from the user.
    #[error(
        "--server-setting {given}: {name} cannot be set on the restore target: {why}; drop it"
    )]
    Refused {
        /// What was given.
        given: String,
        /// The name.
        name: String,
        /// Why.
        why: &'static str,
    },
}

/// `KEY=VALUE` checked: a known, settable parameter (its name lower-cased), and its value.
pub fn parse_pair(given: &str) -> Result<(String, String), SettingError> {
    let Some((key, value)) = given.split_once('=') else {
        return Err(SettingError::NotAPair {
            given: given.into(),
        });
    };
    let name = key.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err(SettingError::NotAPair {
            given: given.into(),
        });
    }
    check_name(given, &name)?;
    Ok((name, value.trim().to_string()))
}

/// Whether `name` (lower case) may be given for the restore target; `given` is quoted in the
/// error.
pub fn check_name(given: &str, name: &str) -> Result<(), SettingError> {
    if let Some(why) = refused(name) {
        return Err(SettingError::Refused {
            given: given.into(),
            name: name.into(),
            why,
        });
    }
    let word = |w: &str| {
        !w.is_empty()
            && !w.starts_with(|c: char| c.is_ascii_digit())
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    // An extension's parameter (prefix.name) is one PostgreSQL accepts as a placeholder
    // until the extension loads; pgdrill cannot know every extension's names.
    let custom = name.contains('.') && name.split('.').all(word);
    if custom || KNOWN.split_whitespace().any(|k| k == name) {
        return Ok(());
    }
    let hint = nearest(name)
        .map(|n| format!("; did you mean {n}?"))
        .unwrap_or_default();
    Err(SettingError::Unknown {
        given: given.into(),
        name: name.into(),
        hint,
    })
}

/// The known name closest to `name` by edit distance, when it is close (a typo).
fn nearest(name: &str) -> Option<&'static str> {
    KNOWN
        .split_whitespace()
        .map(|k| (distance(k, name), k))
        .filter(|(d, _)| *d <= 2.max(name.len() / 5))
        .min()
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The settings the restore target starts with, in the order given; a name given twice
/// keeps its last value, as `postgres -c` would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSettings {
    /// Each parameter once.
    pub settings: Vec<ServerSetting>,
    /// The server `--server-settings-from` names, password as `***`, once its settings are
    /// copied.
    pub copied_from: Option<String>,
}

impl ServerSettings {
    /// Whether the target starts with PostgreSQL's (or the image's) own configuration.
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// Sets `name` (lower case) to `value`, replacing an earlier value of it.
    pub fn set(&mut self, name: String, value: String, origin: SettingOrigin) {
        self.settings.retain(|s| s.name != name);
        self.settings.push(ServerSetting {
            name,
            value,
            origin,
        });
    }

    /// Adds the settings copied from `from`; a parameter given with `--server-setting` wins.
    pub fn adopt_copied(&mut self, copied: Vec<(String, String)>, from: String) {
        for (name, value) in copied {
            if !self.settings.iter().any(|s| s.name == name) {
                self.set(name, value, SettingOrigin::Copied);
            }
        }
        self.copied_from = Some(from);
    }

    /// The one given for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&ServerSetting> {
        self.settings.iter().find(|s| s.name == name)
    }

    /// `name=value` for each, as `postgres -c` takes them.
    pub fn assignments(&self) -> Vec<String> {
        self.settings
            .iter()
            .map(|s| format!("{}={}", s.name, s.value))
            .collect()
    }

    /// The setting a server's start-up log blames (PostgreSQL names it: `invalid value for
    /// parameter "shared_buffers": "banana"`), with that line.
    pub fn blamed<'a>(&'a self, log: &str) -> Option<(&'a ServerSetting, String)> {
        log.lines().find_map(|line| {
            self.settings.iter().find_map(|s| {
                let quoted = format!("\"{}\"", s.name);
                (line.contains(&quoted) && line.to_ascii_lowercase().contains("parameter"))
                    .then(|| (s, line.trim().to_string()))
            })
        })
    }

    /// A server that would not start with these settings, as its error: the setting its log
    /// blames and PostgreSQL's own words, else `start` as it was (naming the settings).
    pub fn start_failed(&self, start: EnvError) -> EnvError {
        let reason = match start {
            EnvError::ServerStart { reason } if !self.is_empty() => reason,
            other => return other,
        };
        match self.blamed(&reason) {
            Some((s, said)) => EnvError::ServerSetting {
                setting: format!("{}={}", s.name, s.value),
                origin: match s.origin {
                    SettingOrigin::Copied => "copied by --server-settings-from",
                    o => o.as_str(),
                },
                said,
                log: reason,
            },
            None => EnvError::ServerStart {
                reason: format!(
                    "{reason}\n(the server was started with the settings {}; a value the server cannot honour, such as more shared_buffers than the machine has, stops it too)",
                    self.assignments().join(", ")
                ),
            },
        }
    }
}

/// One parameter as the server runs with it: `SHOW`'s value and `pg_settings.source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The parameter.
    pub name: String,
    /// Its value, as `SHOW` says it (`128MB`, `5min`).
    pub value: String,
    /// `pg_settings.source`: `default`, `configuration file`, `command line`…
    pub source: String,
}

/// The values of `names` on the server at `endpoint` (a superuser or any role: none of the
/// restore-relevant parameters is restricted), in the order of `names`; a name the server
/// does not know is left out.
pub async fn effective(endpoint: &Endpoint, names: &[String]) -> Result<Vec<Effective>, EnvError> {
    let client = endpoint.connect().await?;
    let rows = client
        .query(
            "SELECT lower(name), current_setting(name), source FROM pg_settings WHERE lower(name) = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| EnvError::Connect {
            target: endpoint.display(),
            reason: format!("reading its settings (pg_settings): {}", crate::pg::error_text(&e)),
        })?;
    let found: Vec<Effective> = rows
        .iter()
        .map(|r| Effective {
            name: r.get(0),
            value: r.get(1),
            source: r.get(2),
        })
        .collect();
    Ok(names
        .iter()
        .filter_map(|n| found.iter().find(|e| &e.name == n).cloned())
        .collect())
}

/// The [`copied`] settings of the live server at `endpoint`, read in a read-only session:
/// `name=value` pairs as `SHOW` gives them (units included, so `postgres -c` takes them as
/// they are). A `wal_level` of `minimal` brings `max_wal_senders` with it, which such a
/// server must have at 0 (PostgreSQL refuses to start otherwise).
pub async fn copy_from(endpoint: &Endpoint) -> Result<Vec<(String, String)>, EnvError> {
    let mut session = endpoint.clone();
    session.options = Some("-c default_transaction_read_only=on".into());
    let mut names: Vec<String> = copied().map(String::from).collect();
    names.push("max_wal_senders".into());
    let found = effective(&session, &names).await?;
    let minimal = found
        .iter()
        .any(|e| e.name == "wal_level" && e.value == "minimal");
    Ok(found
        .into_iter()
        .filter(|e| minimal || e.name != "max_wal_senders")
        .map(|e| (e.name, e.value))
        .collect())
}

/// The warning a restore target without `fsync` or `full_page_writes` earns: its restore
/// writes less and waits for no disk, so it is faster than a durable server's.
pub fn durability_warning(effective: &[Effective]) -> Option<String> {
    let off: Vec<&str> = effective
        .iter()
        .filter(|e| (e.name == "fsync" || e.name == "full_page_writes") && e.value == "off")
        .map(|e| e.name.as_str())
        .collect();
    (!off.is_empty()).then(|| {
        format!(
            "{} off on the restore target: the measured restore is faster than a durable server's, so the RTO measured is better than a correctly configured production server would see",
            off.join(" and ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_a_known_settable_parameter_and_its_value() {
        assert_eq!(
            parse_pair("Maintenance_Work_Mem = 512MB"),
            Ok(("maintenance_work_mem".into(), "512MB".into()))
        );
        assert_eq!(
            parse_pair("shared_preload_libraries=a=b"),
            Ok(("shared_preload_libraries".into(), "a=b".into()))
        );
        assert_eq!(
            parse_pair("pg_stat_statements.max=10000"),
            Ok(("pg_stat_statements.max".into(), "10000".into()))
        );
        let e = parse_pair("shared_buffers").unwrap_err();
        assert!(matches!(e, SettingError::NotAPair { .. }));
        assert!(e.to_string().contains("expected KEY=VALUE"), "{e}");
        assert!(matches!(
            parse_pair("=1GB"),
            Err(SettingError::NotAPair { .. })
        ));
        let e = parse_pair("shared_bufers=1GB").unwrap_err().to_string();
        assert!(
            e.contains("`shared_bufers` is not a PostgreSQL parameter"),
            "{e}"
        );
        assert!(e.contains("did you mean shared_buffers?"), "{e}");
        let e = parse_pair("no_such_thing_at_all=1")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("did you mean"), "{e}");
        for refused in [
            "port=5433",
            "listen_addresses=*",
            "data_directory=/x",
            "hba_file=/x",
            "unix_socket_directories=/tmp",
            "block_size=16384",
        ] {
            let e = parse_pair(refused).unwrap_err();
            assert!(matches!(e, SettingError::Refused { .. }), "{refused}: {e}");
        }
    }

    #[test]
    fn an_explicit_setting_wins_over_a_copied_one_and_the_last_value_wins() {
        let mut s = ServerSettings::default();
        s.set(
            "work_mem".into(),
            "8MB".into(),
            SettingOrigin::ServerSetting,
        );
        s.set(
            "work_mem".into(),
            "16MB".into(),
            SettingOrigin::ServerSetting,
        );
        s.adopt_copied(
            vec![
                ("work_mem".into(), "4MB".into()),
                ("shared_buffers".into(), "1GB".into()),
            ],
            "postgresql://u:***@db/x".into(),
        );
        assert_eq!(s.assignments(), ["work_mem=16MB", "shared_buffers=1GB"]);
        assert_eq!(
            s.get("shared_buffers").unwrap().origin,
            SettingOrigin::Copied
        );
        let log = "2026-12-06 FATAL:  invalid value for parameter \"shared_buffers\": \"banana\"";
        let (blamed, line) = s.blamed(log).unwrap();
        assert_eq!(blamed.name, "shared_buffers");
        assert!(line.contains("banana"));
    }

    #[test]
    fn fsync_or_full_page_writes_off_is_a_warning() {
        let e = |n: &str, v: &str| Effective {
            name: n.into(),
            value: v.into(),
            source: "command line".into(),
        };
        assert_eq!(
            durability_warning(&[e("fsync", "on"), e("work_mem", "off")]),
            None
        );
        let w = durability_warning(&[e("fsync", "off"), e("full_page_writes", "off")]).unwrap();
        assert!(w.starts_with("fsync and full_page_writes off"), "{w}");
        assert!(w.contains("faster than a durable server's"), "{w}");
    }
}
