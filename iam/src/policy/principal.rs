//! Who a request comes from, and the `Principal` / `NotPrincipal` element that names whom a
//! statement is about.

use super::PolicyError;
use super::json::Json;

/// The authenticated identity behind a request.
///
/// A bucket policy may name a principal by ARN (`arn:aws:iam::123456789012:user/alice`), by
/// bare user name or access key (`alice`), by account (`123456789012` or
/// `arn:aws:iam::123456789012:root`, meaning every principal of that account), or by
/// canonical user ID; each of those is compared against the matching field here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalId {
    /// e.g. `arn:aws:iam::123456789012:user/alice`.
    pub arn: String,
    /// The account the principal belongs to, e.g. `123456789012`.
    pub account: String,
    /// The bare user name; also becomes `aws:username` in the request context.
    pub user_name: String,
    /// The access key the request was signed with.
    pub access_key: String,
    /// The S3 canonical user ID, when the deployment has one.
    pub canonical_id: Option<String>,
}

impl PrincipalId {
    /// An IAM-style user: `arn:aws:iam::<account>:user/<user_name>`.
    pub fn user(account: impl Into<String>, user_name: impl Into<String>, access_key: impl Into<String>) -> Self {
        let account = account.into();
        let user_name = user_name.into();
        PrincipalId {
            arn: format!("arn:aws:iam::{account}:user/{user_name}"),
            account,
            user_name,
            access_key: access_key.into(),
            canonical_id: None,
        }
    }

    /// The account's root identity: `arn:aws:iam::<account>:root`.
    pub fn root(account: impl Into<String>, access_key: impl Into<String>) -> Self {
        let account = account.into();
        PrincipalId {
            arn: format!("arn:aws:iam::{account}:root"),
            account,
            user_name: String::new(),
            access_key: access_key.into(),
            canonical_id: None,
        }
    }

    /// Whether one `AWS` principal value names this identity.
    fn is_named_by(&self, value: &str) -> bool {
        let names_field = |field: &str| !field.is_empty() && field == value;
        names_field(&self.arn)
            || names_field(&self.user_name)
            || names_field(&self.access_key)
            || names_field(&self.account)
            || value
                .strip_prefix("arn:aws:iam::")
                .and_then(|rest| rest.strip_suffix(":root"))
                .is_some_and(|account| !account.is_empty() && account == self.account)
    }
}

/// A parsed `Principal` or `NotPrincipal` element.
#[derive(Debug, Clone)]
pub(crate) struct PrincipalSet {
    /// `"*"`, `{"AWS": "*"}` or `{"CanonicalUser": "*"}`: everybody, anonymous included.
    everyone: bool,
    aws: Vec<String>,
    canonical: Vec<String>,
    /// Parsed from `NotPrincipal`.
    negated: bool,
}

impl PrincipalSet {
    pub(crate) fn parse(json: &Json, field: &'static str) -> Result<PrincipalSet, PolicyError> {
        let negated = field == "NotPrincipal";
        let mut set = PrincipalSet { everyone: false, aws: Vec::new(), canonical: Vec::new(), negated };
        match json {
            Json::String(text) if text == "*" => set.everyone = true,
            Json::Object(kinds) if !kinds.is_empty() => {
                for (kind, values) in kinds {
                    let target = match kind.as_str() {
                        "AWS" => &mut set.aws,
                        "CanonicalUser" => &mut set.canonical,
                        other => {
                            return Err(PolicyError::InvalidPrincipal(format!(
                                "type {other:?} in {field}: only \"AWS\" and \"CanonicalUser\" are supported"
                            )));
                        }
                    };
                    for value in values.one_or_many() {
                        match value {
                            Json::String(name) if !name.is_empty() => target.push(name.clone()),
                            _ => {
                                return Err(PolicyError::WrongType {
                                    field: format!("{field}.{kind}"),
                                    expected: "a non-empty string or an array of them",
                                });
                            }
                        }
                    }
                    if values.one_or_many().is_empty() {
                        return Err(PolicyError::InvalidPrincipal(format!("{field}.{kind} lists nobody")));
                    }
                }
                set.everyone = set.aws.iter().chain(&set.canonical).any(|name| name == "*");
            }
            _ => {
                return Err(PolicyError::WrongType {
                    field: field.to_owned(),
                    expected: "\"*\" or an object such as {\"AWS\": [\"arn:aws:iam::123456789012:user/alice\"]}",
                });
            }
        }
        Ok(set)
    }

    /// Whether the statement is about the request's sender: the sender is in the set, or,
    /// for `NotPrincipal`, is not.
    pub(crate) fn covers(&self, principal: Option<&PrincipalId>) -> bool {
        self.contains(principal) != self.negated
    }

    /// Whether the request's sender is in this set; an anonymous sender is only in `*`.
    fn contains(&self, principal: Option<&PrincipalId>) -> bool {
        if self.everyone {
            return true;
        }
        let Some(principal) = principal else { return false };
        self.aws.iter().any(|value| principal.is_named_by(value))
            || principal.canonical_id.as_ref().is_some_and(|id| self.canonical.iter().any(|value| value == id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> PrincipalSet {
        PrincipalSet::parse(&Json::parse(text).unwrap(), "Principal").unwrap()
    }

    #[test]
    fn principal_forms() {
        let alice = PrincipalId::user("123456789012", "alice", "AKALICE");
        let mut bob = PrincipalId::user("999999999999", "bob", "AKBOB");
        bob.canonical_id = Some("c0ffee".into());
        let cases: &[(&str, Option<&PrincipalId>, bool)] = &[
            (r#""*""#, None, true),
            (r#""*""#, Some(&alice), true),
            (r#"{"AWS":"*"}"#, None, true),
            (r#"{"CanonicalUser":"*"}"#, Some(&bob), true),
            (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, Some(&alice), true),
            (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, Some(&bob), false),
            (r#"{"AWS":"arn:aws:iam::123456789012:user/alice"}"#, None, false),
            (r#"{"AWS":["bob","alice"]}"#, Some(&alice), true),
            (r#"{"AWS":"AKALICE"}"#, Some(&alice), true),
            (r#"{"AWS":"123456789012"}"#, Some(&alice), true),
            (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, Some(&alice), true),
            (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, Some(&bob), false),
            (r#"{"AWS":"arn:aws:iam::123456789012:user/ALICE"}"#, Some(&alice), false),
            (r#"{"CanonicalUser":"c0ffee"}"#, Some(&bob), true),
            (r#"{"CanonicalUser":"c0ffee"}"#, Some(&alice), false),
        ];
        for (text, principal, expected) in cases {
            assert_eq!(set(text).contains(*principal), *expected, "{text} vs {principal:?}");
        }
    }

    #[test]
    fn not_principal_inverts() {
        let alice = PrincipalId::user("123456789012", "alice", "AKALICE");
        let bob = PrincipalId::user("123456789012", "bob", "AKBOB");
        let json = Json::parse(r#"{"AWS":"alice"}"#).unwrap();
        let not_alice = PrincipalSet::parse(&json, "NotPrincipal").unwrap();
        assert!(!not_alice.covers(Some(&alice)));
        assert!(not_alice.covers(Some(&bob)));
        assert!(not_alice.covers(None));
        let not_anyone = PrincipalSet::parse(&Json::parse(r#""*""#).unwrap(), "NotPrincipal").unwrap();
        assert!(!not_anyone.covers(None));
        assert!(!not_anyone.covers(Some(&alice)));
    }

    #[test]
    fn bad_principals_are_refused() {
        for text in [r#""alice""#, r#"{}"#, r#"{"Service":"s3.amazonaws.com"}"#, r#"{"AWS":[]}"#, r#"{"AWS":3}"#, "[]"]
        {
            assert!(PrincipalSet::parse(&Json::parse(text).unwrap(), "Principal").is_err(), "{text}");
        }
    }
}
