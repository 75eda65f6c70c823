//! The IAM directory: users, access keys, groups and managed policies as one immutable snapshot,
//! loaded whole from the metadata service and swapped atomically when its generation moves.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::policy::{self, Policy};
use crate::session::SessionKey;

/// What a key whose own policy does not parse gets: nothing (narrowing fails closed).
const DENY_ALL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;

/// An IAM user. Its rights are the policies attached to it and to its enabled groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub disabled: bool,
    pub policies: Vec<String>,
    pub created_unix_ms: i64,
}

/// An access key of a user (or a service account derived from one). The secret is in the clear
/// here (unsealed on load) and only here; `Debug` leaves it out.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct AccessKey {
    pub access_key: String,
    pub user: String,
    pub(crate) secret: String,
    pub disabled: bool,
    pub created_unix_ms: i64,
    /// Service accounts: a policy document that narrows the parent user's rights.
    pub inline_policy: Option<String>,
    pub service_account: bool,
    pub description: String,
}

impl AccessKey {
    pub fn new(access_key: String, user: String, secret: String) -> AccessKey {
        AccessKey { access_key, user, secret, ..AccessKey::default() }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key", &self.access_key)
            .field("user", &self.user)
            .field("disabled", &self.disabled)
            .field("service_account", &self.service_account)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
    pub policies: Vec<String>,
    pub disabled: bool,
    pub created_unix_ms: i64,
}

/// A managed policy as stored: its name and JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManagedPolicy {
    pub name: String,
    pub document: String,
    pub created_unix_ms: i64,
}

/// One consistent view of the IAM state at `generation`.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub generation: u64,
    pub users: BTreeMap<String, User>,
    pub keys: HashMap<String, AccessKey>,
    pub groups: BTreeMap<String, Group>,
    pub policies: BTreeMap<String, ManagedPolicy>,
    /// Parsed built-in and stored policies by name, and parsed key policies by access key (see
    /// [`Directory::index_policies`]).
    parsed: HashMap<String, Arc<Policy>>,
    inline: HashMap<String, Arc<Policy>>,
    /// Signs STS session tokens and derives their secrets (shared by every gateway).
    session_key: Option<SessionKey>,
}

impl Directory {
    /// Parses every built-in, stored and key policy once, so requests only evaluate. A stored
    /// policy that does not parse grants nothing; a key policy that does not parse denies all.
    pub fn index_policies(&mut self) {
        self.parsed.clear();
        self.inline.clear();
        for name in policy::BUILTIN_NAMES {
            if let Some(parsed) = policy::builtin(name) {
                self.parsed.insert(name.to_string(), Arc::new(parsed));
            }
        }
        for (name, stored) in &self.policies {
            match Policy::parse(&stored.document) {
                Ok(parsed) => {
                    self.parsed.insert(name.clone(), Arc::new(parsed));
                }
                Err(e) => {
                    tracing::error!(policy = %name, error = %e, "stored policy does not parse; it grants nothing")
                }
            }
        }
        for (access_key, key) in &self.keys {
            let Some(text) = &key.inline_policy else { continue };
            let parsed = Policy::parse(text).or_else(|e| {
                tracing::error!(%access_key, error = %e, "key policy does not parse; the key may do nothing");
                Policy::parse(DENY_ALL)
            });
            if let Ok(parsed) = parsed {
                self.inline.insert(access_key.clone(), Arc::new(parsed));
            }
        }
    }

    pub fn set_session_key(&mut self, key: SessionKey) {
        self.session_key = Some(key);
    }

    pub fn session_key(&self) -> Option<&SessionKey> {
        self.session_key.as_ref()
    }

    pub fn parsed_policy(&self, name: &str) -> Option<Arc<Policy>> {
        self.parsed.get(name).cloned()
    }

    /// The policy that narrows a service account key, if it has one.
    pub fn inline_policy(&self, access_key: &str) -> Option<Arc<Policy>> {
        self.inline.get(access_key).cloned()
    }

    /// The key, if it may sign requests now: the key and its user are enabled.
    pub fn usable_key(&self, access_key: &str) -> Option<&AccessKey> {
        let key = self.keys.get(access_key)?;
        let user = self.users.get(&key.user)?;
        (!key.disabled && !user.disabled).then_some(key)
    }

    /// Names of every policy that applies to `user`: its own and those of its enabled groups, each once.
    pub fn policy_names(&self, user: &str) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if let Some(u) = self.users.get(user) {
            names.extend(u.policies.iter().map(String::as_str));
        }
        for group in self.groups.values().filter(|g| !g.disabled && g.members.iter().any(|m| m == user)) {
            names.extend(group.policies.iter().map(String::as_str));
        }
        names.sort_unstable();
        names.dedup();
        names
    }

    pub fn groups_of(&self, user: &str) -> Vec<&str> {
        self.groups.values().filter(|g| g.members.iter().any(|m| m == user)).map(|g| g.name.as_str()).collect()
    }

    pub fn keys_of(&self, user: &str) -> Vec<&AccessKey> {
        let mut keys: Vec<&AccessKey> = self.keys.values().filter(|k| k.user == user).collect();
        keys.sort_by(|a, b| a.access_key.cmp(&b.access_key));
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_users_and_keys_cannot_sign_and_groups_add_policies() {
        let mut dir = Directory::default();
        dir.users
            .insert("alice".into(), User { name: "alice".into(), policies: vec!["own".into()], ..User::default() });
        dir.keys.insert("AK1".into(), AccessKey::new("AK1".into(), "alice".into(), "s1".into()));
        let mut disabled = AccessKey::new("AK2".into(), "alice".into(), "s2".into());
        disabled.disabled = true;
        dir.keys.insert("AK2".into(), disabled);
        dir.groups.insert(
            "devs".into(),
            Group {
                name: "devs".into(),
                members: vec!["alice".into()],
                policies: vec!["readonly".into(), "own".into()],
                ..Group::default()
            },
        );
        dir.groups.insert(
            "off".into(),
            Group {
                name: "off".into(),
                members: vec!["alice".into()],
                policies: vec!["readwrite".into()],
                disabled: true,
                ..Group::default()
            },
        );
        assert!(dir.usable_key("AK1").is_some());
        assert!(dir.usable_key("AK2").is_none());
        assert!(dir.usable_key("nope").is_none());
        assert_eq!(dir.policy_names("alice"), vec!["own", "readonly"]);
        if let Some(alice) = dir.users.get_mut("alice") {
            alice.disabled = true;
        }
        assert!(dir.usable_key("AK1").is_none(), "a disabled user's keys stop working");
        assert!(!format!("{:?}", dir.keys.get("AK1")).contains("s1"));
    }
}
