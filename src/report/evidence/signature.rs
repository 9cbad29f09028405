//! The bundle's signature: `SHA256SUMS.sig`, an Ed25519 signature of `SHA256SUMS` in OpenSSH's
//! SSHSIG format (namespace `pgdrill-evidence`), exactly what `ssh-keygen -Y sign -n
//! pgdrill-evidence -f KEY SHA256SUMS` writes, so that an auditor verifies it with OpenSSH
//! alone. SHA256SUMS binds every file; the signature binds SHA256SUMS to a key the auditor
//! trusts, which a rewritten SHA256SUMS cannot have. The crypto is the `ssh-key` crate's.

use std::path::Path;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

use super::allowed_signers::{AllowedSigners, Lookup};
use super::SUMS;
use crate::error::{EnvError, Error};

/// The SSHSIG namespace of pgdrill's signatures (`ssh-keygen -Y … -n pgdrill-evidence`).
pub const NAMESPACE: &str = "pgdrill-evidence";
/// The signature's file name in the bundle.
pub const SIG: &str = "SHA256SUMS.sig";

/// How to make a key pgdrill can sign with, for the errors that need one.
const MAKE_KEY: &str = "make one with `ssh-keygen -t ed25519 -N '' -f FILE`";

/// Why a signing key cannot be used (a usage error: the command names its flag and path).
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read it ({0}); give the path of an OpenSSH Ed25519 private key ({make_key})", make_key = MAKE_KEY)]
    Unreadable(std::io::Error),
    /// The file is a public key.
    #[error("this is a public key; give the private key (the file without .pub)")]
    PublicKey,
    /// The file is not an OpenSSH private key.
    #[error("not an OpenSSH private key ({0}); pgdrill reads the `-----BEGIN OPENSSH PRIVATE KEY-----` files ssh-keygen writes: {make_key}", make_key = MAKE_KEY)]
    NotOpenssh(String),
    /// The key is protected by a passphrase.
    #[error("the key is encrypted with a passphrase; pgdrill reads only unencrypted keys and does not use ssh-agent: {make_key} and keep it readable only by the user that runs the drills, or remove the passphrase from a copy with `ssh-keygen -p -N '' -f COPY`", make_key = MAKE_KEY)]
    Encrypted,
    /// The key is not Ed25519.
    #[error("a {0} key; pgdrill signs with Ed25519 keys only: {make_key}", make_key = MAKE_KEY)]
    NotEd25519(String),
}

/// An Ed25519 key read from an unencrypted OpenSSH private key file.
#[derive(Clone)]
pub struct SigningKey {
    key: PrivateKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        write!(f, "SigningKey({})", self.fingerprint())
    }
}

impl SigningKey {
    /// Reads the key at `path`: an unencrypted OpenSSH Ed25519 private key, else why not.
    pub fn read(path: &Path) -> Result<SigningKey, KeyError> {
        let text = std::fs::read_to_string(path)
            .map(SecretString::from)
            .map_err(KeyError::Unreadable)?;
        let text = text.expose_secret();
        if text.trim_start().starts_with("ssh-") || text.trim_start().starts_with("ecdsa-") {
            return Err(KeyError::PublicKey);
        }
        let key =
            PrivateKey::from_openssh(text).map_err(|e| KeyError::NotOpenssh(e.to_string()))?;
        if key.is_encrypted() {
            return Err(KeyError::Encrypted);
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(KeyError::NotEd25519(key.algorithm().to_string()));
        }
        Ok(SigningKey { key })
    }

    /// The public key's fingerprint as `ssh-keygen -l` prints it (`SHA256:…`).
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

fn env_io(what: String, source: std::io::Error) -> Error {
    Error::Environment(EnvError::io(what, source))
}

/// Signs `dir`'s `SHA256SUMS` into `SHA256SUMS.sig` (replacing an earlier one), with SHA-512
/// as the message hash like `ssh-keygen -Y sign`.
pub fn sign(dir: &Path, key: &SigningKey) -> Result<(), Error> {
    let sums_path = dir.join(SUMS);
    let sums = std::fs::read(&sums_path)
        .map_err(|e| env_io(format!("reading {}", sums_path.display()), e))?;
    let sig_path = dir.join(SIG);
    let failed = |e: ssh_key::Error| {
        env_io(
            format!("signing {}", sums_path.display()),
            std::io::Error::other(e),
        )
    };
    let pem = key
        .key
        .sign(NAMESPACE, HashAlg::Sha512, &sums)
        .and_then(|sig| sig.to_pem(LineEnding::LF))
        .map_err(failed)?;
    crate::digest::write_atomic_readable(&sig_path, pem.as_bytes()).map_err(|source| {
        Error::Output {
            path: sig_path,
            source,
        }
    })
}

/// What the signature check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// A good signature of this `SHA256SUMS` by a key the allowed signers file allows.
    Good {
        /// The principals of the allowing line.
        principals: String,
        /// That line's number.
        line: usize,
        /// The key's fingerprint (`SHA256:…`).
        fingerprint: String,
    },
    /// There is no `SHA256SUMS.sig`.
    Missing,
    /// There is one, but it does not prove the bundle: why.
    Bad(Rejection),
}

/// Why a `SHA256SUMS.sig` proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// It is not an SSH signature.
    #[error("{sig} is not an SSH signature ({0})", sig = SIG)]
    Unreadable(String),
    /// It was made for another purpose.
    #[error("{sig} was made for namespace `{0}`, not {namespace}: it is not a signature of a pgdrill bundle", sig = SIG, namespace = NAMESPACE)]
    Namespace(String),
    /// It was made with a key of another kind.
    #[error("{sig} was made with a {0} key; pgdrill bundles are signed with Ed25519 keys", sig = SIG)]
    NotEd25519(String),
    /// It does not sign this `SHA256SUMS`.
    #[error("{sig} (key {0}) is not a signature of this {sums}: {sums} was changed after it was signed", sig = SIG, sums = SUMS)]
    Mismatch(String),
    /// It is good, but by a key the file does not list.
    #[error("{sig} is signed by key {0}, which the allowed signers file does not list", sig = SIG)]
    NotListed(String),
    /// It is good, by a listed key that the file does not allow here.
    #[error("{sig} is signed by key {fingerprint} ({principals}), but {why}", sig = SIG)]
    Refused {
        /// The key's fingerprint.
        fingerprint: String,
        /// The principals of the line that lists it.
        principals: String,
        /// Why that line does not allow it.
        why: String,
    },
}

/// Whether `dir` has a signature at all.
pub fn is_signed(dir: &Path) -> bool {
    dir.join(SIG).exists()
}

/// Checks `dir`'s `SHA256SUMS.sig` against its `SHA256SUMS` and `signers` at `now`, as
/// `ssh-keygen -Y verify -n pgdrill-evidence` would with the allowing line's principal.
pub fn check(
    dir: &Path,
    signers: &AllowedSigners,
    now: DateTime<Utc>,
) -> Result<SignatureCheck, Error> {
    let sig_path = dir.join(SIG);
    let pem = match std::fs::read(&sig_path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SignatureCheck::Missing),
        Err(e) => return Err(env_io(format!("reading {}", sig_path.display()), e)),
    };
    let sums_path = dir.join(SUMS);
    let sums = std::fs::read(&sums_path)
        .map_err(|e| env_io(format!("reading {}", sums_path.display()), e))?;
    Ok(match judge(&pem, &sums, signers, now) {
        Ok(good) => good,
        Err(r) => SignatureCheck::Bad(r),
    })
}

/// The verdict on signature `pem` of `sums`; the reader of outside input behind [`check`].
pub fn judge(
    pem: &[u8],
    sums: &[u8],
    signers: &AllowedSigners,
    now: DateTime<Utc>,
) -> Result<SignatureCheck, Rejection> {
    let sig = SshSig::from_pem(pem).map_err(|e| Rejection::Unreadable(e.to_string()))?;
    if sig.namespace() != NAMESPACE {
        return Err(Rejection::Namespace(sig.namespace().to_string()));
    }
    let key = sig.public_key();
    if key.algorithm() != Algorithm::Ed25519 {
        return Err(Rejection::NotEd25519(key.algorithm().to_string()));
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    PublicKey::new(key.clone(), "")
        .verify(NAMESPACE, sums, &sig)
        .map_err(|_| Rejection::Mismatch(fingerprint.clone()))?;
    match signers.find(key, NAMESPACE, now) {
        Lookup::Allowed(s) => Ok(SignatureCheck::Good {
            principals: s.principals.clone(),
            line: s.line,
            fingerprint,
        }),
        Lookup::Refused(s, why) => Err(Rejection::Refused {
            fingerprint,
            principals: s.principals.clone(),
            why,
        }),
        Lookup::NotListed => Err(Rejection::NotListed(fingerprint)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file made from `seed`, read back; and its public line.
    fn key(dir: &Path, seed: u8) -> (SigningKey, String) {
        let k = PrivateKey::from(ssh_key::private::Ed25519Keypair::from_seed(&[seed; 32]));
        let path = dir.join(format!("id-{seed}"));
        std::fs::write(&path, k.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
        let public = k.public_key().to_openssh().unwrap();
        (SigningKey::read(&path).unwrap(), public)
    }

    #[test]
    fn sign_then_check_then_tamper() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(SUMS), "0000  report.json\n").unwrap();
        let (k, public) = key(d.path(), 1);
        sign(d.path(), &k).unwrap();
        let pem = std::fs::read_to_string(d.path().join(SIG)).unwrap();
        assert!(pem.starts_with("-----BEGIN SSH SIGNATURE-----\n"), "{pem}");
        let signers = AllowedSigners::parse(&format!("auditor@example.com {public}\n")).unwrap();
        let now = Utc::now();
        assert_eq!(
            check(d.path(), &signers, now).unwrap(),
            SignatureCheck::Good {
                principals: "auditor@example.com".into(),
                line: 1,
                fingerprint: k.fingerprint()
            }
        );
        std::fs::write(d.path().join(SUMS), "1111  report.json\n").unwrap();
        assert_eq!(
            check(d.path(), &signers, now).unwrap(),
            SignatureCheck::Bad(Rejection::Mismatch(k.fingerprint()))
        );
        let (_, stranger) = key(d.path(), 2);
        let strangers = AllowedSigners::parse(&format!("x {stranger}\n")).unwrap();
        sign(d.path(), &k).unwrap();
        assert_eq!(
            check(d.path(), &strangers, now).unwrap(),
            SignatureCheck::Bad(Rejection::NotListed(k.fingerprint()))
        );
        std::fs::remove_file(d.path().join(SIG)).unwrap();
        assert_eq!(
            check(d.path(), &signers, now).unwrap(),
            SignatureCheck::Missing
        );
        std::fs::write(d.path().join(SIG), "not a signature").unwrap();
        assert!(matches!(
            check(d.path(), &signers, now).unwrap(),
            SignatureCheck::Bad(Rejection::Unreadable(_))
        ));
    }

    #[test]
    fn keys_that_cannot_sign_say_why() {
        let d = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            let p = d.path().join("k");
            std::fs::write(&p, text).unwrap();
            SigningKey::read(&p).unwrap_err().to_string()
        };
        assert!(err("ssh-ed25519 AAAA x").contains("public key"));
        assert!(err("hello").contains("not an OpenSSH private key"));
        assert!(SigningKey::read(&d.path().join("none"))
            .unwrap_err()
            .to_string()
            .starts_with("cannot read it"));
    }
}
