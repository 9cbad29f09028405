//! The sealed evidence bundle: `SHA256SUMS` over every file a drill wrote into `--out`, in
//! `sha256sum` format (so `sha256sum -c SHA256SUMS` checks it too), its signature
//! `SHA256SUMS.sig` ([`signature`]), and their verification, with the history line's
//! `report_sha256` as a second witness of report.json.

pub mod allowed_signers;
pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{EnvError, Error};
use signature::{SignatureCheck, SIG};

/// The seal's file name.
pub const SUMS: &str = "SHA256SUMS";
/// Files left out of the seal on purpose (`--no-dump-in-bundle`); itself sealed, so what it
/// excuses cannot be changed afterwards.
pub const UNSEALED: &str = "UNSEALED";

fn env_io(what: String, source: std::io::Error) -> Error {
    Error::Environment(EnvError::io(what, source))
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
fn files(dir: &Path) -> Result<Vec<String>, Error> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                out.push(
                    rel.components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/"),
                );
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out).map_err(|e| env_io(format!("listing {}", dir.display()), e))?;
    out.sort();
    Ok(out)
}

/// Writes `SHA256SUMS` over every file in `dir` except the seal itself and `skip` (files a
/// later drill may write there, such as a shared history file). With `dump_in_bundle` false,
/// `*.dump` files are listed in `UNSEALED` instead.
pub fn seal(dir: &Path, dump_in_bundle: bool, skip: &[PathBuf]) -> Result<(), Error> {
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .collect();
    let root =
        std::fs::canonicalize(dir).map_err(|e| env_io(format!("reading {}", dir.display()), e))?;
    let mut sealed = Vec::new();
    let mut unsealed = Vec::new();
    for rel in files(dir)? {
        if rel == SUMS || rel == SIG || rel == UNSEALED || skip.contains(&root.join(&rel)) {
            continue;
        }
        if !dump_in_bundle && rel.ends_with(".dump") {
            unsealed.push(rel);
        } else {
            sealed.push(rel);
        }
    }
    let out_err = |path: PathBuf| move |source| Error::Output { path, source };
    if !unsealed.is_empty() {
        let text: String = unsealed.iter().map(|r| format!("{r}\n")).collect();
        crate::digest::write_atomic_readable(&dir.join(UNSEALED), text.as_bytes())
            .map_err(out_err(dir.join(UNSEALED)))?;
        sealed.push(UNSEALED.to_string());
        sealed.sort();
    }
    let mut text = String::new();
    for rel in &sealed {
        let (_, hex) = crate::digest::sha256_file_blocking(&dir.join(rel))
            .map_err(|e| env_io(format!("hashing {}", dir.join(rel).display()), e))?;
        text.push_str(&format!("{hex}  {rel}\n"));
    }
    // The mode of the reports it seals (not the temporary file's 0600).
    crate::digest::write_atomic_readable(&dir.join(SUMS), text.as_bytes())
        .map_err(out_err(dir.join(SUMS)))
}

/// What verification found; empty lists mean the bundle is intact.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Listed files whose content differs.
    pub changed: Vec<String>,
    /// Files present but not listed.
    pub added: Vec<String>,
    /// Listed files that are gone.
    pub removed: Vec<String>,
    /// Files checked and intact.
    pub intact: usize,
}

impl Findings {
    /// Nothing changed, added or removed.
    pub fn is_intact(&self) -> bool {
        self.changed.is_empty() && self.added.is_empty() && self.removed.is_empty()
    }
}

/// Checks `dir` against its `SHA256SUMS`. A directory without one, or with a malformed line,
/// is a usage error.
pub fn verify(dir: &Path) -> Result<Findings, Error> {
    let sums_path = dir.join(SUMS);
    let text = std::fs::read_to_string(&sums_path).map_err(|e| {
        Error::Usage(format!(
            "{}: cannot read it ({e}); give the --out directory of a drill, which holds {SUMS}",
            sums_path.display()
        ))
    })?;
    let mut listed = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let parsed = line.split_once("  ").filter(|(h, n)| {
            h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) && !n.is_empty()
        });
        let Some((hex, name)) = parsed else {
            return Err(Error::Usage(format!(
                "{} line {}: not `<sha256>  <file>`; the seal itself was altered",
                sums_path.display(),
                i + 1
            )));
        };
        listed.insert(name.to_string(), hex.to_ascii_lowercase());
    }
    let mut f = Findings::default();
    for (name, hex) in &listed {
        match crate::digest::sha256_file_blocking(&dir.join(name)) {
            Ok((_, h)) if &h == hex => f.intact += 1,
            Ok(_) => f.changed.push(name.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => f.removed.push(name.clone()),
            Err(e) => return Err(env_io(format!("hashing {}", dir.join(name).display()), e)),
        }
    }
    // UNSEALED excuses files only while it is itself intact.
    let excused: Vec<String> = if listed.contains_key(UNSEALED)
        && !f.changed.iter().chain(&f.removed).any(|n| n == UNSEALED)
    {
        std::fs::read_to_string(dir.join(UNSEALED))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    for rel in files(dir)? {
        // The signature signs SHA256SUMS, so SHA256SUMS cannot list it.
        if rel != SUMS && rel != SIG && !listed.contains_key(&rel) && !excused.contains(&rel) {
            f.added.push(rel);
        }
    }
    Ok(f)
}

/// What the history file says of the bundle's report.json (`evidence verify --history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryCheck {
    /// The line of the report's drill has the report's SHA-256.
    Match {
        /// The drill.
        drill_id: String,
        /// report.json's SHA-256.
        sha256: String,
    },
    /// The line of the report's drill has another SHA-256.
    Mismatch {
        /// The drill.
        drill_id: String,
        /// report.json's SHA-256 in the bundle.
        bundle: String,
        /// The one the history line recorded.
        recorded: String,
    },
    /// The history has no line for the report's drill.
    NoLine {
        /// The drill.
        drill_id: String,
        /// report.json's SHA-256 in the bundle.
        bundle: String,
    },
    /// The bundle's report.json does not say which drill it is.
    NoReport(String),
}

impl HistoryCheck {
    fn holds(&self) -> bool {
        matches!(self, HistoryCheck::Match { .. })
    }
}

/// Checks the SHA-256 of `dir`'s report.json against the `report_sha256` of its drill's line
/// in `history` (the history line is written before the seal, from the same report.json). A
/// history file that is not there is a usage error.
pub fn check_history(dir: &Path, history: &Path) -> Result<HistoryCheck, Error> {
    if !history.is_file() {
        return Err(Error::Usage(format!(
            "--history {}: no such file; give the history.ndjson the drill appended its line to (its --history, PGDRILL_HISTORY, <repo>/history.ndjson with --repo, else reports/history.ndjson)",
            history.display()
        )));
    }
    let report = dir.join("report.json");
    let bytes = match std::fs::read(&report) {
        Ok(b) => b,
        Err(e) => {
            return Ok(HistoryCheck::NoReport(format!(
                "cannot read {} ({e})",
                report.display()
            )))
        }
    };
    let drill_id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("drill_id")?.as_str().map(str::to_string));
    let Some(drill_id) = drill_id else {
        return Ok(HistoryCheck::NoReport(format!(
            "{} has no drill_id",
            report.display()
        )));
    };
    let bundle = crate::digest::sha256_hex(&bytes);
    let entries = super::history::read(history)?;
    let mut lines = entries.iter().filter(|e| e.drill_id == drill_id).peekable();
    if lines.peek().is_none() {
        return Ok(HistoryCheck::NoLine { drill_id, bundle });
    }
    // A drill has one line; should a file hold two, each must agree.
    if let Some(other) = lines.find(|e| !e.report_sha256.eq_ignore_ascii_case(&bundle)) {
        return Ok(HistoryCheck::Mismatch {
            drill_id,
            bundle,
            recorded: other.report_sha256.clone(),
        });
    }
    Ok(HistoryCheck::Match {
        drill_id,
        sha256: bundle,
    })
}

/// Everything `evidence verify` checked: the files against SHA256SUMS, and when asked the
/// signature and the history line.
#[derive(Debug)]
pub struct Verification {
    /// The files against SHA256SUMS.
    pub files: Findings,
    /// The signature against the allowed signers (`--allowed-signers`).
    pub signature: Option<SignatureCheck>,
    /// report.json against the history (`--history`).
    pub history: Option<HistoryCheck>,
}

impl Verification {
    /// The files intact, and what else was asked good.
    pub fn is_intact(&self) -> bool {
        self.files.is_intact()
            && self
                .signature
                .as_ref()
                .is_none_or(|s| matches!(s, SignatureCheck::Good { .. }))
            && self.history.as_ref().is_none_or(HistoryCheck::holds)
    }
}

/// The verification result for a terminal, one line per finding, the verdict last.
pub fn render(dir: &Path, v: &Verification, history: Option<&Path>) -> String {
    let f = &v.files;
    let mut o = String::new();
    for (what, names) in [
        ("changed", &f.changed),
        ("added", &f.added),
        ("removed", &f.removed),
    ] {
        for n in names {
            o.push_str(&format!("{what}: {n}\n"));
        }
    }
    match &v.signature {
        Some(SignatureCheck::Good {
            principals,
            line,
            fingerprint,
        }) => o.push_str(&format!(
            "signature: good: {SUMS} signed by {principals} (ED25519 key {fingerprint}, allowed signers line {line})\n"
        )),
        Some(SignatureCheck::Missing) => o.push_str(&format!(
            "signature: MISSING: no {SIG} in {}; an unsigned {SUMS} can be rewritten along with the files it lists (sign drills with --sign-key FILE)\n",
            dir.display()
        )),
        Some(SignatureCheck::Bad(why)) => o.push_str(&format!("signature: BAD: {why}\n")),
        None if signature::is_signed(dir) => o.push_str(&format!(
            "signature: {SIG} not checked (give --allowed-signers FILE to check it)\n"
        )),
        None => {}
    }
    let file = history.map(|h| h.display().to_string()).unwrap_or_default();
    match &v.history {
        Some(HistoryCheck::Match { drill_id, sha256 }) => o.push_str(&format!(
            "history: report.json sha256 {sha256} matches the line of drill {drill_id} in {file}\n"
        )),
        Some(HistoryCheck::Mismatch {
            drill_id,
            bundle,
            recorded,
        }) => o.push_str(&format!(
            "history: MISMATCH: report.json has sha256 {bundle}, but the line of drill {drill_id} in {file} recorded {recorded}\n"
        )),
        Some(HistoryCheck::NoLine { drill_id, bundle }) => o.push_str(&format!(
            "history: NO LINE: {file} has no line for drill {drill_id} (report.json sha256 {bundle}, recorded: none)\n"
        )),
        Some(HistoryCheck::NoReport(why)) => {
            o.push_str(&format!("history: NOT CHECKED: {why}\n"))
        }
        None => {}
    }
    if !f.is_intact() {
        o.push_str(&format!(
            "NOT INTACT: {} changed, {} added, {} removed since {} was sealed\n",
            f.changed.len(),
            f.added.len(),
            f.removed.len(),
            dir.display()
        ));
    } else if v.is_intact() {
        o.push_str(&format!(
            "intact: {} files in {} match {SUMS}\n",
            f.intact,
            dir.display()
        ));
    } else {
        o.push_str(&format!(
            "NOT INTACT: the {} files in {} match {SUMS}, but {SUMS} itself is not proven (see above)\n",
            f.intact,
            dir.display()
        ));
    }
    o
}

/// How a drill's evidence is published after its report is written.
#[derive(Debug, Clone)]
pub struct Publish {
    /// The history file the drill appends to.
    pub history: PathBuf,
    /// Whether the dump is sealed with the rest (`--no-dump-in-bundle` clears it).
    pub dump_in_bundle: bool,
    /// The key that signs the seal (`--sign-key`), read before the drill started.
    pub sign_key: Option<signature::SigningKey>,
    /// A real drill, or a test drill (`--tamper-sql`, `--fault`) its history line marks.
    pub kind: super::history::DrillKind,
}

/// The CI run's page, where its artifacts are, from GitHub Actions' variables.
pub fn artifacts_url() -> Option<String> {
    let var = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
    Some(format!(
        "{}/{}/actions/runs/{}",
        var("GITHUB_SERVER_URL")?.trim_end_matches('/'),
        var("GITHUB_REPOSITORY")?,
        var("GITHUB_RUN_ID")?
    ))
}

/// History line, seal, its signature, step summary: see [`super::Report::publish`]. Returns the warnings
/// for the person running the drill (a step summary that could not be appended: the drill's
/// verdict stands).
pub fn publish(r: &super::Report, dir: &Path, opts: &Publish) -> Result<Vec<String>, Error> {
    let report = dir.join("report.json");
    let (_, sha) = crate::digest::sha256_file_blocking(&report)
        .map_err(|e| env_io(format!("hashing {}", report.display()), e))?;
    let entry = super::history::Entry::of(r, &report, sha, opts.kind);
    super::history::append(&opts.history, &entry)?;
    seal(
        dir,
        opts.dump_in_bundle,
        std::slice::from_ref(&opts.history),
    )?;
    if let Some(key) = &opts.sign_key {
        signature::sign(dir, key)?;
    }
    let mut warnings = Vec::new();
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let text = super::markdown::step_summary(r, artifacts_url().as_deref());
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
        if let Err(e) = appended {
            // The drill's verdict stands; a CI page that cannot be written only loses a summary.
            warnings.push(format!(
                "cannot append the step summary to {} ({e})",
                PathBuf::from(path).display()
            ));
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_changed_added_removed() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("backup")).unwrap();
        std::fs::write(d.path().join("report.json"), b"{}").unwrap();
        std::fs::write(d.path().join("backup/x.dump"), b"dump").unwrap();
        std::fs::write(d.path().join("backup/x.globals.sql"), b"g").unwrap();
        seal(d.path(), false, &[]).unwrap();
        assert!(verify(d.path()).unwrap().is_intact());
        std::fs::write(d.path().join("report.json"), b"{ }").unwrap();
        std::fs::write(d.path().join("extra"), b"").unwrap();
        std::fs::remove_file(d.path().join("backup/x.globals.sql")).unwrap();
        let f = verify(d.path()).unwrap();
        assert_eq!(f.changed, ["report.json"]);
        assert_eq!(f.added, ["extra"]);
        assert_eq!(f.removed, ["backup/x.globals.sql"]);
    }
}
