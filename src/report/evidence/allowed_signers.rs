//! OpenSSH's allowed signers file (`ssh-keygen(1)`, "ALLOWED SIGNERS"), the list of whose
//! signatures `evidence verify --allowed-signers FILE` accepts: one signer a line,
//! `principal[,principal…] [option[,option…]] key-type base64-key [comment]`, `#` comments and
//! blank lines ignored. It is read as `ssh-keygen -Y verify` reads it, so that the same file
//! serves an auditor who has only OpenSSH: the principals are a pattern list (possibly quoted),
//! the options `cert-authority`, `namespaces="…"`, `valid-after="…"` and `valid-before="…"`
//! (keywords in any case, values quoted), and a line that does not read is an error naming it.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, PublicKey};

/// Every signer of one allowed signers file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedSigners {
    /// The signers, one per line that is not blank or a comment.
    pub signers: Vec<AllowedSigner>,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct AllowedSigner {
    /// Its line number, from 1.
    pub line: usize,
    /// The principals as written (a comma-separated pattern list, quotes removed).
    pub principals: String,
    /// Its options.
    pub options: SignerOptions,
    /// The signer's public key.
    pub key: PublicKey,
}

/// The options of a line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerOptions {
    /// `cert-authority`: the key signs certificates, never files, so it matches no plain key.
    pub cert_authority: bool,
    /// `namespaces="…"`: the namespace patterns the key may sign for (any when absent).
    pub namespaces: Option<String>,
    /// `valid-after="…"`: the key is trusted only after this moment.
    pub valid_after: Option<DateTime<Utc>>,
    /// `valid-before="…"`: the key is trusted only before this moment.
    pub valid_before: Option<DateTime<Utc>>,
}

/// Why the file does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A line does not read.
    #[error("line {line}: {reason}")]
    Line {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No line lists a signer.
    #[error("lists no signer (every line is blank or a # comment)")]
    Empty,
}

/// What the file says of one signing key for one namespace at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<'a> {
    /// A line lists the key and allows it here.
    Allowed(&'a AllowedSigner),
    /// Lines list the key, but none allows it (the first one's reason).
    Refused(&'a AllowedSigner, String),
    /// No line lists the key.
    NotListed,
}

impl AllowedSigners {
    /// Reads the text of an allowed signers file. A file that lists no signer is an error too:
    /// it would accept nothing.
    pub fn parse(text: &str) -> Result<AllowedSigners, ParseError> {
        let mut signers = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let parsed = parse_line(line).map_err(|reason| ParseError::Line {
                line: line_no,
                reason,
            })?;
            if let Some((principals, options, key)) = parsed {
                signers.push(AllowedSigner {
                    line: line_no,
                    principals,
                    options,
                    key,
                });
            }
        }
        if signers.is_empty() {
            return Err(ParseError::Empty);
        }
        Ok(AllowedSigners { signers })
    }

    /// What the file says of `key` signing for `namespace` at `now`, as `ssh-keygen -Y
    /// find-principals` decides it: a line whose key is `key` (not a `cert-authority` line),
    /// whose namespaces (if given) match and whose validity (if given) covers `now`.
    pub fn find(&self, key: &KeyData, namespace: &str, now: DateTime<Utc>) -> Lookup<'_> {
        let mut refused = None;
        for s in self
            .signers
            .iter()
            .filter(|s| !s.options.cert_authority && s.key.key_data() == key)
        {
            match s.refusal(namespace, now) {
                None => return Lookup::Allowed(s),
                Some(why) => {
                    refused.get_or_insert((s, why));
                }
            }
        }
        match refused {
            Some((s, why)) => Lookup::Refused(s, why),
            None => Lookup::NotListed,
        }
    }
}

impl AllowedSigner {
    /// Why this line does not allow its key for `namespace` at `now`, if it does not.
    fn refusal(&self, namespace: &str, now: DateTime<Utc>) -> Option<String> {
        let o = &self.options;
        if let Some(ns) = &o.namespaces {
            if !matches_pattern_list(namespace, ns) {
                return Some(format!(
                    "line {} allows the key only for namespaces \"{ns}\", not {namespace}",
                    self.line
                ));
            }
        }
        if let Some(after) = o.valid_after.filter(|a| now < *a) {
            return Some(format!(
                "line {} trusts the key only from {}",
                self.line,
                after.to_rfc3339()
            ));
        }
        if let Some(before) = o.valid_before.filter(|b| now > *b) {
            return Some(format!(
                "line {} trusted the key only until {}",
                self.line,
                before.to_rfc3339()
            ));
        }
        None
    }
}

/// The next field of `s` (after leading blanks): a `"quoted"` one up to its closing quote, else
/// up to the next blank; and the rest. `None` when nothing is left.
fn field(s: &str) -> Result<Option<(&str, &str)>, String> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return Ok(None);
    }
    if let Some(quoted) = s.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| "a quote is not closed".to_string())?;
        return Ok(Some((&quoted[..end], &quoted[end + 1..])));
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Ok(Some((&s[..end], &s[end..])))
}

/// The options field: up to the first blank outside double quotes.
fn options_field(s: &str) -> Result<(&str, &str), String> {
    let s = s.trim_start_matches([' ', '\t']);
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '\t' if !quoted => return Ok((&s[..i], &s[i..])),
            _ => {}
        }
    }
    if quoted {
        return Err("a quote in the options is not closed".into());
    }
    Ok((s, ""))
}

/// Whether `token` names an SSH key type, which tells a line without options from one with.
fn is_key_type(token: &str) -> bool {
    token.ends_with("-cert-v01@openssh.com")
        || Algorithm::from_str(token).is_ok_and(|a| !matches!(a, Algorithm::Other(_)))
}

const FORM: &str = "each line is `principal[,principal…] [options] key-type base64-key [comment]`, e.g. `auditor@example.com ssh-ed25519 AAAAC3Nza… drills`";

/// A line's principals, options and key; `None` for a blank line or a comment.
fn parse_line(line: &str) -> Result<Option<(String, SignerOptions, PublicKey)>, String> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return Ok(None);
    }
    let (principals, rest) = field(trimmed)?.ok_or_else(|| FORM.to_string())?;
    if principals.is_empty() {
        return Err(format!("no principal; {FORM}"));
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let first = rest.split([' ', '\t']).next().unwrap_or("");
    if first.is_empty() {
        return Err(format!("no key after the principals; {FORM}"));
    }
    let (options, rest) = if is_key_type(first) {
        ("", rest)
    } else {
        options_field(rest)?
    };
    let (kind, rest) = field(rest)?.ok_or_else(|| {
        format!("`{options}` is neither an SSH key type (ssh-ed25519 …) nor options followed by a key; {FORM}")
    })?;
    let options = parse_options(options)?;
    if !is_key_type(kind) {
        return Err(format!("`{kind}` is not an SSH key type; {FORM}"));
    }
    let (base64, _comment) = field(rest)?.ok_or_else(|| format!("no base64 key after {kind}"))?;
    let key = PublicKey::from_openssh(&format!("{kind} {base64}"))
        .map_err(|e| format!("the {kind} key does not read ({e})"))?;
    Ok(Some((principals.to_string(), options, key)))
}

fn parse_options(options: &str) -> Result<SignerOptions, String> {
    let mut s = SignerOptions::default();
    if options.is_empty() {
        return Ok(s);
    }
    for opt in split_outside_quotes(options) {
        let (name, raw) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let value = || -> Result<&str, String> {
            let v = raw.ok_or_else(|| format!("option {name} needs a value: {name}=\"…\""))?;
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .ok_or_else(|| format!("the value of option {name} must be in double quotes"))
        };
        let twice = || format!("option {name} is given twice");
        match name.to_ascii_lowercase().as_str() {
            "cert-authority" if raw.is_none() => {
                if s.cert_authority {
                    return Err(twice());
                }
                s.cert_authority = true;
            }
            "namespaces" => {
                if s.namespaces.is_some() {
                    return Err(twice());
                }
                s.namespaces = Some(value()?.to_string());
            }
            "valid-after" => {
                if s.valid_after.is_some() {
                    return Err(twice());
                }
                s.valid_after = Some(parse_timestamp(value()?)?);
            }
            "valid-before" => {
                if s.valid_before.is_some() {
                    return Err(twice());
                }
                s.valid_before = Some(parse_timestamp(value()?)?);
            }
            _ => {
                return Err(format!(
                "unsupported option `{opt}`; OpenSSH's are cert-authority, namespaces=\"…\", valid-after=\"…\" and valid-before=\"…\""
            ))
            }
        }
    }
    Ok(s)
}

fn split_outside_quotes(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `YYYYMMDD[Z]` or `YYYYMMDDHHMM[SS][Z]`: UTC with `Z`, else this machine's time zone, as
/// OpenSSH reads them.
fn parse_timestamp(v: &str) -> Result<DateTime<Utc>, String> {
    let bad = || {
        format!(
            "timestamp `{v}` is not YYYYMMDD or YYYYMMDDHHMM[SS], optionally followed by Z for UTC"
        )
    };
    let (digits, utc) = match v.strip_suffix('Z') {
        Some(d) => (d, true),
        None => (v, false),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    // Sliced by hand: chrono's %Y would take every digit as the year.
    let n = |from: usize, to: usize| digits.get(from..to).and_then(|d| d.parse::<u32>().ok());
    let naive = NaiveDate::from_ymd_opt(
        n(0, 4).ok_or_else(bad)? as i32,
        n(4, 6).ok_or_else(bad)?,
        n(6, 8).ok_or_else(bad)?,
    )
    .and_then(|d| {
        d.and_hms_opt(
            n(8, 10).unwrap_or(0),
            n(10, 12).unwrap_or(0),
            n(12, 14).unwrap_or(0),
        )
    })
    .ok_or_else(bad)?;
    if utc {
        Ok(naive.and_utc())
    } else {
        chrono::Local
            .from_local_datetime(&naive)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| format!("timestamp `{v}` does not exist in this machine's time zone"))
    }
}

/// OpenSSH's pattern list (`ssh_config(5)`, PATTERNS): comma-separated patterns with `*` and
/// `?`; a match of a `!`-negated pattern refuses whatever else matched.
fn matches_pattern_list(s: &str, list: &str) -> bool {
    let mut matched = false;
    for pattern in list.split(',') {
        match pattern.strip_prefix('!') {
            Some(negated) if wildcard(s, negated) => return false,
            Some(_) => {}
            None => matched |= wildcard(s, pattern),
        }
    }
    matched
}

/// `*` and `?` matching without recursion, in time at most the product of the lengths (the
/// pattern is outside input: no backtracking blow-up).
fn wildcard(s: &str, pattern: &str) -> bool {
    let (s, p): (Vec<char>, Vec<char>) = (s.chars().collect(), pattern.chars().collect());
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if j < p.len() && (p[j] == '?' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '*' {
            star = Some((j, i));
            j += 1;
        } else if let Some((sj, si)) = star {
            j = sj + 1;
            i = si + 1;
            star = Some((sj, si + 1));
        } else {
            return false;
        }
    }
    p[j..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFy/0dVpLW13dk5NCxNkhmtoHs3F/O6WTA53OcpJTwym";

    #[test]
    fn lines_with_and_without_options_and_quotes() {
        let text = format!(
            "# auditors\n\n  alice@example.com,bob ssh-ed25519 {KEY} alice's laptop\n\
             \"carol x\" namespaces=\"pgdrill-evidence,git\",VALID-AFTER=\"20260101Z\" ssh-ed25519 {KEY}\n\
             ca@example.com cert-authority ssh-ed25519 {KEY}\n"
        );
        let a = AllowedSigners::parse(&text).unwrap();
        assert_eq!(a.signers.len(), 3);
        assert_eq!(
            (a.signers[0].line, a.signers[0].principals.as_str()),
            (3, "alice@example.com,bob")
        );
        assert_eq!(a.signers[1].principals, "carol x");
        assert_eq!(
            a.signers[1].options.namespaces.as_deref(),
            Some("pgdrill-evidence,git")
        );
        assert_eq!(
            a.signers[1].options.valid_after.unwrap().to_rfc3339(),
            "2026-01-01T00:00:00+00:00"
        );
        assert!(a.signers[2].options.cert_authority);
    }

    #[test]
    fn a_bad_line_is_named_with_its_fault() {
        let err = |text: &str| AllowedSigners::parse(text).unwrap_err().to_string();
        assert_eq!(
            err("# only a comment\n"),
            "lists no signer (every line is blank or a # comment)"
        );
        assert!(err(&format!("\nalice ssh-ed25519 {}", &KEY[..20]))
            .starts_with("line 2: the ssh-ed25519 key does not read"));
        assert!(err(&format!("alice nope=\"x\" ssh-ed25519 {KEY}"))
            .contains("unsupported option `nope=\"x\"`"));
        assert!(err(&format!("alice namespaces=x ssh-ed25519 {KEY}")).contains("double quotes"));
        assert!(
            err(&format!("alice valid-before=\"2026\" ssh-ed25519 {KEY}")).contains("YYYYMMDD")
        );
        assert!(err("alice").contains("no key after the principals"));
        assert!(err(&format!("alice {KEY}")).contains("is neither an SSH key type"));
        assert!(
            err(&format!("alice cert-authority x {KEY}")).contains("`x` is not an SSH key type")
        );
        assert!(err(&format!("\"alice ssh-ed25519 {KEY}")).contains("quote"));
    }

    #[test]
    fn find_honours_namespaces_validity_and_cert_authority() {
        let key = PublicKey::from_openssh(&format!("ssh-ed25519 {KEY}")).unwrap();
        let now = Utc::now();
        let find = |text: &str| {
            let a = AllowedSigners::parse(text).unwrap();
            match a.find(key.key_data(), "pgdrill-evidence", now) {
                Lookup::Allowed(s) => format!("allowed {}", s.principals),
                Lookup::Refused(_, why) => format!("refused: {why}"),
                Lookup::NotListed => "not listed".into(),
            }
        };
        assert_eq!(find(&format!("a ssh-ed25519 {KEY}")), "allowed a");
        assert_eq!(
            find(&format!("a cert-authority ssh-ed25519 {KEY}")),
            "not listed"
        );
        assert!(find(&format!("a namespaces=\"git\" ssh-ed25519 {KEY}"))
            .starts_with("refused: line 1 allows the key only for namespaces"));
        assert_eq!(
            find(&format!(
                "a namespaces=\"pgdrill-*,!git\" ssh-ed25519 {KEY}"
            )),
            "allowed a"
        );
        assert!(
            find(&format!("a valid-before=\"20000101Z\" ssh-ed25519 {KEY}"))
                .contains("only until 2000-01-01")
        );
        assert!(
            find(&format!("a valid-after=\"29990101\" ssh-ed25519 {KEY}")).contains("only from")
        );
        assert_eq!(
            find(&format!(
                "a namespaces=\"git\" ssh-ed25519 {KEY}\nb ssh-ed25519 {KEY}"
            )),
            "allowed b"
        );
    }

    #[test]
    fn patterns() {
        assert!(matches_pattern_list("pgdrill-evidence", "pgdrill-evidence"));
        assert!(matches_pattern_list("pgdrill-evidence", "git,pgdrill-*"));
        assert!(matches_pattern_list("pgdrill-evidence", "pgdrill-?vidence"));
        assert!(!matches_pattern_list("pgdrill-evidence", "*,!pgdrill*"));
        assert!(!matches_pattern_list("pgdrill-evidence", "pgdrill"));
        assert!(wildcard("", "*"));
        assert!(!wildcard(
            &"a".repeat(5000),
            &format!("{}b", "*a".repeat(2000))
        ));
    }
}
