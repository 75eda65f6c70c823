//! Swift tempauth users from configuration (`ACCOUNT:USER:KEY[:admin]`), as Swift's tempauth
//! middleware defines them. Each also signs S3 requests with access key `ACCOUNT:USER` and
//! secret `KEY` (as Swift's s3api does), with the rights of its account.

use crate::IamError;

/// The prefix of a Swift account name (`AUTH_test` for account `test`).
pub const ACCOUNT_PREFIX: &str = "AUTH_";

#[derive(Clone, PartialEq, Eq)]
pub struct TempauthUser {
    /// The account without its prefix, e.g. `test`.
    pub account: String,
    pub user: String,
    key: String,
    /// Account admins (`.admin` in Swift) own the account's containers; other users need ACLs.
    pub admin: bool,
}

impl std::fmt::Debug for TempauthUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempauthUser")
            .field("account", &self.account)
            .field("user", &self.user)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl TempauthUser {
    /// Parses `ACCOUNT:USER:KEY` or `ACCOUNT:USER:KEY:admin`.
    pub fn parse(spec: &str) -> Result<TempauthUser, IamError> {
        let bad = || IamError::BadTempauthUser(format!("{:?}: expected ACCOUNT:USER:KEY[:admin]", redact(spec)));
        let mut parts = spec.splitn(4, ':');
        let (Some(account), Some(user), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        let admin = match parts.next() {
            None => false,
            Some("admin") => true,
            Some(_) => return Err(bad()),
        };
        let valid = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid(account) || !valid(user) || key.is_empty() {
            return Err(bad());
        }
        Ok(TempauthUser { account: account.into(), user: user.into(), key: key.into(), admin })
    }

    /// `ACCOUNT:USER`: what X-Auth-User and the S3 access key carry.
    pub fn login(&self) -> String {
        format!("{}:{}", self.account, self.user)
    }

    /// `AUTH_ACCOUNT`: the account in storage URLs, and the owner of its containers.
    pub fn account_name(&self) -> String {
        format!("{ACCOUNT_PREFIX}{}", self.account)
    }

    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The spec without its key, for error messages.
fn redact(spec: &str) -> String {
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    match parts.as_slice() {
        [account, user, _key, rest @ ..] => {
            let mut out = format!("{account}:{user}:***");
            for r in rest {
                out.push(':');
                out.push_str(r);
            }
            out
        }
        _ => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_never_echo_the_key() {
        let admin = TempauthUser::parse("test:tester:testing:admin").unwrap();
        assert_eq!(
            (admin.login(), admin.account_name(), admin.key(), admin.admin),
            ("test:tester".into(), "AUTH_test".into(), "testing", true)
        );
        assert!(!TempauthUser::parse("test:tester3:testing3").unwrap().admin);
        for bad in ["test:tester", "test::k", ":u:k", "test:tester:secret:root", "te st:u:k"] {
            let err = TempauthUser::parse(bad).unwrap_err().to_string();
            assert!(!err.contains("secret"), "{err}");
        }
        assert!(!format!("{admin:?}").contains("testing"));
    }
}
