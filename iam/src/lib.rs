//! Identities and their credentials.
//!
//! Today this is the root user from configuration; users, groups, policies and STS build on the
//! same [`IdentityStore`] later. Secrets never appear in `Debug` output or logs.

use std::fmt;

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    secret_key: String,
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

/// The credentials shipped as defaults; using them in production is a mistake worth a warning.
pub const DEFAULT_ROOT_USER: &str = "cofferadmin";
pub const DEFAULT_ROOT_PASSWORD: &str = "cofferadmin";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IamError {
    #[error("the root access key must be at least 3 characters long")]
    RootUserTooShort,
    #[error("the root secret key must be at least 8 characters long")]
    RootPasswordTooShort,
}

/// Who may sign requests, and with which secret.
#[derive(Debug, Clone)]
pub struct IdentityStore {
    root: Credentials,
}

/// The principal a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
}

impl IdentityStore {
    pub fn with_root(root: Credentials) -> Result<Self, IamError> {
        // The same minimums MinIO enforces, so configurations move over unchanged.
        if root.access_key.len() < 3 {
            return Err(IamError::RootUserTooShort);
        }
        if root.secret_key.len() < 8 {
            return Err(IamError::RootPasswordTooShort);
        }
        Ok(IdentityStore { root })
    }

    /// True when the root user still has the shipped default credentials.
    pub fn uses_default_root(&self) -> bool {
        self.root.access_key == DEFAULT_ROOT_USER && self.root.secret_key == DEFAULT_ROOT_PASSWORD
    }

    /// The secret that signs requests for `access_key`, and whose it is.
    pub fn lookup(&self, access_key: &str) -> Option<(&str, Principal)> {
        (access_key == self.root.access_key).then_some((self.root.secret_key(), Principal::Root))
    }

    pub fn root(&self) -> &Credentials {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lookup() {
        let store = IdentityStore::with_root(Credentials::new("admin", "secret123")).expect("valid root");
        assert_eq!(store.lookup("admin"), Some(("secret123", Principal::Root)));
        assert_eq!(store.lookup("other"), None);
        assert!(!store.uses_default_root());
    }

    #[test]
    fn short_root_credentials_are_refused() {
        assert_eq!(
            IdentityStore::with_root(Credentials::new("ab", "secret123")).err(),
            Some(IamError::RootUserTooShort)
        );
        assert_eq!(
            IdentityStore::with_root(Credentials::new("admin", "short")).err(),
            Some(IamError::RootPasswordTooShort)
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let text = format!("{:?}", Credentials::new("admin", "topsecret"));
        assert!(!text.contains("topsecret"));
    }
}
