//! The application's configuration secrets, held as `secrecy::SecretString` so that no
//! `Debug` (of a struct, an error, a plan) can print them: a value is read only where it is
//! handed to the app (its environment, its configuration file, the role's password).

use secrecy::{ExposeSecret, SecretString};

/// An app's environment: key names in the clear, values secret.
pub type SecretEnv = Vec<(String, SecretString)>;

/// `pairs` with their values made secret.
pub fn secret_env(pairs: &[(String, String)]) -> SecretEnv {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), SecretString::from(v.as_str())))
        .collect()
}

/// The secrets a drill hands the sample app: API_KEY, VPN_PEER and the password of its
/// database role (`pgdrill_app`), made up fresh for each drill.
#[derive(Debug)]
pub struct AppSecrets {
    api_key: SecretString,
    vpn_peer: SecretString,
    db_password: SecretString,
}

impl AppSecrets {
    /// New random values.
    pub fn generate() -> Self {
        let r = || uuid::Uuid::new_v4().simple().to_string();
        AppSecrets {
            api_key: format!("ak-{}", r()).into(),
            vpn_peer: format!("peer-{}", &r()[..12]).into(),
            db_password: r().into(),
        }
    }

    /// The `API_KEY` and `VPN_PEER` entries of the app's environment.
    pub fn env(&self) -> SecretEnv {
        vec![
            ("API_KEY".to_string(), self.api_key.clone()),
            ("VPN_PEER".to_string(), self.vpn_peer.clone()),
        ]
    }

    /// The sample app's `API_KEY`.
    pub fn api_key(&self) -> &SecretString {
        &self.api_key
    }

    /// The sample app's `VPN_PEER`.
    pub fn vpn_peer(&self) -> &SecretString {
        &self.vpn_peer
    }

    /// The app role's password (for `ALTER ROLE … PASSWORD` and the app's `Endpoint`).
    pub fn db_password(&self) -> &SecretString {
        &self.db_password
    }

    /// The environment entries as plain pairs, for an [`crate::app::AppSpec`]'s `env`.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env()
            .into_iter()
            .map(|(k, v)| (k, v.expose_secret().to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_a_value() {
        let s = AppSecrets::generate();
        let shown = format!("{s:?} {:?}", s.env());
        for (_, v) in s.env_pairs() {
            assert!(!shown.contains(&v), "{shown}");
        }
        assert!(!shown.contains(s.db_password().expose_secret()), "{shown}");
        assert!(shown.contains("API_KEY"), "{shown}");
    }
}
