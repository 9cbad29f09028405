//! A user-style application made here: a git repository with tagged releases and a deploy
//! script, a `.env` and a WireGuard file with canary secrets, and what of it must not change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::support::{git, sample_app};

/// Every file and directory under `dir` with its size, mode and modification time, and each
/// file's bytes: a write anywhere under it changes this.
type Listing = BTreeMap<PathBuf, (u64, u32, SystemTime, Option<Vec<u8>>)>;

fn listing(dir: &Path) -> Listing {
    fn walk(dir: &Path, root: &Path, out: &mut Listing) {
        use std::os::unix::fs::PermissionsExt;
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let meta = e.metadata().unwrap();
            let bytes = meta.is_file().then(|| std::fs::read(e.path()).unwrap());
            out.insert(
                e.path().strip_prefix(root).unwrap().to_path_buf(),
                (
                    meta.len(),
                    meta.permissions().mode(),
                    meta.modified().unwrap(),
                    bytes,
                ),
            );
            if meta.is_dir() {
                walk(&e.path(), root, out);
            }
        }
    }
    let mut out = Listing::new();
    walk(dir, dir, &mut out);
    out
}

/// A free loopback port for a user's app (it binds it itself).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A WireGuard key: 32 random bytes in standard base64.
fn wg_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
}

/// The user's release tags, oldest first; HEAD is at the newest (the bad release deployed when
/// the disaster strikes), so `previous` is v1.0.0.
const USER_TAGS: [&str; 3] = ["v0.9.0", "v1.0.0", "v1.1.0"];

/// The user's deploy script, in every release: copies the release's `release.env` into the
/// deploy directory and writes nothing else.
const USER_DEPLOY_SH: &str = r#"#!/bin/sh
# Deploys a release of the billing service: its release.env goes into the deploy directory.
set -eu
cp "$PGDRILL_RELEASE_WORKTREE/release.env" "$PGDRILL_DEPLOY_DIR/release.env"
echo "deployed billing $PGDRILL_RELEASE_TAG"
"#;

/// The deploy command a user would give for that script.
pub(super) const USER_DEPLOY: &str = r#"sh "$PGDRILL_RELEASE_WORKTREE/deploy.sh""#;

/// A user's application as a user has it: the sample-app binary run by a start command, its
/// configuration in a `.env` and a WireGuard file of their own (with canary secrets), its
/// code in a git repository with tagged releases and a deploy script.
pub(super) struct UserApp {
    /// Holds everything; removed when the test ends.
    dir: tempfile::TempDir,
    pub(super) repo: PathBuf,
    env_file: PathBuf,
    wg_file: PathBuf,
    /// The `.env`'s API_KEY: a canary that must appear in no output.
    api_key: String,
    /// The WireGuard file's PrivateKey: another canary.
    wg_private_key: String,
    /// The `.env`'s VPN_PEER: a third.
    vpn_peer: String,
    /// Tag → commit.
    commits: BTreeMap<String, String>,
    port: u16,
}

/// What the user owns, before and after a drill: it must not change.
#[derive(Debug, PartialEq)]
pub(super) struct UserState {
    pub(super) status: String,
    refs: String,
    head: String,
    repo: Listing,
    config: Listing,
}

impl UserApp {
    pub(super) fn new() -> UserApp {
        let dir = tempfile::Builder::new()
            .prefix("pgdrill-test-full-user-")
            .tempdir()
            .unwrap();
        let repo = dir.path().join("billing");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(repo.join("deploy.sh"), USER_DEPLOY_SH).unwrap();
        let mut commits = BTreeMap::new();
        for tag in USER_TAGS {
            // RELEASE is what the app reports when it runs without the drill's marker.
            std::fs::write(
                repo.join("release.env"),
                format!("# billing {tag}\nRELEASE={tag}\nWORKER_INTERVAL_MS=200\n"),
            )
            .unwrap();
            git(&repo, &["add", "--all"]);
            git(
                &repo,
                &["commit", "--quiet", "-m", &format!("billing {tag}")],
            );
            git(&repo, &["tag", "-a", tag, "-m", &format!("billing {tag}")]);
            commits.insert(tag.to_string(), git(&repo, &["rev-parse", "HEAD"]));
        }
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(etc.join("billing")).unwrap();
        std::fs::create_dir_all(etc.join("wireguard")).unwrap();
        let api_key = format!("canary-{}", uuid::Uuid::new_v4().simple());
        let vpn_peer = format!(
            "office-gw-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        );
        let env_file = etc.join("billing/.env");
        std::fs::write(
            &env_file,
            format!("# billing service\nAPI_KEY={api_key}\nVPN_PEER={vpn_peer}\n"),
        )
        .unwrap();
        let wg_private_key = wg_key();
        let wg_file = etc.join("wireguard/wg-office.conf");
        std::fs::write(
            &wg_file,
            format!(
                "[Interface]\nPrivateKey = {wg_private_key}\nAddress = 10.88.0.2/32\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.88.0.0/24\nEndpoint = vpn.example.invalid:51820\n",
                wg_key()
            ),
        )
        .unwrap();
        UserApp {
            dir,
            repo,
            env_file,
            wg_file,
            api_key,
            wg_private_key,
            vpn_peer,
            commits,
            port: free_port(),
        }
    }

    pub(super) fn commit(&self, tag: &str) -> &str {
        &self.commits[tag]
    }

    pub(super) fn secrets(&self) -> [&str; 3] {
        [&self.api_key, &self.wg_private_key, &self.vpn_peer]
    }

    /// The configuration flags: the user's two files and the keys they must hold.
    pub(super) fn config_args(&self) -> Vec<String> {
        [
            "--config-file",
            &self.env_file.display().to_string(),
            "--config-file",
            &self.wg_file.display().to_string(),
            "--require",
            "API_KEY",
            "--require",
            "VPN_PEER",
            "--require",
            "PrivateKey",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The application's flags: started by a shell command reading its configuration from
    /// the drill's PGDRILL_CONFIG_DIR and its release from `release_dir` (a shell word),
    /// judged by its URLs; its code deployed with `deploy`.
    pub(super) fn args(&self, release_dir: &str, deploy: &str) -> Vec<String> {
        let base = format!("http://127.0.0.1:{}", self.port);
        let start = format!(
            r#"LISTEN_ADDR=127.0.0.1:{} SAMPLE_APP_ENV_FILE="$PGDRILL_CONFIG_DIR/.env" SAMPLE_APP_RELEASE_DIR="{release_dir}" exec '{}'"#,
            self.port,
            sample_app().display()
        );
        let mut a: Vec<String> = [
            "--app",
            "custom",
            "--app-start",
            &start,
            "--app-health-url",
            &format!("{base}/health"),
            "--app-version-url",
            &format!("{base}/version"),
            "--app-metrics-url",
            &format!("{base}/metrics"),
            "--code-repo",
            &self.repo.display().to_string(),
            "--deploy",
            deploy,
        ]
        .map(String::from)
        .to_vec();
        a.extend(self.config_args());
        a
    }

    /// The usual application: it runs the release in the deploy directory (empty before the
    /// disaster: PGDRILL_DEPLOY_DIR is set only once a release was deployed).
    pub(super) fn default_args(&self) -> Vec<String> {
        self.args("$PGDRILL_DEPLOY_DIR", USER_DEPLOY)
    }

    pub(super) fn state(&self) -> UserState {
        UserState {
            status: git(&self.repo, &["status", "--porcelain"]),
            refs: git(&self.repo, &["show-ref", "--head"]),
            head: git(&self.repo, &["rev-parse", "HEAD"]),
            repo: listing(&self.repo),
            config: listing(&self.dir.path().join("etc")),
        }
    }

    /// Its app no longer answers: the drill stopped what it started.
    pub(super) fn assert_stopped(&self) {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "the user's app still listens on {} after the drill",
            self.port
        );
    }
}
