//! Key names of configuration files (`.env`, INI/WireGuard), never their values.

use serde::{Deserialize, Serialize};

/// How a configuration file is read for its key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `KEY=VALUE` lines, parsed with dotenvy.
    Dotenv,
    /// `[Section]` and `Key = Value` lines (a WireGuard or other VPN config).
    Ini,
    /// Any other file (an API key file): its name is its only key.
    Opaque,
}

/// One key of a file: its name, and whether its value is non-empty (the value itself is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// `NAME` in a `.env`, `Section.Key` in an INI file, the file name for an opaque file.
    pub name: String,
    /// Whether the value is non-empty after trimming.
    pub non_empty: bool,
}

/// Chooses the format from the file name and content.
pub fn detect(name: &str, bytes: &[u8]) -> Format {
    if name == ".env" || name.starts_with(".env.") || name.ends_with(".env") {
        return Format::Dotenv;
    }
    let is_ini = std::str::from_utf8(bytes).is_ok_and(|t| t.lines().any(|l| section(l).is_some()));
    if is_ini {
        Format::Ini
    } else {
        Format::Opaque
    }
}

fn section(line: &str) -> Option<&str> {
    let l = line.trim();
    l.strip_prefix('[')?.strip_suffix(']').map(str::trim)
}

/// The keys of a file. Errors never quote the file's content: a line may hold a secret.
pub fn keys(name: &str, format: Format, bytes: &[u8]) -> Result<Vec<Key>, String> {
    match format {
        Format::Dotenv => {
            let mut out = Vec::new();
            for item in dotenvy::from_read_iter(bytes) {
                // dotenvy's LineParse error carries the line itself, so it is not shown.
                let (k, v) = item.map_err(|_| {
                    "a line is not KEY=VALUE (or a comment); fix the .env file".to_string()
                })?;
                out.push(Key {
                    name: k,
                    non_empty: !v.trim().is_empty(),
                });
            }
            Ok(out)
        }
        Format::Ini => {
            // Hand-read because WireGuard repeats [Peer] sections, which INI crates merge.
            let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
            let mut current = None::<String>;
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
                    continue;
                }
                if let Some(s) = section(l) {
                    current = Some(s.to_string());
                    continue;
                }
                let Some((k, v)) = l.split_once('=') else {
                    return Err(format!(
                        "line {} is neither [Section] nor Key = Value",
                        i + 1
                    ));
                };
                let Some(sec) = &current else {
                    return Err(format!("line {} has a key before any [Section]", i + 1));
                };
                out.push(Key {
                    name: format!("{sec}.{}", k.trim()),
                    non_empty: !v.trim().is_empty(),
                });
            }
            Ok(out)
        }
        Format::Opaque => Ok(vec![Key {
            name: name.to_string(),
            non_empty: !String::from_utf8_lossy(bytes).trim().is_empty(),
        }]),
    }
}

/// Checks that an INI file is a usable WireGuard config: an `[Interface]` with `PrivateKey`
/// and `Address`, and every `[Peer]` with `PublicKey` and `AllowedIPs`; `Endpoint`, where
/// given, is `host:port`. Returns `Ok(false)` when the file is no WireGuard config at all.
pub fn check_wireguard(bytes: &[u8]) -> Result<bool, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(s) = section(l) {
            sections.push((s.to_ascii_lowercase(), Vec::new()));
        } else if let (Some((k, v)), Some(last)) = (l.split_once('='), sections.last_mut()) {
            last.1
                .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if !sections.iter().any(|(s, _)| s == "interface") {
        return Ok(false);
    }
    let has =
        |keys: &[(String, String)], k: &str| keys.iter().any(|(n, v)| n == k && !v.is_empty());
    for (n, (s, keys)) in sections.iter().enumerate() {
        let need: &[&str] = match s.as_str() {
            "interface" => &["privatekey", "address"],
            "peer" => &["publickey", "allowedips"],
            other => {
                return Err(format!(
                    "unknown section [{other}]; WireGuard has [Interface] and [Peer]"
                ))
            }
        };
        for k in need {
            if !has(keys, k) {
                return Err(format!(
                    "section {} ([{s}]) lacks a non-empty {}",
                    n + 1,
                    wg_name(k)
                ));
            }
        }
        if let Some((_, v)) = keys
            .iter()
            .find(|(k, _)| k == "privatekey" || k == "publickey")
        {
            // A WireGuard key is 32 bytes in base64: 44 characters ending in '='.
            if v.len() != 44 || !v.ends_with('=') {
                return Err(format!(
                    "section {} ([{s}]) has a key that is not 32 bytes of base64",
                    n + 1
                ));
            }
        }
        if let Some((_, v)) = keys.iter().find(|(k, _)| k == "endpoint") {
            let ok = v
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!(
                    "section {} ([{s}]) has an Endpoint that is not host:port",
                    n + 1
                ));
            }
        }
    }
    Ok(true)
}

fn wg_name(k: &str) -> &'static str {
    match k {
        "privatekey" => "PrivateKey",
        "address" => "Address",
        "publickey" => "PublicKey",
        _ => "AllowedIPs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WG: &str = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.0.0.2/32\n\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = vpn.example.org:51820\nAllowedIPs = 0.0.0.0/0\n";

    #[test]
    fn dotenv_keys_without_values() {
        let k = keys(".env", Format::Dotenv, b"A=1\n# c\nB=\nexport C=\"x y\"\n").unwrap();
        let names: Vec<_> = k.iter().map(|k| (k.name.as_str(), k.non_empty)).collect();
        assert_eq!(names, [("A", true), ("B", false), ("C", true)]);
    }

    #[test]
    fn dotenv_error_does_not_quote_the_line() {
        let e = keys(".env", Format::Dotenv, b"CANARY-zz9 oops\n").unwrap_err();
        assert!(!e.contains("zz9"), "{e}");
    }

    #[test]
    fn wireguard_keys_and_check() {
        assert_eq!(detect("wg0.conf", WG.as_bytes()), Format::Ini);
        let k = keys("wg0.conf", Format::Ini, WG.as_bytes()).unwrap();
        assert_eq!(k[0].name, "Interface.PrivateKey");
        assert_eq!(k[4].name, "Peer.AllowedIPs");
        assert_eq!(check_wireguard(WG.as_bytes()), Ok(true));
        let broken = WG.replace("AllowedIPs = 0.0.0.0/0\n", "");
        assert!(check_wireguard(broken.as_bytes())
            .unwrap_err()
            .contains("AllowedIPs"));
        let bad_ep = WG.replace("vpn.example.org:51820", "vpn.example.org");
        assert!(check_wireguard(bad_ep.as_bytes())
            .unwrap_err()
            .contains("Endpoint"));
        assert_eq!(check_wireguard(b"[other]\na=b\n"), Ok(false));
    }
}
