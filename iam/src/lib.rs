//! Identities and their credentials: the root user from configuration, and the users, access
//! keys, groups and policies of the [`Directory`] loaded from the metadata service. Secrets never
//! appear in `Debug` output or logs, and are sealed ([`seal`]) whenever they are stored.

pub mod authorize;
mod directory;
pub mod keygen;
pub mod policy;
pub mod seal;
pub mod session;
pub mod tempauth;

use std::fmt;
use std::sync::{Arc, RwLock};

pub use directory::{AccessKey, Directory, Group, ManagedPolicy, User};

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
    #[error("{0}")]
    BadMasterKey(String),
    #[error("cannot open a sealed IAM secret: {0}")]
    Unseal(String),
    #[error("the security token is invalid: {0}")]
    BadSessionToken(String),
    #[error("the security token has expired")]
    SessionExpired,
    #[error("invalid tempauth user {0}")]
    BadTempauthUser(String),
}

/// Who may sign requests, and with which secret: the root user and the current [`Directory`].
#[derive(Debug)]
pub struct IdentityStore {
    root: Credentials,
    directory: RwLock<Arc<Directory>>,
    /// Swift tempauth users from configuration, by `ACCOUNT:USER`.
    tempauth: std::collections::HashMap<String, tempauth::TempauthUser>,
}

/// The principal a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Root,
    /// An IAM user signing with one of its keys (a service account key names its parent user).
    User {
        name: String,
        access_key: String,
    },
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
        Ok(IdentityStore {
            root,
            directory: RwLock::new(Arc::new(Directory::default())),
            tempauth: std::collections::HashMap::new(),
        })
    }

    /// Adds Swift tempauth users (they also sign S3 requests as `ACCOUNT:USER`).
    pub fn with_tempauth(mut self, users: Vec<tempauth::TempauthUser>) -> Self {
        self.tempauth = users.into_iter().map(|u| (u.login(), u)).collect();
        self
    }

    /// The tempauth user that logs in as `ACCOUNT:USER`.
    pub fn tempauth_user(&self, login: &str) -> Option<&tempauth::TempauthUser> {
        self.tempauth.get(login)
    }

    /// The current snapshot of the directory.
    pub fn directory(&self) -> Arc<Directory> {
        match self.directory.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Installs a newer snapshot; an older one (a slow reload racing a fresh one) is ignored
    /// unless `replace_newer` (the metadata database itself went back, e.g. restored).
    pub fn install(&self, directory: Directory, replace_newer: bool) {
        let mut guard = match self.directory.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if replace_newer || directory.generation >= guard.generation {
            *guard = Arc::new(directory);
        }
    }

    /// True when the root user still has the shipped default credentials.
    pub fn uses_default_root(&self) -> bool {
        self.root.access_key == DEFAULT_ROOT_USER && self.root.secret_key == DEFAULT_ROOT_PASSWORD
    }

    /// The secret that signs requests for `access_key`, and whose it is. Disabled keys, and keys
    /// of disabled users, are not found.
    pub fn lookup(&self, access_key: &str) -> Option<(String, Principal)> {
        if access_key == self.root.access_key {
            return Some((self.root.secret_key().to_string(), Principal::Root));
        }
        if let Some(user) = self.tempauth.get(access_key) {
            let principal = Principal::User { name: user.login(), access_key: user.login() };
            return Some((user.key().to_string(), principal));
        }
        let directory = self.directory();
        let key = directory.usable_key(access_key)?;
        let principal = Principal::User { name: key.user.clone(), access_key: key.access_key.clone() };
        Some((key.secret().to_string(), principal))
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
        assert_eq!(store.lookup("admin"), Some(("secret123".to_string(), Principal::Root)));
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
