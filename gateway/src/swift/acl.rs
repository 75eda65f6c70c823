//! Swift container ACLs (`X-Container-Read`, `X-Container-Write`), as tempauth and keystoneauth
//! read them: `ACCOUNT:USER` (either side may be `*`), `ACCOUNT` (any user of it), `.r:REFERRER`
//! (anonymous reads from a referrer: `*`, a host, or `.domain` for its subdomains; `-` denies),
//! and `.rlistings` (anonymous reads may also list).

/// Who asks, in ACL terms. Tempauth: its account and user, and the account as its one group.
/// Keystone (keystoneauth): the project id and user id, also their names when both are in the
/// default domain, and the user's roles as groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclIdentity {
    /// What the left side of an `ACCOUNT:USER` entry may say.
    pub accounts: Vec<String>,
    /// What the right side may say.
    pub users: Vec<String>,
    /// What a bare entry may say (compared without case, as keystoneauth compares roles).
    pub groups: Vec<String>,
}

impl AclIdentity {
    pub fn tempauth(account: &str, user: &str) -> AclIdentity {
        AclIdentity { accounts: vec![account.into()], users: vec![user.into()], groups: vec![account.into()] }
    }
}

/// Where container ACLs are kept in the bucket's metadata map: names no HTTP header can have,
/// so they never collide with `X-Container-Meta-*` names.
pub const READ_KEY: &str = ":read";
pub const WRITE_KEY: &str = ":write";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<String>,
}

impl Acl {
    pub fn parse(text: &str) -> Acl {
        Acl { entries: text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect() }
    }

    /// An entry names this identity.
    pub fn names(&self, who: &AclIdentity) -> bool {
        let any = |names: &[String], wanted: &str| wanted == "*" || names.iter().any(|n| n == wanted);
        self.entries.iter().filter(|e| !e.starts_with('.')).any(|entry| match entry.split_once(':') {
            Some((account, user)) => any(&who.accounts, account) && any(&who.users, user),
            None => who.groups.iter().any(|g| g.eq_ignore_ascii_case(entry)),
        })
    }

    /// Anonymous reads from `referrer` are allowed (the last matching `.r:` entry decides).
    pub fn allows_referrer(&self, referrer: Option<&str>) -> bool {
        let host = referrer
            .and_then(|r| r.split_once("://").map(|(_, rest)| rest).or(Some(r)))
            .map(|r| r.split(['/', ':']).next().unwrap_or_default().to_ascii_lowercase())
            .unwrap_or_default();
        let mut allowed = false;
        for rule in self.entries.iter().filter_map(|e| e.strip_prefix(".r:")) {
            let (deny, pattern) = match rule.strip_prefix('-') {
                Some(p) => (true, p),
                None => (false, rule),
            };
            let matches = pattern == "*"
                || (!host.is_empty() && (host == pattern || (pattern.starts_with('.') && host.ends_with(pattern))));
            if matches {
                allowed = !deny;
            }
        }
        allowed
    }

    pub fn allows_listings(&self) -> bool {
        self.entries.iter().any(|e| e == ".rlistings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(account: &str, user: &str) -> AclIdentity {
        AclIdentity::tempauth(account, user)
    }

    #[test]
    fn entries_name_users_accounts_and_referrers() {
        let acl = Acl::parse("test2:tester2, other, *:auditor, .r:*, .r:-evil.example, .rlistings");
        assert!(acl.names(&who("test2", "tester2")));
        assert!(!acl.names(&who("test2", "someone")));
        assert!(acl.names(&who("other", "anyone")));
        assert!(acl.names(&who("x", "auditor")));
        assert!(acl.allows_referrer(None));
        assert!(acl.allows_referrer(Some("https://good.example/page")));
        assert!(!acl.allows_referrer(Some("http://evil.example/x")));
        assert!(acl.allows_listings());
        let scoped = Acl::parse(".r:.example.com");
        assert!(scoped.allows_referrer(Some("http://www.example.com/a")));
        assert!(!scoped.allows_referrer(Some("http://example.org/")));
        assert!(!scoped.allows_referrer(None));
        assert!(!Acl::parse("").names(&who("a", "b")));
    }

    #[test]
    fn keystone_entries_name_ids_default_domain_names_and_roles() {
        let keystone = AclIdentity {
            accounts: vec!["p-id".into(), "proj".into()],
            users: vec!["u-id".into(), "alice".into()],
            groups: vec!["Member".into()],
        };
        assert!(Acl::parse("p-id:u-id").names(&keystone));
        assert!(Acl::parse("proj:alice").names(&keystone));
        assert!(Acl::parse("*:u-id").names(&keystone));
        assert!(Acl::parse("member").names(&keystone));
        assert!(!Acl::parse("p-id").names(&keystone), "a bare project id is not a role");
        assert!(!Acl::parse("proj:bob").names(&keystone));
    }
}
