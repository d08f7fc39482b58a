//! Secrets of data sources and of the mail server: none, a literal, or a reference to an
//! environment variable or a file, resolved only when connecting, and only within what the
//! node's own command line allows.
//!
//! Invariants:
//! - a configuration row chooses *which* secret, never *where from*: `env:NAME` resolves only
//!   for names with the node's prefix (`--secret-env-prefix`, `OTTR_SECRET_` by default) and
//!   `file:PATH` only for a regular file inside the node's `--secrets-dir` (relative paths
//!   are taken inside it; symbolic links are followed before the check); anything else is
//!   refused by name, so a row cannot make a node send `OTTR_META` or `/etc/shadow` anywhere;
//! - files are read off the async threads, never block on a FIFO or a device, and are read
//!   up to a limit, past which they are refused;
//! - neither `Debug` nor any error ever shows a literal.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// The most a secret file may hold.
pub const SECRET_FILE_LIMIT: u64 = 64 << 10;
/// The most a certificate file may hold.
pub const CERTIFICATE_FILE_LIMIT: u64 = 1 << 20;
/// How long reading a file may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The environment variables a node resolves unless told otherwise.
pub const DEFAULT_ENV_PREFIX: &str = "OTTR_SECRET_";

/// A password as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    None,
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// Which references this node resolves: its own command line decides, never a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPolicy {
    /// `file:` references resolve inside this directory only (none: no file references).
    pub dir: Option<PathBuf>,
    /// `env:` references resolve for names with this prefix only.
    pub env_prefix: String,
}

impl Default for SecretPolicy {
    fn default() -> Self {
        SecretPolicy {
            dir: None,
            env_prefix: DEFAULT_ENV_PREFIX.to_owned(),
        }
    }
}

static POLICY: OnceLock<SecretPolicy> = OnceLock::new();

/// Sets this process's policy, once, from its command line; fails when the directory does
/// not exist. Without a call, the default applies (no files, `OTTR_SECRET_` variables).
pub fn install_policy(dir: Option<&Path>, env_prefix: Option<&str>) -> Result<(), String> {
    let dir = dir
        .map(|dir| {
            std::fs::canonicalize(dir)
                .map_err(|error| format!("--secrets-dir {}: {error}", dir.display()))
        })
        .transpose()?;
    let env_prefix = env_prefix.unwrap_or(DEFAULT_ENV_PREFIX).to_owned();
    // The node's own variables (OTTR_META, OTTR_META_PASSWORD, …) must stay out of reach.
    if env_prefix.is_empty() || "OTTR_META_PASSWORD".starts_with(&env_prefix) {
        return Err(format!(
            "--secret-env-prefix '{env_prefix}' would let configuration rows read the node's own variables (OTTR_META_PASSWORD): choose a longer one, e.g. {DEFAULT_ENV_PREFIX}"
        ));
    }
    let policy = SecretPolicy { dir, env_prefix };
    POLICY
        .set(policy)
        .map_err(|_| "the secret policy is already set".to_owned())
}

/// This process's policy.
pub fn policy() -> &'static SecretPolicy {
    POLICY.get_or_init(SecretPolicy::default)
}

impl Secret {
    /// Reads the stored form: NULL, `env:NAME`, `file:PATH`, or a literal.
    pub fn from_stored(stored: Option<&str>) -> Self {
        match stored {
            None => Secret::None,
            Some(text) => match (text.strip_prefix("env:"), text.strip_prefix("file:")) {
                (Some(name), _) => Secret::Env(name.to_owned()),
                (_, Some(path)) => Secret::File(PathBuf::from(path)),
                _ => Secret::Literal(text.to_owned()),
            },
        }
    }

    /// The password itself, under this process's policy; the error names the reference,
    /// never a value.
    pub async fn resolve(&self) -> Result<Option<String>, String> {
        self.resolve_with(policy()).await
    }

    /// The password itself, under `policy`.
    pub async fn resolve_with(&self, policy: &SecretPolicy) -> Result<Option<String>, String> {
        match self {
            Secret::None => Ok(None),
            Secret::Literal(password) => Ok(Some(password.clone())),
            Secret::Env(name) => {
                if !name.starts_with(&policy.env_prefix) {
                    return Err(format!(
                        "env:{name} is refused: this node resolves only environment variables starting with {} (--secret-env-prefix)",
                        policy.env_prefix
                    ));
                }
                std::env::var(name)
                    .map(Some)
                    .map_err(|_| format!("environment variable {name} is not set on this node"))
            }
            Secret::File(path) => {
                let bytes = read_secret_file_with(path, policy).await?;
                let text = String::from_utf8(bytes)
                    .map_err(|_| format!("password file {} is not UTF-8", path.display()))?;
                // A key lives in the same directory: never hand one out as a password.
                if text.contains("-----BEGIN") {
                    return Err(format!(
                        "file:{} holds a PEM object, not a password: refused",
                        path.display()
                    ));
                }
                Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
            }
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::None => f.write_str("none"),
            Secret::Literal(_) => f.write_str("********"),
            Secret::Env(name) => write!(f, "env:{name}"),
            Secret::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

/// A secret file (a password, a private key) named by configuration: it must be a regular
/// file inside the node's `--secrets-dir`; read up to [`SECRET_FILE_LIMIT`].
pub async fn read_secret_file(path: &Path) -> Result<Vec<u8>, String> {
    read_secret_file_with(path, policy()).await
}

async fn read_secret_file_with(path: &Path, policy: &SecretPolicy) -> Result<Vec<u8>, String> {
    let Some(dir) = policy.dir.clone() else {
        return Err(format!(
            "file:{} is refused: this node resolves no files (start it with --secrets-dir)",
            path.display()
        ));
    };
    let named = path.to_owned();
    let inside = dir.join(&named);
    let found = blocking(move || {
        std::fs::canonicalize(&inside)
            .map_err(|error| format!("secret file {}: {error}", named.display()))
    })
    .await?;
    if !found.starts_with(&dir) {
        return Err(format!(
            "file:{} is refused: it is not inside this node's --secrets-dir {}",
            path.display(),
            dir.display()
        ));
    }
    read_bounded(&found, SECRET_FILE_LIMIT, "secret file").await
}

/// A file that holds nothing secret (a CA or a certificate): any path, read up to
/// [`CERTIFICATE_FILE_LIMIT`], never blocking on a FIFO or a device.
pub async fn read_public_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    read_bounded(path, CERTIFICATE_FILE_LIMIT, what).await
}

/// Reads a regular file of at most `limit` bytes, off the async threads, within
/// [`READ_TIMEOUT`]; the error names `what` and the path.
async fn read_bounded(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, String> {
    let owned = path.to_owned();
    let shown = format!("{what} {}", path.display());
    let context = shown.clone();
    blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        // not even opened unless it is a regular file (opening a device can act)
        let kind = std::fs::metadata(&owned).map_err(|error| format!("{context}: {error}"))?;
        if !kind.is_file() {
            return Err(format!("{context} is not a regular file"));
        }
        // O_NONBLOCK: opening a FIFO does not wait for a writer
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&owned)
            .map_err(|error| format!("{context}: {error}"))?;
        let metadata = file
            .metadata()
            .map_err(|error| format!("{context}: {error}"))?;
        if !metadata.is_file() {
            return Err(format!("{context} is not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| format!("{context}: {error}"))?;
        if bytes.len() as u64 > limit {
            return Err(format!("{context} holds more than {limit} bytes"));
        }
        Ok(bytes)
    })
    .await
    .map_err(|error| {
        if error.starts_with(&shown) {
            error
        } else {
            format!("{shown}: {error}")
        }
    })
}

/// Runs file IO on the blocking pool, within [`READ_TIMEOUT`].
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(READ_TIMEOUT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err("reading it failed".into()),
        Err(_) => Err(format!("reading it took over {} s", READ_TIMEOUT.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ottr-secret-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.canonicalize().unwrap()
    }

    #[tokio::test]
    async fn literals_never_show_in_debug() {
        let secret = Secret::from_stored(Some("hunter2"));
        assert_eq!(format!("{secret:?}"), "********");
        assert_eq!(
            secret
                .resolve_with(&SecretPolicy::default())
                .await
                .unwrap()
                .as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            Secret::from_stored(None)
                .resolve_with(&SecretPolicy::default())
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn references_resolve_only_within_the_nodes_allow_list() {
        let dir = temp("allow");
        std::fs::write(dir.join("us.pw"), "s3cret\n").unwrap();
        let outside = temp("outside");
        std::fs::write(outside.join("stolen"), "nope").unwrap();
        std::os::unix::fs::symlink(outside.join("stolen"), dir.join("link")).unwrap();
        let policy = SecretPolicy {
            dir: Some(dir.clone()),
            env_prefix: "OTTR_TEST_SECRET_".into(),
        };
        let resolve = |stored: &str| {
            let secret = Secret::from_stored(Some(stored));
            let policy = policy.clone();
            async move { secret.resolve_with(&policy).await }
        };
        assert_eq!(
            resolve("file:us.pw").await.unwrap().as_deref(),
            Some("s3cret")
        );
        let absolute = format!("file:{}", dir.join("us.pw").display());
        assert_eq!(resolve(&absolute).await.unwrap().as_deref(), Some("s3cret"));
        for refused in [
            format!("file:{}", outside.join("stolen").display()),
            "file:../ottr-secret-outside-x/stolen".to_owned(),
            "file:link".to_owned(),
            "file:/etc/passwd".to_owned(),
        ] {
            let error = resolve(&refused).await.unwrap_err();
            assert!(
                error.contains("refused") || error.contains("No such file"),
                "{refused}: {error}"
            );
            assert!(!error.contains("nope"), "{error}");
        }
        std::fs::write(dir.join("client.key"), "-----BEGIN PRIVATE KEY-----\nx\n").unwrap();
        assert!(
            resolve("file:client.key")
                .await
                .unwrap_err()
                .contains("PEM")
        );
        let error = resolve("env:OTTR_META").await.unwrap_err();
        assert!(error.contains("env:OTTR_META is refused"), "{error}");
        assert!(
            resolve("env:OTTR_TEST_SECRET_SURELY_UNSET")
                .await
                .unwrap_err()
                .contains("not set")
        );
        // no --secrets-dir: no files at all
        let error = Secret::from_stored(Some("file:us.pw"))
            .resolve_with(&SecretPolicy::default())
            .await
            .unwrap_err();
        assert!(error.contains("--secrets-dir"), "{error}");
    }

    #[test]
    fn a_prefix_that_reaches_the_nodes_own_variables_is_refused() {
        for prefix in ["", "OTTR_", "OTTR_META"] {
            let error = install_policy(None, Some(prefix)).unwrap_err();
            assert!(error.contains("OTTR_META_PASSWORD"), "{prefix}: {error}");
        }
    }

    #[tokio::test]
    async fn fifos_devices_and_big_files_are_refused_without_blocking() {
        let dir = temp("fifo");
        let fifo = dir.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::write(dir.join("big"), vec![b'x'; SECRET_FILE_LIMIT as usize + 1]).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero")).unwrap();
        let policy = SecretPolicy {
            dir: Some(dir.clone()),
            env_prefix: DEFAULT_ENV_PREFIX.into(),
        };
        let started = std::time::Instant::now();
        let error = read_secret_file_with(Path::new("fifo"), &policy)
            .await
            .unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        let error = read_secret_file_with(Path::new("big"), &policy)
            .await
            .unwrap_err();
        assert!(error.contains("more than 65536 bytes"), "{error}");
        let error = read_secret_file_with(Path::new("zero"), &policy)
            .await
            .unwrap_err();
        assert!(error.contains("refused"), "{error}");
        let error = read_public_file(Path::new("/dev/zero"), "CA file")
            .await
            .unwrap_err();
        assert!(
            error.contains("CA file /dev/zero is not a regular file"),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
