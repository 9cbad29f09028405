//! Evidence for auditors and CI: report.html (snapshot and a real headless Chromium),
//! history and its staleness alarm, the sealed bundle, the GitHub step summary. Two drills,
//! one passing and one failing, serve every assertion.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{redact, Pgdrill, Run};

fn pgdrill(args: &[&str]) -> Run {
    Pgdrill::new(args.iter().copied()).run()
}

/// report.html with what varies between runs (ids, paths, host, numbers) redacted.
fn html_for_snapshot(run: &Run) -> String {
    let r = run.report();
    let html = std::fs::read_to_string(run.out.path().join("report.html")).unwrap();
    // minijinja escapes `/` in text; the paths are easier to find unescaped.
    let html = html
        .replace("&#x2f;", "/")
        .replace(&run.out.path().display().to_string(), "<out>")
        .replace(r["drill_id"].as_str().unwrap(), "<drill-id>")
        // The operator is `$USER@host` by default, whatever CI adds to run_by.
        .replace(r["record"]["operator"].as_str().unwrap(), "<operator>")
        // `root`, or `root (CI)` when CI is set: who ran it varies with where the suite runs.
        .replace(r["environment"]["run_by"].as_str().unwrap(), "<run-by>")
        .replace(r["environment"]["host"].as_str().unwrap(), "<host>");
    let html = temp_suffixes(&html);
    // How many round ticks the axis gets depends on the drill's length; they are checked as
    // SVG by the render tests.
    let start = html
        .find("<g class=\"ticks\">")
        .expect("report.html has the timeline's ticks");
    let end = start + html[start..].find("</g>").unwrap();
    let html = format!(
        "{}<g class=\"ticks\"><ticks>{}",
        &html[..start],
        &html[end..]
    );
    // Durations and sizes change unit with their size (850 ms, 1.2 s; 900 B, 1.5 KiB).
    let mut html = redact(&html);
    for (unit, with) in [
        ("# min # s", "<dur>"),
        ("# ms", "<dur>"),
        ("# s", "<dur>"),
        ("# KiB", "<size>"),
        ("# MiB", "<size>"),
        ("# B", "<size>"),
    ] {
        html = html.replace(unit, with);
    }
    html
}

/// The random suffix of the drill's server directories (`…-source-Ab3xYz`) as `<tmp>`.
fn temp_suffixes(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = ["-source-", "-target-", "-controls-"]
        .iter()
        .filter_map(|m| rest.find(m).map(|i| i + m.len()))
        .min()
    {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let n = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        out.push_str("<tmp>");
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| {
            let out = Command::new("sh")
                .args(["-c", &format!("command -v {n}")])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// Runs headless Chromium on `page` with `args`; returns its stdout and the console
/// messages the page logged.
fn browse(chrome: &Path, profile: &Path, page: &Path, args: &[&str]) -> (String, Vec<String>) {
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    // Chromium logs every console message of the page as `…:INFO:CONSOLE:line] "message",
    // source: …`, without its level; report.html has no script, so any message (a failed load,
    // a blocked fetch, a script error) is one too many.
    let errors = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), errors)
}

fn look_in_browser(run: &Run, name: &str, tmp: &Path) {
    let Some(chrome) = chromium() else {
        assert!(
            std::env::var_os("PGDRILL_REQUIRE_BROWSER").is_none(),
            "PGDRILL_REQUIRE_BROWSER is set but no chromium is installed (scripts/setup.sh installs it)"
        );
        eprintln!("skipped the browser check: no chromium on PATH (scripts/setup.sh installs the Debian package)");
        return;
    };
    let page = run.out.path().join("report.html");
    let profile = tempfile::tempdir().unwrap();
    let png = tmp.join(format!("{name}.png"));
    let pdf = tmp.join(format!("{name}.pdf"));
    let (dom, errors) = browse(&chrome, profile.path(), &page, &["--dump-dom"]);
    assert!(errors.is_empty(), "console errors on {name}: {errors:#?}");
    let phases = run.report()["phases"].as_array().unwrap().len();
    assert_eq!(
        dom.matches("class=\"phase ").count(),
        phases,
        "one timeline element per phase in the rendered DOM"
    );
    let (_, errors) = browse(
        &chrome,
        profile.path(),
        &page,
        &[&format!("--screenshot={}", png.display())],
    );
    assert!(errors.is_empty(), "console errors on {name}: {errors:#?}");
    let (_, errors) = browse(
        &chrome,
        profile.path(),
        &page,
        &[
            &format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer",
        ],
    );
    assert!(errors.is_empty(), "console errors on {name}: {errors:#?}");
    assert!(
        std::fs::metadata(&png).unwrap().len() > 1000,
        "a real screenshot"
    );
    check_print(&pdf, run.report(), calibrate(&chrome, tmp));
    if let Some(keep) = std::env::var_os("PGDRILL_SCREENSHOTS_DIR") {
        std::fs::copy(&png, Path::new(&keep).join(format!("{name}.png"))).unwrap();
    }
}

/// One word of a printed page, as `pdftotext -bbox` places it (PDF points, y downwards).
#[derive(Debug)]
struct Word {
    page: usize,
    text: String,
    x_min: f64,
    y_min: f64,
    x_max: f64,
    y_max: f64,
}

/// The page sizes and the words of `pdf`.
fn pdf_words(pdf: &Path) -> (Vec<(f64, f64)>, Vec<Word>) {
    let out = Command::new("pdftotext")
        .arg("-bbox")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(out.status.success(), "pdftotext -bbox {}", pdf.display());
    let xml = String::from_utf8(out.stdout).unwrap();
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&xml, opts)
        .unwrap_or_else(|e| panic!("pdftotext -bbox output: {e}"));
    let num = |n: roxmltree::Node, a: &str| -> f64 { n.attribute(a).unwrap().parse().unwrap() };
    let mut pages = Vec::new();
    let mut words = Vec::new();
    for (i, page) in doc
        .descendants()
        .filter(|n| n.has_tag_name("page"))
        .enumerate()
    {
        pages.push((num(page, "width"), num(page, "height")));
        words.extend(
            page.descendants()
                .filter(|n| n.has_tag_name("word"))
                .map(|w| Word {
                    page: i,
                    text: w.text().unwrap_or_default().to_string(),
                    x_min: num(w, "xMin"),
                    y_min: num(w, "yMin"),
                    x_max: num(w, "xMax"),
                    y_max: num(w, "yMax"),
                }),
        );
    }
    (pages, words)
}

/// A word's box height per point of font size in this Chromium's PDFs, measured on a page of
/// 10 pt text in report.html's font: printed sizes are then read off the boxes' heights.
fn calibrate(chrome: &Path, tmp: &Path) -> f64 {
    let page = tmp.join("calibrate.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><title>c</title><p style=\"font: 10pt system-ui, sans-serif\">Calibration</p>",
    )
    .unwrap();
    let pdf = tmp.join("calibrate.pdf");
    let profile = tempfile::tempdir().unwrap();
    browse(
        chrome,
        profile.path(),
        &page,
        &[
            &format!("--print-to-pdf={}", pdf.display()),
            "--no-pdf-header-footer",
        ],
    );
    let (_, words) = pdf_words(&pdf);
    let w = words
        .iter()
        .find(|w| w.text == "Calibration")
        .expect("the calibration word");
    (w.y_max - w.y_min) / 10.0
}

/// report.html printed to A4 (`pdf`): the layout fits the page, so Chromium did not shrink it
/// (body text at its 10 pt) and nothing lies in the 15 mm margins; every word is readable
/// (≥ 8 pt, the timeline's too); every column of the phases table is there with its values;
/// every phase is named in the timeline and in the table; the failure message keeps its
/// lines; the sign-off names the operator. `per_pt` is [`calibrate`]'s.
fn check_print(pdf: &Path, report: &serde_json::Value, per_pt: f64) {
    let (pages, words) = pdf_words(pdf);
    let pt = |w: &Word| (w.y_max - w.y_min) / per_pt;
    let verdict = words
        .iter()
        .find(|w| w.text == "Verdict:")
        .expect("the verdict on the page");
    assert!(
        (pt(verdict) - 10.0).abs() < 0.3,
        "body text prints at {:.1} pt, not its 10 pt: the page was shrunk to fit something too wide",
        pt(verdict)
    );
    let margin = 15.0 / 25.4 * 72.0;
    for w in &words {
        let (width, _) = pages[w.page];
        assert!(
            w.x_min >= margin - 1.0 && w.x_max <= width - margin + 1.0,
            "{w:?} lies in the page's margin (page width {width:.0} pt): the layout is wider than A4"
        );
        // Symbols (✗, →) come from a fallback font whose boxes are sized otherwise.
        if w.text.chars().any(|c| c.is_ascii_alphanumeric()) {
            assert!(pt(w) >= 7.9, "{w:?} prints at {:.1} pt, under 8 pt", pt(w));
        }
    }

    let out = Command::new("pdftotext")
        .arg("-layout")
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let layout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = layout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let flat = layout.split_whitespace().collect::<Vec<_>>().join(" ");
    let verdict = report["verdict"].as_str().unwrap().to_uppercase();
    assert!(
        flat.contains(&format!("Verdict: {verdict}")),
        "the PDF shows the verdict {verdict}:\n{layout}"
    );
    let header = ["Phase", "Budget", "Status", "Start", "Duration", "Detail"];
    assert!(
        lines.iter().any(|l| l == &header),
        "every column header of the phases table on one line:\n{layout}"
    );
    for p in report["phases"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let rows: Vec<&Vec<&str>> = lines.iter().filter(|l| l.first() == Some(&name)).collect();
        assert!(
            rows.len() >= 2,
            "{name} named in the timeline and in the phases table:\n{layout}"
        );
        // The first line of its Detail, the rightmost column, beside it in the table.
        let detail = p["detail"].as_str().unwrap();
        if let Some(first) = detail.split_whitespace().next() {
            let first: String = first.chars().take(8).collect();
            assert!(
                rows.iter()
                    .any(|l| l.iter().skip(1).any(|w| w.contains(&first))),
                "{name}'s detail ({first}…) on its row of the phases table:\n{layout}"
            );
        }
    }
    if let Some(message) = report["failure"]["message"].as_str() {
        let message: Vec<&str> = message.lines().collect();
        for line in &message[..message.len() - 1] {
            let line = line.trim();
            assert!(
                layout.lines().any(|l| l.trim_end().ends_with(line)),
                "the failure message's line {line:?} ends a printed line:\n{layout}"
            );
        }
    }
    let operator = report["record"]["operator"]
        .as_str()
        .or(report["environment"]["run_by"].as_str())
        .unwrap();
    for w in ["Operator", "Approver", "Signature", "Date", operator] {
        assert!(flat.contains(w), "the sign-off shows {w:?}:\n{layout}");
    }
}

/// The console check is not blind: a page that logs an error is caught.
fn console_check_sees_errors(tmp: &Path) {
    let Some(chrome) = chromium() else { return };
    let page = tmp.join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><title>x</title><script>console.error('boom')</script>",
    )
    .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_, errors) = browse(&chrome, profile.path(), &page, &["--dump-dom"]);
    assert!(!errors.is_empty(), "a console.error must be seen");
}

fn verify(dir: &Path) -> Run {
    pgdrill(&["evidence", "verify", dir.to_str().unwrap()])
}

#[test]
fn evidence_of_a_passing_and_a_failing_drill() {
    let tmp = tempfile::tempdir().unwrap();
    let history = tmp.path().join("history.ndjson");
    let summary = tmp.path().join("step-summary.md");
    let h = history.to_str().unwrap();
    let pass = Pgdrill::drill(["--backend", "native", "--app", "none"])
        .env("PGDRILL_HISTORY", h)
        .env("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())
        .env("GITHUB_SERVER_URL", "https://github.example")
        .env("GITHUB_REPOSITORY", "team/db")
        .env("GITHUB_RUN_ID", "77")
        .run();
    pass.assert_pass();
    let fail = Pgdrill::drill([
        "--backend",
        "native",
        "--app",
        "none",
        "--no-dump-in-bundle",
        "--tamper-sql",
        "UPDATE users SET country = 'ZZ' WHERE id = 2",
    ])
    .env("PGDRILL_HISTORY", h)
    .run();
    assert_eq!(fail.code(), 1, "{}", fail.text());

    // report.html, as text and in a real browser.
    insta::assert_snapshot!("report_html_pass", html_for_snapshot(&pass));
    insta::assert_snapshot!("report_html_fail", html_for_snapshot(&fail));
    console_check_sees_errors(tmp.path());
    look_in_browser(&pass, "report-pass", tmp.path());
    look_in_browser(&fail, "report-fail", tmp.path());

    // The step summary: written when the variable is set, and only then.
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains(": PASS"), "{md}");
    assert!(md.contains("| RTO: database restore |"), "{md}");
    assert!(
        md.contains("(https://github.example/team/db/actions/runs/77)"),
        "{md}"
    );
    assert_eq!(
        md.matches("### pgdrill").count(),
        1,
        "the failing drill had no variable: {md}"
    );

    // History: one line per drill, evaluated at different moments.
    let lines = std::fs::read_to_string(&history).unwrap();
    assert_eq!(lines.lines().count(), 2, "{lines}");
    let kinds: Vec<String> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        ["\"drill\"", "\"tamper\""],
        "the tamper drill is marked"
    );
    let finished =
        pgdrill::duration::parse_time(fail.report()["finished_at"].as_str().unwrap()).unwrap();
    let at = |d: chrono::Duration| (finished + d).to_rfc3339();
    let hist = |extra: &[&str]| {
        let mut args = vec!["history", "--history", h, "--json"];
        args.extend_from_slice(extra);
        let run = pgdrill(&args);
        let json: serde_json::Value = serde_json::from_slice(&run.output.stdout)
            .unwrap_or_else(|e| panic!("history --json: {e}\n{}", run.text()));
        (run.code(), json)
    };
    let hour_later = at(chrono::Duration::hours(1));
    let (code, s) = hist(&["--at", &hour_later, "--max-age", "8d"]);
    assert_eq!(
        (code, &s["drills"], &s["passed"], &s["fresh"]),
        (0, &2.into(), &1.into(), &true.into()),
        "{s:#}"
    );
    assert_eq!(
        (&s["failed"], &s["test_drills"], &s["pass_rate"]),
        (&0.into(), &1.into(), &1.0.into()),
        "the tamper drill is not in the pass rate: {s:#}"
    );
    assert_eq!(s["last_pass"]["drill_id"], pass.report()["drill_id"]);
    assert_eq!(s["trend"].as_array().unwrap().len(), 1, "real drills only");
    let restore = &s["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "database_restore")
        .unwrap()
        .clone();
    assert!(
        restore["min_ms"].as_u64() <= restore["median_ms"].as_u64()
            && restore["median_ms"].as_u64() <= restore["max_ms"].as_u64(),
        "{restore}"
    );
    let stale = at(chrono::Duration::days(9));
    let (code, s) = hist(&["--at", &stale, "--max-age", "8d"]);
    assert_eq!(
        (code, &s["drills"], &s["fresh"]),
        (1, &2.into(), &false.into()),
        "the staleness alarm: {s:#}"
    );
    let (code, s) = hist(&["--at", &stale, "--since", "1d"]);
    assert_eq!(
        (code, &s["drills"]),
        (0, &0.into()),
        "outside the window: {s:#}"
    );
    let before = at(chrono::Duration::days(-1));
    let (code, s) = hist(&["--at", &before, "--max-age", "8d"]);
    assert_eq!(
        (code, &s["drills"]),
        (1, &0.into()),
        "nothing had run yet: {s:#}"
    );
    let page = tmp.path().join("history.html");
    let run = pgdrill(&[
        "history",
        "--history",
        h,
        "--at",
        &hour_later,
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), 0, "{}", run.text());
    assert!(
        run.text()
            .contains("pass rate 100% (1 of 1 drills that reached a verdict passed, 0 failed)"),
        "{}",
        run.text()
    );
    assert!(
        run.text().contains("1 test drill (1 tamper)"),
        "{}",
        run.text()
    );
    let overview = std::fs::read_to_string(&page).unwrap();
    assert!(overview.contains("pass rate 100%"), "{overview}");
    let start = overview
        .find("<svg id=\"size-chart\"")
        .expect("the size chart");
    let end = start + overview[start..].find("</svg>").unwrap() + "</svg>".len();
    let chart = roxmltree::Document::parse(&overview[start..end]).unwrap();
    assert_eq!(
        chart
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count(),
        1,
        "one point per real drill"
    );

    // The sealed bundle: intact, for sha256sum too, then one change, one extra, one removal.
    for run in [&pass, &fail] {
        let v = verify(run.out.path());
        assert_eq!(v.code(), 0, "{}", v.text());
        let c = Command::new("sha256sum")
            .args(["-c", "--strict", "--quiet", "SHA256SUMS"])
            .current_dir(run.out.path())
            .output()
            .unwrap();
        assert!(
            c.status.success(),
            "sha256sum -c: {}",
            String::from_utf8_lossy(&c.stdout)
        );
    }
    let sums = std::fs::read_to_string(pass.out.path().join("SHA256SUMS")).unwrap();
    for f in [
        "report.json",
        "report.md",
        "report.html",
        "junit.xml",
        ".dump",
        ".manifest.json",
        ".globals.sql",
    ] {
        assert!(sums.contains(f), "{f} is sealed:\n{sums}");
    }
    let unsealed = std::fs::read_to_string(fail.out.path().join("UNSEALED")).unwrap();
    assert!(
        unsealed.ends_with(".dump\n")
            && !std::fs::read_to_string(fail.out.path().join("SHA256SUMS"))
                .unwrap()
                .contains(".dump "),
        "--no-dump-in-bundle: {unsealed}"
    );
    let dir = pass.out.path();
    let md_path = dir.join("report.md");
    let mut bytes = std::fs::read(&md_path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&md_path, &bytes).unwrap();
    std::fs::write(dir.join("extra.txt"), "added later").unwrap();
    let globals = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .find(|f| f.ends_with(".globals.sql"))
        .unwrap();
    std::fs::remove_file(dir.join(globals)).unwrap();
    let v = verify(dir);
    assert_eq!(v.code(), 1, "{}", v.text());
    let out = v.text();
    assert!(out.contains("changed: report.md"), "{out}");
    assert!(out.contains("added: extra.txt"), "{out}");
    assert!(out.contains(&format!("removed: {globals}")), "{out}");
    assert!(
        out.contains("NOT INTACT: 1 changed, 1 added, 1 removed"),
        "{out}"
    );
}

#[test]
fn evidence_verify_without_a_seal_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let v = verify(tmp.path());
    assert_eq!(v.code(), 2, "{}", v.text());
    assert!(v.text().contains("SHA256SUMS"), "{}", v.text());
}

// ---------------------------------------------------------------------------------------------
// The signed seal: SHA256SUMS.sig in OpenSSH's SSHSIG format, checked both ways with the real
// ssh-keygen, and report.json against its history line.

const PRINCIPAL: &str = "drills@example.com";

/// Runs the real `ssh-keygen` (openssh-client; scripts/setup.sh installs it) in `dir`, with
/// `stdin` as its input.
fn ssh_keygen(dir: &Path, args: &[&str], stdin: Option<&Path>) -> std::process::Output {
    let mut c = Command::new("ssh-keygen");
    c.args(args).current_dir(dir);
    if let Some(f) = stdin {
        c.stdin(std::fs::File::open(f).unwrap());
    }
    c.output()
        .expect("ssh-keygen (openssh-client, installed by scripts/setup.sh)")
}

fn out_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A new key pair made by ssh-keygen in `dir` (`args` picks type and passphrase); returns the
/// private key's path and the public key's line.
fn new_key(dir: &Path, name: &str, args: &[&str]) -> (PathBuf, String) {
    let path = dir.join(name);
    let mut all = vec!["-q", "-C", name, "-f", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = ssh_keygen(dir, &all, None);
    assert!(o.status.success(), "ssh-keygen: {}", out_text(&o));
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim().to_string())
}

/// The key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).
fn fingerprint(public_file: &Path) -> String {
    let o = ssh_keygen(
        Path::new("/"),
        &["-l", "-f", public_file.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", out_text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// `ssh-keygen -Y verify` of `dir`'s SHA256SUMS.sig as an auditor with OpenSSH alone runs it.
fn openssh_verifies(dir: &Path, allowed: &Path, principal: &str) -> (bool, String) {
    let o = ssh_keygen(
        dir,
        &[
            "-Y",
            "verify",
            "-f",
            allowed.to_str().unwrap(),
            "-I",
            principal,
            "-n",
            "pgdrill-evidence",
            "-s",
            "SHA256SUMS.sig",
        ],
        Some(&dir.join("SHA256SUMS")),
    );
    (o.status.success(), out_text(&o))
}

/// `pgdrill evidence verify DIR` plus `extra` flags.
fn verify_with(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["evidence", "verify", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    pgdrill(&args)
}

/// What an attacker does: SHA256SUMS recomputed, with sha256sum, over the files it lists.
fn reseal_with_sha256sum(dir: &Path) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let names: Vec<&str> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1)
        .collect();
    let o = Command::new("sha256sum")
        .args(&names)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out_text(&o));
    std::fs::write(dir.join("SHA256SUMS"), &o.stdout).unwrap();
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A real drill signs its bundle with --sign-key; OpenSSH and pgdrill both accept it; the
/// issue's attack (report.json edited, SHA256SUMS regenerated) passes the plain seal but not
/// the signature nor the history line.
#[test]
fn a_signed_drill_is_verified_by_openssh_and_pgdrill_and_the_rewrite_attack_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = new_key(tmp.path(), "drills", &["-t", "ed25519", "-N", ""]);
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("{PRINCIPAL} {public}\n")).unwrap();
    let history = tmp.path().join("history.ndjson");
    let run = Pgdrill::native(["--sign-key", key.to_str().unwrap()])
        .env("PGDRILL_HISTORY", history.to_str().unwrap())
        .run();
    run.assert_pass();
    let dir = run.out.path();
    let fp = fingerprint(&key.with_extension("pub"));
    assert!(
        run.text()
            .contains(&format!("signed: {}", dir.join("SHA256SUMS.sig").display()))
            && run.text().contains(&fp),
        "{}",
        run.text()
    );

    // The seal's files have the mode of the files they seal, which is any new file's.
    let plain = tmp.path().join("plain");
    std::fs::write(&plain, "x").unwrap();
    for f in [
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "report.json",
        "junit.xml",
        "events.ndjson",
    ] {
        assert_eq!(
            mode(&dir.join(f)),
            mode(&plain),
            "{f} has mode {:o}",
            mode(&dir.join(f))
        );
    }
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert!(
        !sums.contains("SHA256SUMS.sig"),
        "the signature is not in what it signs:\n{sums}"
    );

    // (a) OpenSSH alone accepts pgdrill's signature; so does pgdrill, naming the signer.
    let (ok, said) = openssh_verifies(dir, &allowed, PRINCIPAL);
    assert!(ok, "ssh-keygen -Y verify: {said}");
    let v = verify_with(
        dir,
        &[
            "--allowed-signers",
            allowed.to_str().unwrap(),
            "--history",
            history.to_str().unwrap(),
        ],
    );
    assert_eq!(v.code(), 0, "{}", v.text());
    assert!(
        v.text()
            .contains(&format!("signed by {PRINCIPAL} (ED25519 key {fp}")),
        "{}",
        v.text()
    );
    assert!(
        v.text().contains("history: report.json sha256"),
        "{}",
        v.text()
    );
    assert!(!v.text().contains("added:"), "{}", v.text());

    // (c) The attack: report.json edited, SHA256SUMS regenerated.
    let report = dir.join("report.json");
    let before = pgdrill::digest::sha256_file_blocking(&report).unwrap().1;
    let edited = std::fs::read_to_string(&report).unwrap().replacen(
        "\"verdict\": \"pass\"",
        "\"verdict\": \"pass\" ",
        1,
    );
    std::fs::write(&report, edited).unwrap();
    let after = pgdrill::digest::sha256_file_blocking(&report).unwrap().1;
    assert_ne!(before, after);
    reseal_with_sha256sum(dir);
    let plain_seal = verify(dir);
    assert_eq!(
        plain_seal.code(),
        0,
        "the plain seal alone cannot see it (why the signature exists): {}",
        plain_seal.text()
    );
    assert!(
        plain_seal.text().contains("SHA256SUMS.sig not checked"),
        "{}",
        plain_seal.text()
    );
    let v = verify_with(dir, &["--allowed-signers", allowed.to_str().unwrap()]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text().contains("signature: BAD: SHA256SUMS.sig")
            && v.text()
                .contains("SHA256SUMS was changed after it was signed")
            && v.text().contains("NOT INTACT"),
        "{}",
        v.text()
    );
    let (ok, said) = openssh_verifies(dir, &allowed, PRINCIPAL);
    assert!(!ok, "ssh-keygen must refuse it too: {said}");
    let v = verify_with(dir, &["--history", history.to_str().unwrap()]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text()
            .contains(&format!("report.json has sha256 {after}"))
            && v.text().contains(&format!("recorded {before}")),
        "both hashes named: {}",
        v.text()
    );
}

/// A bundle made by hand (report.json, report.md, SHA256SUMS by sha256sum): signatures made by
/// ssh-keygen are read by pgdrill, pgdrill's by ssh-keygen, and the wrong ones are refused.
#[test]
fn openssh_and_pgdrill_signatures_interoperate_and_wrong_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let dir = t.join("bundle");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("report.json"), "{\"drill_id\": \"d-1\"}\n").unwrap();
    std::fs::write(dir.join("report.md"), "# drill d-1\n").unwrap();
    let o = Command::new("sha256sum")
        .args(["report.json", "report.md"])
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::write(dir.join("SHA256SUMS"), &o.stdout).unwrap();
    let (key, public) = new_key(t, "drills", &["-t", "ed25519", "-N", ""]);
    let (other, other_public) = new_key(t, "other", &["-t", "ed25519", "-N", ""]);
    let allowed = t.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!("# who signs drills\n{PRINCIPAL},ops@example.com {public} the drill runner\n"),
    )
    .unwrap();
    let a = allowed.to_str().unwrap();
    let fp = fingerprint(&key.with_extension("pub"));

    // Unsigned: with --allowed-signers that is not intact, and says so.
    let v = verify_with(&dir, &["--allowed-signers", a]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text().contains("signature: MISSING: no SHA256SUMS.sig"),
        "{}",
        v.text()
    );

    // (b) Signed by ssh-keygen, read by pgdrill.
    let sign_with_openssh = |key: &Path, namespace: &str| {
        let _ = std::fs::remove_file(dir.join("SHA256SUMS.sig"));
        let o = ssh_keygen(
            &dir,
            &[
                "-Y",
                "sign",
                "-n",
                namespace,
                "-f",
                key.to_str().unwrap(),
                "SHA256SUMS",
            ],
            None,
        );
        assert!(o.status.success(), "ssh-keygen -Y sign: {}", out_text(&o));
    };
    sign_with_openssh(&key, "pgdrill-evidence");
    let v = verify_with(&dir, &["--allowed-signers", a]);
    assert_eq!(v.code(), 0, "{}", v.text());
    assert!(
        v.text().contains(&format!(
            "signed by {PRINCIPAL},ops@example.com (ED25519 key {fp}, allowed signers line 2)"
        )),
        "{}",
        v.text()
    );

    // (d) The wrong signer, the wrong namespace, a line that forbids the namespace.
    sign_with_openssh(&other, "pgdrill-evidence");
    let v = verify_with(&dir, &["--allowed-signers", a]);
    assert_eq!(v.code(), 1, "{}", v.text());
    let other_fp = fingerprint(&other.with_extension("pub"));
    assert!(
        v.text().contains(&format!(
            "signed by key {other_fp}, which the allowed signers file does not list"
        )),
        "{}",
        v.text()
    );
    assert!(
        !openssh_verifies(&dir, &allowed, PRINCIPAL).0,
        "ssh-keygen agrees"
    );
    sign_with_openssh(&key, "git");
    let v = verify_with(&dir, &["--allowed-signers", a]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text().contains("namespace `git`, not pgdrill-evidence"),
        "{}",
        v.text()
    );
    assert!(
        !openssh_verifies(&dir, &allowed, PRINCIPAL).0,
        "ssh-keygen agrees"
    );
    let narrow = t.join("narrow_signers");
    std::fs::write(
        &narrow,
        format!("{PRINCIPAL} namespaces=\"git\" {public}\n"),
    )
    .unwrap();
    sign_with_openssh(&key, "pgdrill-evidence");
    let v = verify_with(&dir, &["--allowed-signers", narrow.to_str().unwrap()]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text()
            .contains("allows the key only for namespaces \"git\""),
        "{}",
        v.text()
    );
    assert!(
        !openssh_verifies(&dir, &narrow, PRINCIPAL).0,
        "ssh-keygen agrees"
    );

    // (a) Signed by pgdrill afterwards, read by ssh-keygen; the other key's line now works too.
    let s = pgdrill(&[
        "evidence",
        "sign",
        "--key",
        other.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(s.code(), 0, "{}", s.text());
    assert!(
        s.text().contains("replaces the earlier signature"),
        "{}",
        s.text()
    );
    let both = t.join("both_signers");
    std::fs::write(
        &both,
        format!("{PRINCIPAL} {public}\nauditor@example.com {other_public}\n"),
    )
    .unwrap();
    let (ok, said) = openssh_verifies(&dir, &both, "auditor@example.com");
    assert!(ok, "ssh-keygen -Y verify of pgdrill's signature: {said}");
    let pem = std::fs::read_to_string(dir.join("SHA256SUMS.sig")).unwrap();
    assert!(
        pem.starts_with("-----BEGIN SSH SIGNATURE-----\n")
            && pem.ends_with("-----END SSH SIGNATURE-----\n"),
        "{pem}"
    );
    let v = verify_with(&dir, &["--allowed-signers", both.to_str().unwrap()]);
    assert_eq!(v.code(), 0, "{}", v.text());
    assert!(
        v.text().contains("signed by auditor@example.com"),
        "{}",
        v.text()
    );

    // A tampered bundle is not signed.
    std::fs::write(dir.join("report.md"), "# drill d-1, edited\n").unwrap();
    let before = std::fs::read(dir.join("SHA256SUMS.sig")).unwrap();
    let s = pgdrill(&[
        "evidence",
        "sign",
        "--key",
        key.to_str().unwrap(),
        dir.to_str().unwrap(),
    ]);
    assert_eq!(s.code(), 1, "{}", s.text());
    assert!(
        s.text().contains("changed: report.md") && s.text().contains("refusing to sign"),
        "{}",
        s.text()
    );
    assert_eq!(
        std::fs::read(dir.join("SHA256SUMS.sig")).unwrap(),
        before,
        "the signature is untouched"
    );
    std::fs::write(dir.join("report.md"), "# drill d-1\n").unwrap();

    // Keys that cannot sign: exit 2, each naming the problem and the fix.
    let (encrypted, _) = new_key(t, "encrypted", &["-t", "ed25519", "-N", "secret"]);
    let (rsa, _) = new_key(t, "rsa", &["-t", "rsa", "-b", "2048", "-N", ""]);
    let (ecdsa, _) = new_key(t, "ecdsa", &["-t", "ecdsa", "-N", ""]);
    for (k, says) in [
        (encrypted.clone(), "encrypted with a passphrase"),
        (rsa, "a ssh-rsa key; pgdrill signs with Ed25519 keys only"),
        (ecdsa, "pgdrill signs with Ed25519 keys only"),
        (key.with_extension("pub"), "this is a public key"),
        (t.join("nonexistent"), "cannot read it"),
    ] {
        let s = pgdrill(&[
            "evidence",
            "sign",
            "--key",
            k.to_str().unwrap(),
            dir.to_str().unwrap(),
        ]);
        assert_eq!(s.code(), 2, "{}: {}", k.display(), s.text());
        assert!(
            s.text().contains(&format!("--key {}: ", k.display())) && s.text().contains(says),
            "{}",
            s.text()
        );
    }
    assert!(pgdrill(&[
        "evidence",
        "sign",
        "--key",
        encrypted.to_str().unwrap(),
        dir.to_str().unwrap()
    ])
    .text()
    .contains("ssh-agent"));

    // The allowed signers file is outside input: a bad line is a usage error naming it.
    let bad = t.join("bad_signers");
    std::fs::write(
        &bad,
        format!("{PRINCIPAL} {public}\nops ssh-ed25519 AAAAnotakey\n"),
    )
    .unwrap();
    let v = verify_with(&dir, &["--allowed-signers", bad.to_str().unwrap()]);
    assert_eq!(v.code(), 2, "{}", v.text());
    assert!(
        v.text().contains(&format!(
            "--allowed-signers {}: line 2: the ssh-ed25519 key does not read",
            bad.display()
        )),
        "{}",
        v.text()
    );

    // --history: the line of the drill must carry report.json's hash.
    let sha = pgdrill::digest::sha256_file_blocking(&dir.join("report.json"))
        .unwrap()
        .1;
    let history = t.join("history.ndjson");
    let line = |id: &str, sha: &str| {
        let e = serde_json::json!({
            "drill_id": id, "time": "2026-12-06T08:00:00Z", "scope": "database",
            "backup_file": null, "backup_size_bytes": null, "backup_age_ms": null,
            "verdict": "pass", "failed": null, "budgets": [], "integrity": null,
            "report": "bundle/report.json", "report_sha256": sha
        });
        format!("{e}\n")
    };
    let h = history.to_str().unwrap();
    std::fs::write(&history, line("d-0", &"0".repeat(64))).unwrap();
    let v = verify_with(&dir, &["--history", h]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text().contains(&format!(
            "has no line for drill d-1 (report.json sha256 {sha}"
        )),
        "{}",
        v.text()
    );
    std::fs::write(&history, line("d-1", &"f".repeat(64))).unwrap();
    let v = verify_with(&dir, &["--history", h]);
    assert_eq!(v.code(), 1, "{}", v.text());
    assert!(
        v.text().contains(&format!(
            "report.json has sha256 {sha}, but the line of drill d-1 in {h} recorded {}",
            "f".repeat(64)
        )),
        "{}",
        v.text()
    );
    std::fs::write(&history, line("d-0", "0") + &line("d-1", &sha)).unwrap();
    let v = verify_with(
        &dir,
        &["--history", h, "--allowed-signers", both.to_str().unwrap()],
    );
    assert_eq!(v.code(), 0, "{}", v.text());
    let v = verify_with(
        &dir,
        &["--history", t.join("nonexistent").to_str().unwrap()],
    );
    assert_eq!(v.code(), 2, "{}", v.text());
    assert!(
        v.text().contains("nonexistent: no such file"),
        "{}",
        v.text()
    );
}

/// A key that cannot sign stops `pgdrill drill` before anything starts: exit 2, nothing in
/// --out, no server.
#[test]
fn a_drill_with_a_key_that_cannot_sign_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (encrypted, _) = new_key(tmp.path(), "encrypted", &["-t", "ed25519", "-N", "secret"]);
    for (key, says) in [
        (tmp.path().join("nonexistent"), "cannot read it"),
        (encrypted, "the key is encrypted with a passphrase"),
    ] {
        let run = Pgdrill::native(["--sign-key", key.to_str().unwrap()]).run();
        assert_eq!(run.code(), 2, "{}", run.text());
        assert!(
            run.text()
                .contains(&format!("--sign-key {}: {says}", key.display())),
            "{}",
            run.text()
        );
        let written: Vec<_> = std::fs::read_dir(run.out.path()).unwrap().collect();
        assert!(
            written.is_empty(),
            "nothing written, no drill started: {written:?}"
        );
    }
}
