//! Passwords of data sources: none, a literal, or a reference to an environment variable or a
//! file, resolved only when connecting. Neither `Debug` nor any error ever shows a literal.

use std::fmt;
use std::path::PathBuf;

/// A password as configured.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    None,
    Literal(String),
    Env(String),
    File(PathBuf),
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

    /// The password itself; the error names the reference, never a value.
    pub fn resolve(&self) -> Result<Option<String>, String> {
        match self {
            Secret::None => Ok(None),
            Secret::Literal(password) => Ok(Some(password.clone())),
            Secret::Env(name) => std::env::var(name)
                .map(Some)
                .map_err(|_| format!("environment variable {name} is not set on this node")),
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|text| Some(text.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|error| format!("cannot read password file {}: {error}", path.display())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_never_show_in_debug() {
        let secret = Secret::from_stored(Some("hunter2"));
        assert_eq!(format!("{secret:?}"), "********");
        assert_eq!(secret.resolve().unwrap().as_deref(), Some("hunter2"));
    }

    #[test]
    fn references_resolve_when_connecting_and_name_what_is_missing() {
        let missing = Secret::from_stored(Some("env:OTTR_TEST_SURELY_UNSET"));
        let error = missing.resolve().unwrap_err();
        assert!(error.contains("OTTR_TEST_SURELY_UNSET"));
        let dir = std::env::temp_dir().join(format!("ottr-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let file = Secret::from_stored(Some(&format!("file:{}", dir.display())));
        assert_eq!(file.resolve().unwrap().as_deref(), Some("s3cret"));
        std::fs::remove_file(dir).unwrap();
        assert_eq!(Secret::from_stored(None).resolve().unwrap(), None);
    }
}
