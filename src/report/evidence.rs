//! The sealed evidence bundle: `SHA256SUMS` over every file a drill wrote into `--out`, in
//! `sha256sum` format (so `sha256sum -c SHA256SUMS` checks it too), and its verification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{EnvError, Error};

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
        if rel == SUMS || rel == UNSEALED || skip.contains(&root.join(&rel)) {
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
        crate::digest::write_atomic(&dir.join(UNSEALED), text.as_bytes())
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
    crate::digest::write_atomic(&dir.join(SUMS), text.as_bytes()).map_err(out_err(dir.join(SUMS)))
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
        if rel != SUMS && !listed.contains_key(&rel) && !excused.contains(&rel) {
            f.added.push(rel);
        }
    }
    Ok(f)
}

/// The verification result for a terminal, one line per finding.
pub fn render(dir: &Path, f: &Findings) -> String {
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
    if f.is_intact() {
        o.push_str(&format!(
            "intact: {} files in {} match {SUMS}\n",
            f.intact,
            dir.display()
        ));
    } else {
        o.push_str(&format!(
            "NOT INTACT: {} changed, {} added, {} removed since {} was sealed\n",
            f.changed.len(),
            f.added.len(),
            f.removed.len(),
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

/// History line, seal, step summary: see [`super::Report::publish`]. Returns the warnings
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
