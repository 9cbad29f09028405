//! A source whose connection freezes mid-dump (a stalled proxy, a dead NAT entry: no RST,
//! the kernel still ACKs) and a backup waiting behind the repo lock: pgdrill ends with a
//! clear `environment` error (exit 3) within its timeouts, releases the lock and leaves no
//! session of its own on the source.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{runtime, Pgdrill, TestServer};

/// What the tests dump: tens of megabytes of rows, so that the server is still sending when
/// the relay freezes, whatever the socket buffers hold.
const BIG: &str = "CREATE TABLE big AS
    SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 200000) g;";

/// The relay freezes its open connections once this many bytes came from the server.
const FREEZE_AFTER: u64 = 2 << 20;

/// A whole pgdrill run against a frozen source must end within this (the stall timeout the
/// tests pass is 3 s; the rest is start-up, seeding nothing, and a loaded machine).
const BOUND: Duration = Duration::from_secs(180);

/// A userspace TCP relay on loopback in front of a server. Once `FREEZE_AFTER` bytes came
/// down, every connection open at that moment freezes: nothing more is read or forwarded
/// either way, but both sockets stay open (the kernel keeps ACKing, so TCP keepalives see a
/// live peer). Connections made after the freeze are relayed normally, as through a NAT
/// whose old entries died.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    frozen_once: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
    threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(upstream_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let frozen_once = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
        let down = Arc::new(AtomicU64::new(0));
        let acceptor = {
            let (stop, frozen_once, conns, threads) = (
                stop.clone(),
                frozen_once.clone(),
                conns.clone(),
                threads.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    client.set_nonblocking(false).unwrap();
                    let server = TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
                    let frozen = Arc::new(AtomicBool::new(false));
                    conns.lock().unwrap().push(frozen.clone());
                    let freeze_all = {
                        let (conns, frozen_once) = (conns.clone(), frozen_once.clone());
                        move || {
                            if !frozen_once.swap(true, Ordering::SeqCst) {
                                for c in conns.lock().unwrap().iter() {
                                    c.store(true, Ordering::SeqCst);
                                }
                            }
                        }
                    };
                    let mut t = threads.lock().unwrap();
                    for (from, to, counts) in [
                        (
                            client.try_clone().unwrap(),
                            server.try_clone().unwrap(),
                            false,
                        ),
                        (server, client, true),
                    ] {
                        let (stop, frozen, down, freeze_all) = (
                            stop.clone(),
                            frozen.clone(),
                            down.clone(),
                            freeze_all.clone(),
                        );
                        t.push(std::thread::spawn(move || {
                            pump(
                                from,
                                to,
                                &stop,
                                &frozen,
                                counts.then_some(&*down),
                                freeze_all,
                            )
                        }));
                    }
                }
            })
        };
        Relay {
            port,
            stop,
            frozen_once,
            conns,
            threads,
            acceptor: Some(acceptor),
        }
    }

    fn frozen(&self) -> bool {
        self.frozen_once.load(Ordering::SeqCst)
            && self
                .conns
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.load(Ordering::SeqCst))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        for t in self.threads.lock().unwrap().drain(..) {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` until EOF or stop; while frozen, reads nothing and writes nothing.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    stop: &AtomicBool,
    frozen: &AtomicBool,
    down: Option<&AtomicU64>,
    freeze_all: impl Fn(),
) {
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = vec![0u8; 16 << 10];
    while !stop.load(Ordering::SeqCst) {
        if frozen.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
                if let Some(down) = down {
                    if down.fetch_add(n as u64, Ordering::SeqCst) + n as u64 >= FREEZE_AFTER {
                        freeze_all();
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// A source server with the big table, and a relay in front of it.
fn frozen_source(tag: &str) -> (TestServer, String, Relay) {
    let rt = runtime();
    let (server, db) = rt.block_on(TestServer::with_db(tag, "hang", BIG));
    let relay = Relay::start(server.endpoint.port);
    (server, db, relay)
}

/// `host=… port=<relay> user=… password=… dbname=…`.
fn relay_dsn(server: &TestServer, relay: &Relay, db: &str) -> String {
    let direct = server.dsn();
    let port = format!("port={}", server.endpoint.port);
    assert!(direct.contains(&port), "{direct}");
    format!(
        "{} dbname={db}",
        direct.replace(&port, &format!("port={}", relay.port))
    )
}

/// Sessions pgdrill (or a program it ran) has on `server`, other than the asking one.
fn pgdrill_sessions(server: &TestServer) -> Vec<String> {
    runtime().block_on(async {
        let c = server.connect("postgres").await;
        c.query(
            "SELECT pid::text || ' ' || application_name || ' ' || coalesce(state, '') FROM pg_stat_activity
             WHERE application_name LIKE 'pgdrill%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    })
}

/// Polls until pgdrill has no session left on `server` (the server's own bounds on them run
/// out within a minute); asserts it.
fn assert_no_session_left(server: &TestServer) {
    let started = Instant::now();
    let mut left = pgdrill_sessions(server);
    while !left.is_empty() && started.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
        left = pgdrill_sessions(server);
    }
    assert!(
        left.is_empty(),
        "pgdrill's sessions left on the source: {left:?}"
    );
}

/// Waits for `child` to end, at most `limit`; kills it and fails the test when it does not.
fn wait_bounded(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            let out = rx.recv().unwrap().unwrap();
            panic!(
                "pgdrill (pid {pid}) still running after {limit:?}: it hangs on the frozen source\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn backup(dsn: &str, repo: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgdrill"));
    c.args(["backup", "--source-dsn", dsn, "--repo"])
        .arg(repo)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn audit_lines(repo: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(repo.join("audit.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn backup_from_a_source_frozen_mid_dump_stops_at_the_stall_timeout_and_releases_the_lock() {
    let (server, db, relay) = frozen_source("hang-backup");
    let repo = tempfile::tempdir().unwrap();
    let dsn = relay_dsn(&server, &relay, &db);
    let child = backup(&dsn, repo.path(), &["--stall-timeout", "3s"])
        .spawn()
        .unwrap();
    let out = wait_bounded(child, BOUND);
    let said = text(&out);
    assert!(relay.frozen(), "the relay never froze: {said}");
    assert_eq!(out.status.code(), Some(3), "{said}");
    for needle in ["stopped answering", "--stall-timeout"] {
        assert!(said.contains(needle), "no `{needle}` in: {said}");
    }
    // The freeze lands in pg_dump's stream, or (a loaded machine runs pg_dump behind the
    // snapshot) in the snapshot's queries once pg_dump is done.
    assert!(
        said.contains("pg_dump wrote no byte") || said.contains("integrity snapshot"),
        "no stall point in: {said}"
    );
    assert!(
        !said.contains(server.endpoint.password().unwrap()),
        "{said}"
    );
    assert_no_session_left(&server);
    let failed = audit_lines(repo.path());
    assert!(
        failed
            .iter()
            .any(|e| e["result"] == "failed"
                && e["detail"].to_string().contains("stopped answering")),
        "{failed:?}"
    );

    // The lock is free at once: a backup straight from the source does not wait.
    let direct = format!("{} dbname={db}", server.dsn());
    let second = wait_bounded(
        backup(&direct, repo.path(), &["--lock-timeout", "0s"])
            .spawn()
            .unwrap(),
        BOUND,
    );
    assert_eq!(second.status.code(), Some(0), "{}", text(&second));
    let dumps: Vec<_> = std::fs::read_dir(repo.path().join("database"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump") && !n.starts_with('.'))
        .collect();
    assert_eq!(
        dumps.len(),
        1,
        "only the second backup is a dump: {dumps:?}"
    );
    drop(relay);
}

#[test]
fn drill_from_a_source_frozen_mid_dump_is_an_environment_failure_within_the_stall_timeout() {
    let (server, db, relay) = frozen_source("hang-drill");
    let dsn = relay_dsn(&server, &relay, &db);
    let (child, out_dir) = Pgdrill::native(["--source-dsn", &dsn, "--stall-timeout", "3s"]).spawn();
    let out = wait_bounded(child, BOUND);
    let said = text(&out);
    assert!(relay.frozen(), "the relay never froze: {said}");
    assert_eq!(out.status.code(), Some(3), "{said}");
    let report = crate::support::read_report(out_dir.path()).expect("report.json");
    assert_eq!(report["failure"]["phase"], "backup", "{report}");
    assert_eq!(report["failure"]["class"], "environment", "{report}");
    let message = report["failure"]["message"].as_str().unwrap();
    for needle in ["stopped answering", "--stall-timeout"] {
        assert!(message.contains(needle), "no `{needle}` in: {message}");
    }
    assert!(
        message.contains("pg_dump wrote no byte") || message.contains("integrity snapshot"),
        "no stall point in: {message}"
    );
    assert_no_session_left(&server);
    drop(relay);
}

/// Reads a child's stderr on a thread, line by line, into a channel.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The first line from `lines` holding `needle`, within `limit`.
fn expect_line(lines: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> String {
    let started = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = limit.checked_sub(started.elapsed()) {
        match lines.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("no line with `{needle}` within {limit:?}; got {seen:?}");
}

fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn backup_behind_a_held_repo_lock_names_the_holder_gives_up_and_exits_3_on_sigterm() {
    let (server, db, relay) = frozen_source("hang-lock");
    let repo = tempfile::tempdir().unwrap();
    // The holder: a backup stalled on the frozen source, with a stall timeout far away.
    let mut holder = backup(
        &relay_dsn(&server, &relay, &db),
        repo.path(),
        &["--stall-timeout", "10m"],
    )
    .spawn()
    .unwrap();
    let started = Instant::now();
    while !relay.frozen() && started.elapsed() < BOUND {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(relay.frozen(), "the holder's dump never started");
    let direct = format!("{} dbname={db}", server.dsn());
    let holder_pid = format!("held by pid {} since ", holder.id());

    // A waiter names the holder and gives up at --lock-timeout.
    let gave_up = wait_bounded(
        backup(&direct, repo.path(), &["--lock-timeout", "2s"])
            .spawn()
            .unwrap(),
        BOUND,
    );
    let said = text(&gave_up);
    assert_eq!(gave_up.status.code(), Some(3), "{said}");
    for needle in [
        "waiting for the repo lock",
        holder_pid.as_str(),
        "gave up waiting",
        "--lock-timeout",
    ] {
        assert!(said.contains(needle), "no `{needle}` in: {said}");
    }

    // SIGTERM while waiting: exit 3, a message that fits a backup, an audit event.
    let mut waiter = backup(&direct, repo.path(), &[]).spawn().unwrap();
    let lines = stderr_lines(&mut waiter);
    expect_line(&lines, &holder_pid, BOUND);
    sigterm(&waiter);
    let status = wait_bounded(waiter, BOUND).status;
    // All of it: the reader ends at the end of the process's stderr.
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(3), "{rest:?}");
    let message = rest.join("\n");
    assert!(
        message.contains("interrupted by SIGTERM while waiting for the repo lock"),
        "{message}"
    );
    assert!(
        !message.contains("every server the drill started"),
        "{message}"
    );

    let events = audit_lines(repo.path());
    let failed: Vec<String> = events
        .iter()
        .filter(|e| e["action"] == "backup" && e["result"] == "failed")
        .map(|e| e["detail"].to_string())
        .collect();
    assert!(
        failed
            .iter()
            .any(|n| n.contains("gave up waiting for the repo lock")),
        "{events:?}"
    );
    assert!(
        failed.iter().any(|n| n.contains("SIGTERM while waiting")),
        "{events:?}"
    );
    let verified = Command::new(env!("CARGO_BIN_EXE_pgdrill"))
        .args(["audit", "verify", "--repo"])
        .arg(repo.path())
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));

    // The holder itself, stopped by SIGTERM mid-dump: exit 3, and no word of servers.
    sigterm(&holder);
    let lines = stderr_lines(&mut holder);
    let status = wait_bounded(holder, BOUND).status;
    let message: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(3), "{message:?}");
    assert!(
        message
            .join("\n")
            .contains("interrupted by SIGTERM during the backup"),
        "{message:?}"
    );
    drop(relay);
    assert_no_session_left(&server);
}
