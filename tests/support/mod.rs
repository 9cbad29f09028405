//! A small builder for running the real `pgdrill` binary, and helpers to look for leftovers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Rows for test drills: small, so the suite stays fast; large data belongs in benches.
pub const ROWS: &str = "300";

/// The compressed schedule: two backups two seconds apart, the disaster at a random moment
/// before a third one was due (so after the last backup, with commits lost).
pub const CADENCE: &[&str] = &[
    "--backup-every",
    "2s",
    "--backups",
    "2",
    "--disaster-at",
    "random",
];

/// The sample-app binary, beside pgdrill's. It is its own workspace member, so cargo does
/// not build it for pgdrill's tests: the first call in a test process runs `cargo build` for
/// it (a no-op when it is current), so a test never runs a stale build.
pub fn sample_app() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        // scripts/test.sh points this at the release build setup.sh has just made, so that
        // the suite does not build the sample app a second time.
        if let Some(p) = std::env::var_os("PGDRILL_SAMPLE_APP").map(PathBuf::from) {
            assert!(
                p.is_file(),
                "PGDRILL_SAMPLE_APP={} is not a file",
                p.display()
            );
            return p;
        }
        let dir = Path::new(env!("CARGO_BIN_EXE_pgdrill"))
            .parent()
            .expect("pgdrill has a directory");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args([
                "build",
                "--quiet",
                "-p",
                "sample-app",
                "--bin",
                "sample-app",
            ])
            .arg("--manifest-path")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .stdin(Stdio::null());
        if dir.ends_with("release") {
            cargo.arg("--release");
        }
        let out = cargo.output().expect("run cargo build for sample-app");
        assert!(
            out.status.success(),
            "cargo build -p sample-app failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = dir.join("sample-app");
        assert!(bin.is_file(), "no {} after cargo build", bin.display());
        bin
    })
}

/// Runs `pgdrill` with arguments, in a temp output dir.
pub struct Pgdrill {
    args: Vec<String>,
    env: Vec<(String, String)>,
    out: tempfile::TempDir,
}

/// What a run left: exit status, output, and the report when one was written.
pub struct Run {
    /// Process output.
    pub output: Output,
    /// The --out directory (kept alive while this value lives).
    pub out: tempfile::TempDir,
    /// report.json, parsed.
    pub report: Option<Value>,
}

impl Pgdrill {
    /// `pgdrill` with raw arguments.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(args: I) -> Self {
        Pgdrill {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            out: tempfile::Builder::new()
                .prefix("pgdrill-test-out-")
                .tempdir()
                .unwrap(),
        }
    }

    /// `pgdrill drill --rows ROWS --out <tmp>` plus `extra` (no `--rows` when `extra` names
    /// another source).
    pub fn drill<I: IntoIterator<Item = S>, S: Into<String>>(extra: I) -> Self {
        let extra: Vec<String> = extra.into_iter().map(Into::into).collect();
        let other_source = extra.iter().any(|a| {
            a == "--source-dsn"
                || a == "--backup-file"
                || a == "--repo"
                || a == "--pgbackrest-stanza"
        });
        let mut d = Pgdrill::new(["drill", "--jobs", "2"]);
        if !other_source {
            d.args.extend(["--rows".to_string(), ROWS.to_string()]);
        }
        d.args.extend(extra);
        let out = d.out.path().display().to_string();
        d.args.extend(["--out".to_string(), out]);
        d
    }

    /// [`Pgdrill::drill`] on the native backend without an app, plus `extra`.
    pub fn native<I: IntoIterator<Item = S>, S: Into<String>>(extra: I) -> Self {
        let mut args: Vec<String> = ["--backend", "native", "--app", "none"]
            .map(String::from)
            .to_vec();
        args.extend(extra.into_iter().map(Into::into));
        Pgdrill::drill(args)
    }

    /// Appends one argument.
    pub fn push_arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// The output directory.
    pub fn out_dir(&self) -> &Path {
        self.out.path()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pgdrill"));
        c.args(&self.args);
        // A test drill must not write into the CI job's page nor into the checkout's history.
        c.env_remove("GITHUB_STEP_SUMMARY");
        c.env("PGDRILL_HISTORY", self.out.path().join("history.ndjson"));
        // A test's own PGDRILL_SAMPLE_APP (below) still wins.
        c.env("PGDRILL_SAMPLE_APP", sample_app());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs to completion.
    pub fn run(self) -> Run {
        let output = self.command().output().expect("run pgdrill");
        let report = read_report(self.out.path());
        Run {
            output,
            out: self.out,
            report,
        }
    }

    /// Starts without waiting.
    pub fn spawn(self) -> (std::process::Child, tempfile::TempDir) {
        let child = self
            .command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pgdrill");
        (child, self.out)
    }
}

/// `pgdrill drill --backend BACKEND --app none --rows ROWS`, its temp dirs under `tmp`
/// (TMPDIR), started without waiting; returns the child and its --out directory.
pub fn spawn_drill(backend: &str, tmp: &Path, rows: &str) -> (Child, tempfile::TempDir) {
    let d = Pgdrill::new([
        "drill",
        "--backend",
        backend,
        "--app",
        "none",
        "--rows",
        rows,
    ])
    .env("TMPDIR", tmp.to_str().unwrap());
    let out = d.out_dir().display().to_string();
    d.push_arg("--out").push_arg(out).spawn()
}

/// The events in `out`/events.ndjson. A last line without its newline is still being
/// written and is left out; any other line must be JSON.
pub fn events(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("events.ndjson")).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits (up to 3 minutes) until the drill writing into `out` has finished `phase`; returns
/// its drill id.
pub fn wait_for_phase(out: &Path, phase: &str) -> String {
    let started = Instant::now();
    loop {
        let ev = events(out);
        if ev
            .iter()
            .any(|e| e["event"] == "phase_finished" && e["phase"] == phase)
        {
            return ev[0]["drill_id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "no {phase} yet: {ev:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills a drill with SIGKILL and waits (up to 30 s) until its servers, stopped by their
/// parent-death signal, are gone; asserts they are.
pub fn kill_drill(child: &mut Child, drill_id: &str) {
    child.kill().unwrap();
    child.wait().unwrap();
    let procs = || -> Vec<String> {
        leftovers(drill_id)
            .into_iter()
            .filter(|l| l.starts_with("process"))
            .collect()
    };
    let started = Instant::now();
    while !procs().is_empty() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(procs().is_empty(), "{:?}", procs());
}

/// A current-thread runtime for a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// report.json in `dir`, if present.
pub fn read_report(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join("report.json")).ok()?;
    Some(serde_json::from_str(&text).expect("report.json is JSON"))
}

impl Run {
    /// Exit code.
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// stdout + stderr, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// The report, which must exist.
    pub fn report(&self) -> &Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no report.json written; output:\n{}", self.text()))
    }

    /// Asserts exit code 0 and verdict pass, showing the failure otherwise.
    pub fn assert_pass(&self) -> &Value {
        let r = self.report();
        assert_eq!(
            (self.code(), r["verdict"].as_str()),
            (0, Some("pass")),
            "drill did not pass: failure={}\n{}",
            r["failure"],
            self.text()
        );
        r
    }

    /// The phase named `name`.
    pub fn phase(&self, name: &str) -> &Value {
        self.report()["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no phase {name}"))
    }

    /// The table names of the integrity section, in report order.
    pub fn integrity_tables(&self) -> Vec<String> {
        self.report()["integrity"]["tables"]
            .as_array()
            .expect("integrity tables")
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// The dump file written by this run.
    pub fn dump(&self) -> PathBuf {
        PathBuf::from(
            self.report()["backup"]["file"]
                .as_str()
                .expect("backup file"),
        )
    }
}

/// True when `program ARGS…` runs here; otherwise says why and skips (false), or fails when
/// `require` is set to 1 (CI), for the tests of a feature that drives a real backup tool.
pub fn tool_or_skip(program: &str, args: &[&str], require: &str, test: &str) -> bool {
    let installed = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return true;
    }
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{require}=1 but `{program}` is not installed (scripts/setup.sh installs it)");
    }
    eprintln!("skipped: {test}: `{program}` is not installed (scripts/setup.sh installs it)");
    false
}

/// Every file under `dir`, recursively, with its size: what a read-only test compares
/// before and after (a backup tool's repository a drill must not write).
pub fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, u64> {
    fn walk(dir: &std::path::Path, out: &mut std::collections::BTreeMap<std::path::PathBuf, u64>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p, m.len());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Postgres processes and temp dirs whose path names this drill: must be none after a drill.
pub fn leftovers(drill_id: &str) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                if cmd.contains(drill_id)
                    && (cmd.contains("postgres") || cmd.contains("sample-app"))
                {
                    found.push(format!(
                        "process {}: {cmd}",
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("pgdrill-") && name.contains(drill_id) {
                found.push(format!("dir {}", e.path().display()));
            }
        }
    }
    found
}

/// Copies a backup set (dump, manifest, globals) into `dir`, returning the new dump path.
pub fn copy_backup(dump: &Path, dir: &Path, with_manifest: bool) -> PathBuf {
    let stem = dump.file_name().unwrap();
    let new = dir.join(stem);
    std::fs::copy(dump, &new).unwrap();
    let g = dump.with_extension("globals.sql");
    std::fs::copy(&g, new.with_extension("globals.sql")).unwrap();
    if with_manifest {
        std::fs::copy(
            dump.with_extension("manifest.json"),
            new.with_extension("manifest.json"),
        )
        .unwrap();
    }
    new
}

/// Replaces hex fingerprints with `<hex>` and every other run of digits with `#`, so ports,
/// pids, durations, counters and data written by a live app do not make snapshots flaky while
/// the words around them still show what was checked.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() >= 8
            && word.chars().all(|c| c.is_ascii_hexdigit())
            && word.chars().any(|c| c.is_ascii_digit())
        {
            out.push_str("<hex>");
        } else {
            let mut in_digits = false;
            for c in word.chars() {
                if c.is_ascii_digit() {
                    if !in_digits {
                        out.push('#');
                    }
                    in_digits = true;
                } else {
                    in_digits = false;
                    out.push(c);
                }
            }
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    // A metric may print as `0` one run and `0.25` the next: a decimal is one number.
    while out.contains("#.#") {
        out = out.replace("#.#", "#");
    }
    out
}

/// One disposable native PostgreSQL server for one test. Dropping it (also when the test
/// panics) stops the server and removes its directory, so tests need no database clean-up.
pub struct TestServer {
    /// Superuser connection to the `postgres` database.
    pub endpoint: pgdrill::env::Endpoint,
    target: pgdrill::env::native::NativeTarget,
}

impl TestServer {
    /// Starts a fresh server; `tag` goes into its temp dir's name, to tell servers apart.
    pub async fn start(tag: &str) -> TestServer {
        let backend = pgdrill::env::native::NativeBackend::discover(&format!("test-{tag}"))
            .expect("PostgreSQL server programs (initdb, postgres) must be installed");
        let target = backend
            .provision("server")
            .await
            .unwrap_or_else(|e| panic!("cannot start a test server: {e}"));
        // Durability is worthless on a server that lives for one test, and syncing slows it.
        let admin = target
            .endpoint
            .connect()
            .await
            .expect("connect to the test server");
        for sql in [
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET synchronous_commit = off",
            "ALTER SYSTEM SET full_page_writes = off",
            "SELECT pg_reload_conf()",
        ] {
            admin
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("configure the test server ({sql}): {e}"));
        }
        TestServer {
            endpoint: target.endpoint.clone(),
            target,
        }
    }

    /// A key=value superuser DSN without a database: append ` dbname=…` to choose one.
    pub fn dsn(&self) -> String {
        let e = &self.endpoint;
        format!(
            "host={} port={} user={} password={}",
            e.host,
            e.port,
            e.user,
            e.password().unwrap_or_default()
        )
    }

    /// Starts a fresh server with one new database (named after `prefix`) built by `sql`;
    /// returns the server and the database's name.
    pub async fn with_db(tag: &str, prefix: &str, sql: &str) -> (TestServer, String) {
        let server = TestServer::start(tag).await;
        let db = server.create_db(prefix).await;
        server
            .connect(&db)
            .await
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("building {prefix}: {}", pgdrill::pg::error_text(&e)));
        (server, db)
    }

    /// A superuser session to `dbname` on this server.
    pub async fn connect(&self, dbname: &str) -> tokio_postgres::Client {
        self.endpoint
            .with_db(dbname)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to {dbname}: {e}"))
    }

    /// Creates an empty database named `<prefix>_<pid>_<n>`, unique in this test process,
    /// and returns its name.
    pub async fn create_db(&self, prefix: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        self.connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        name
    }

    /// `pg_dump -Fc` of `db` into `to`, as a user takes their own backup (no globals, no
    /// manifest); panics with pg_dump's message when it fails.
    pub fn pg_dump(&self, db: &str, to: &Path) {
        self.run_pg_dump(db, Some(to));
    }

    /// `pg_dump -Fc` of `db` to its stdout, as `pg_dump -Fc > file` takes it: an archive
    /// written into a pipe, without data offsets.
    pub fn pg_dump_piped(&self, db: &str) -> Vec<u8> {
        self.run_pg_dump(db, None)
    }

    /// [`TestServer::pg_dump`] with more of pg_dump's options (`-Z 0`, `--no-owner` …).
    pub fn pg_dump_with(&self, db: &str, to: &Path, options: &[&str]) {
        self.run_pg_dump_with(db, Some(to), options);
    }

    fn run_pg_dump(&self, db: &str, to: Option<&Path>) -> Vec<u8> {
        self.run_pg_dump_with(db, to, &[])
    }

    fn run_pg_dump_with(&self, db: &str, to: Option<&Path>, options: &[&str]) -> Vec<u8> {
        let mut cmd = self.client("pg_dump");
        cmd.args(options).args(["-Fc", "-d", db]);
        if let Some(to) = to {
            cmd.arg("-f").arg(to);
        }
        let out = cmd.output().expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump of {db}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A database for the sample app named after `prefix`: the fixtures' roles (the app role's
    /// password set to `app_password`, since the server authenticates with scram) and schema,
    /// no rows. Returns its name and a superuser session to it.
    pub async fn sample_app_db(
        &self,
        prefix: &str,
        app_password: &str,
    ) -> (String, tokio_postgres::Client) {
        let fixture = |f: &str| {
            std::fs::read_to_string(format!("{}/fixtures/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        };
        let admin = self.connect("postgres").await;
        admin.batch_execute(&fixture("roles.sql")).await.unwrap();
        admin
            .batch_execute(&format!("ALTER ROLE pgdrill_app PASSWORD '{app_password}'"))
            .await
            .unwrap();
        let name = self.create_db(prefix).await;
        let client = self.connect(&name).await;
        client.batch_execute(&fixture("schema.sql")).await.unwrap();
        (name, client)
    }

    /// A client program of the server's installation (pg_dump, pg_restore, pg_basebackup …)
    /// connecting to it as the superuser: `-h`, `-p`, `-U` given, the password in PGPASSWORD.
    pub fn client(&self, program: &str) -> std::process::Command {
        let e = &self.endpoint;
        let mut cmd = std::process::Command::new(self.program(program));
        cmd.args(["-h", &e.host, "-p", &e.port.to_string(), "-U", &e.user])
            .env("PGPASSWORD", e.password().unwrap_or_default());
        cmd
    }

    /// A PostgreSQL program (pg_dump, psql, …) of the same installation as the server.
    pub fn program(&self, name: &str) -> PathBuf {
        self.target.tools.program(name)
    }
}

/// A tmpfs mounted for one test (as root) and unmounted when dropped.
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts a tmpfs with mount options `opts` (e.g. `size=1m`, `ro`).
    pub fn mount(opts: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs needs root");
        Tmpfs(dir)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Runs `git` in `dir` with no user or system configuration and a fixed identity, and
/// returns its trimmed stdout; panics when it fails. Reads take no optional locks, so that
/// a test can check that nothing wrote into `.git`.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .arg("--no-optional-locks")
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "user")
        .env("GIT_AUTHOR_EMAIL", "user@example.invalid")
        .env("GIT_COMMITTER_NAME", "user")
        .env("GIT_COMMITTER_EMAIL", "user@example.invalid")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Asserts that `text` names every one of `needles`, showing the text when one is missing.
#[track_caller]
pub fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle} not in {text}");
    }
}

/// Copies the real backup `dump` into `repo` once per time, with manifests saying so.
pub fn synth(dump: &Path, repo: &Path, times: &[chrono::DateTime<chrono::Utc>]) -> Vec<PathBuf> {
    let db = repo.join("database");
    std::fs::create_dir_all(&db).unwrap();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(dump.with_extension("manifest.json")).unwrap(),
    )
    .unwrap();
    times
        .iter()
        .map(|t| {
            let new = db.join(pgdrill::backup::dump_file_name(*t));
            std::fs::copy(dump, &new).unwrap();
            std::fs::copy(
                dump.with_extension("globals.sql"),
                new.with_extension("globals.sql"),
            )
            .unwrap();
            let mut m = manifest.clone();
            m["file"] = new
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into();
            m["created_at"] = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true).into();
            std::fs::write(new.with_extension("manifest.json"), m.to_string()).unwrap();
            new
        })
        .collect()
}
