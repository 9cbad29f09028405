//! `--notify`: a real HTTP server on loopback receives what `drill` and `verify` send, in each
//! format; it answers 500 then 200, 400, or never, and none of it changes a verdict or an
//! exit code; the webhook's token shows nowhere.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{self, Pgdrill};

/// The token in the webhook's path: it must never be printed or written.
const TOKEN: &str = "T0KEN-5ecret-9a1c";

/// How the webhook answers one request.
#[derive(Clone, Copy)]
pub(crate) enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

/// A webhook on 127.0.0.1: answers the n-th request with `answers[n]` (the last repeats) and
/// keeps each request's path and body.
pub(crate) struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<(String, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Hook {
    pub(crate) fn new(answers: &[Answer]) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (answers, g, s) = (answers.to_vec(), got.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let (path, body) = read_request(&mut stream);
                let n = {
                    let mut got = g.lock().unwrap();
                    got.push((path, body));
                    got.len() - 1
                };
                match answers[n.min(answers.len() - 1)] {
                    Answer::Status(code) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                        );
                    }
                    Answer::Hang => held.push(stream),
                }
            }
        });
        Hook { port, got, stop }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{TOKEN}?key={TOKEN}", self.port)
    }

    fn requests(&self) -> Vec<(String, String)> {
        self.got.lock().unwrap().clone()
    }

    pub(crate) fn body(&self, n: usize) -> serde_json::Value {
        serde_json::from_str(&self.requests()[n].1).expect("a JSON body")
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The request line's path and the body (by Content-Length).
fn read_request(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = stream.read_exact(&mut body);
    (path, String::from_utf8_lossy(&body).into_owned())
}

/// The token appears in no output and no file of `dir`.
fn token_nowhere(run: &support::Run, dir: &std::path::Path) {
    assert!(!run.text().contains(TOKEN), "{}", run.text());
    for (file, _) in support::files_under(dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        assert!(!text.contains(TOKEN), "the token is in {}", file.display());
    }
}

#[test]
fn a_drill_notifies_in_json_retrying_a_5xx_and_on_change_only_when_it_changed() {
    let hook = Hook::new(&[Answer::Status(500), Answer::Status(200)]);
    let history = tempfile::tempdir().unwrap();
    let history = history.path().join("history.ndjson");
    let url = hook.url();
    let args = |out: &str| {
        vec![
            "--notify".to_string(),
            url.clone(),
            "--notify-on".into(),
            "change".into(),
            "--history".into(),
            history.display().to_string(),
            "--contact".into(),
            "On-Call Engineer=Ann <ann@example.com>".into(),
            "--out".into(),
            out.to_string(),
        ]
    };
    let out = tempfile::tempdir().unwrap();
    let run = Pgdrill::native(args(out.path().to_str().unwrap())).run();
    run.assert_pass();
    let reqs = hook.requests();
    assert_eq!(reqs.len(), 2, "500, then retried: {reqs:?}");
    assert_eq!(reqs[0].0, format!("/hooks/{TOKEN}?key={TOKEN}"));
    let b = hook.body(1);
    let r = run.report();
    assert_eq!(b["event"], "drill", "{b}");
    assert_eq!(b["verdict"], "pass", "{b}");
    assert_eq!(b["drill_id"], r["drill_id"], "{b}");
    assert!(
        b["summary"].as_str().unwrap().contains("recovery took"),
        "{b}"
    );
    assert!(b["rto"].as_str().unwrap().contains(" of 30m"), "{b}");
    assert!(b["failure"].is_null(), "{b}");
    assert!(
        b["report_path"].as_str().unwrap().ends_with("report.md"),
        "{b}"
    );
    assert_eq!(
        b["contacts"][0], "On-Call Engineer: Ann <ann@example.com>",
        "{b}"
    );
    let n = &r["notifications"][0];
    assert_eq!(n["delivered"], true, "{n}");
    assert_eq!(
        n["url"],
        format!("http://127.0.0.1:{}/***", hook.port),
        "{n}"
    );
    assert_eq!(n["attempts"][0]["status"], 500, "{n}");
    assert_eq!(n["attempts"][1]["status"], 200, "{n}");
    token_nowhere(&run, out.path());

    // The same verdict again: held back, and the report says why.
    let out = tempfile::tempdir().unwrap();
    let run = Pgdrill::native(args(out.path().to_str().unwrap())).run();
    run.assert_pass();
    assert_eq!(hook.requests().len(), 2);
    let n = &run.report()["notifications"][0];
    assert_eq!(n["delivered"], false, "{n}");
    support::assert_mentions(n["skipped"].as_str().unwrap(), &["change", "previous run"]);
    token_nowhere(&run, out.path());
}

#[test]
fn a_failed_drill_notifies_alertmanager_and_a_4xx_is_never_retried() {
    let hook = Hook::new(&[Answer::Status(400)]);
    let out = tempfile::tempdir().unwrap();
    let run = Pgdrill::native([
        "--notify",
        &hook.url(),
        "--notify-format",
        "alertmanager",
        "--tamper-sql",
        "UPDATE users SET country = 'ZZ' WHERE id = 2",
        "--out",
        out.path().to_str().unwrap(),
    ])
    .run();
    assert_eq!(run.code(), 1, "the drill's own exit: {}", run.text());
    assert_eq!(hook.requests().len(), 1, "a 400 is not retried");
    let b = hook.body(0);
    let alert = &b[0];
    assert_eq!(alert["labels"]["alertname"], "PgdrillDrillFailed", "{b}");
    assert_eq!(alert["labels"]["severity"], "critical", "{b}");
    assert_eq!(
        alert["labels"]["database"],
        run.report()["source"]["database"],
        "{b}"
    );
    support::assert_mentions(
        alert["annotations"]["summary"].as_str().unwrap(),
        &["Fail at compare"],
    );
    assert!(alert["annotations"]["runbook"].is_string(), "{b}");
    let n = &run.report()["notifications"][0];
    assert_eq!(
        (
            n["delivered"].as_bool(),
            n["attempts"][0]["status"].as_u64()
        ),
        (Some(false), Some(400)),
        "{n}"
    );
    support::assert_mentions(
        &run.text(),
        &["was not delivered after 1 attempt(s): HTTP 400"],
    );
    token_nowhere(&run, out.path());
}

#[test]
fn verify_notifies_slack_and_a_webhook_that_never_answers_changes_nothing() {
    let repo = tempfile::tempdir().unwrap();
    // A repository with no backup yet.
    std::fs::create_dir(repo.path().join("database")).unwrap();
    let verify = |url: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--repo",
            repo.path().to_str().unwrap(),
            "--notify",
            url,
        ];
        args.extend_from_slice(extra);
        Pgdrill::new(args).run()
    };
    // No backup: exit 1, and Slack hears why.
    let hook = Hook::new(&[Answer::Status(200)]);
    let run = verify(&hook.url(), &["--notify-format", "slack"]);
    assert_eq!(run.code(), 1, "{}", run.text());
    let text = hook.body(0)["text"].as_str().unwrap().to_string();
    support::assert_mentions(&text, &["pgdrill verify", "finding(s)", "no_backup"]);
    assert!(!run.text().contains(TOKEN), "{}", run.text());

    // No answer within the timeout, retried three times: the exit is verify's own.
    let hang = Hook::new(&[Answer::Hang]);
    let run = verify(
        &hang.url(),
        &["--notify-timeout", "300ms", "--notify-on", "always"],
    );
    assert_eq!(run.code(), 1, "{}", run.text());
    assert_eq!(hang.requests().len(), 4);
    support::assert_mentions(
        &run.text(),
        &["was not delivered after 4 attempt(s)", "no answer within"],
    );
    assert!(!run.text().contains(TOKEN), "{}", run.text());

    // Refused before anything runs, the token still unsaid.
    let run = verify(&hook.url(), &["--notify-on", "change"]);
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["--notify-on change", "history"]);
    let run = verify(&format!("ftp://127.0.0.1/{TOKEN}"), &[]);
    assert_eq!(run.code(), 2, "{}", run.text());
    support::assert_mentions(&run.text(), &["only http:// and https://"]);
    assert!(!run.text().contains(TOKEN), "{}", run.text());
    assert_eq!(hook.requests().len(), 1);
}
