//! What a request looks like to the evaluator: its action, the resource it touches, who sent
//! it, and the condition keys the gateway knows about it.

use std::collections::HashMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::PrincipalId;

/// One request, described in the policy language's terms.
///
/// Condition keys are case-insensitive (`aws:SourceIp` and `AWS:sourceip` are the same key);
/// only the part after the first `/` keeps its case, because it names a tag and
/// `s3:ExistingObjectTag/Project` and `s3:ExistingObjectTag/project` are different tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    action: String,
    resource: String,
    principal: Option<PrincipalId>,
    values: HashMap<String, Vec<String>>,
}

impl RequestContext {
    /// A request for `action` (e.g. `s3:GetObject`) on `resource`: `arn:aws:s3:::bucket/key`,
    /// `arn:aws:s3:::bucket`, or `*` for actions that touch no particular resource such as
    /// `s3:ListAllMyBuckets` (see [`Policy`](super::Policy) for how `*` is matched).
    /// The request is anonymous until [`with_principal`](Self::with_principal).
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        RequestContext { action: action.into(), resource: resource.into(), principal: None, values: HashMap::new() }
    }

    /// Who signed the request. Also sets `aws:username` to the principal's user name, so
    /// `${aws:username}` works without the caller repeating it; other keys (`aws:userid`,
    /// `aws:PrincipalType`, ...) are the caller's to set.
    pub fn with_principal(mut self, principal: PrincipalId) -> Self {
        if !principal.user_name.is_empty() {
            self.set_values("aws:username", [principal.user_name.clone()]);
        }
        self.principal = Some(principal);
        self
    }

    /// Adds one value to a condition key (keys such as `s3:ExistingObjectTag/...` or
    /// `ForAnyValue:` tests may have several).
    pub fn with_value(mut self, key: &str, value: impl Into<String>) -> Self {
        self.add_value(key, value);
        self
    }

    /// Replaces every value of a condition key.
    pub fn with_values<I, V>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.set_values(key, values);
        self
    }

    /// Sets `aws:CurrentTime` (RFC 3339, UTC) and `aws:EpochTime` (seconds) to `now`.
    pub fn with_time(mut self, now: OffsetDateTime) -> Self {
        let now = now.to_offset(time::UtcOffset::UTC);
        // Only years outside 0..=9999 fail to format; such a clock is better left unset than
        // guessed at, and a missing key makes positive date conditions fail closed.
        if let Ok(text) = now.format(&Rfc3339) {
            self.set_values("aws:CurrentTime", [text]);
        }
        self.set_values("aws:EpochTime", [now.unix_timestamp().to_string()]);
        self
    }

    /// Adds one value to a condition key.
    pub fn add_value(&mut self, key: &str, value: impl Into<String>) {
        self.values.entry(normalize_key(key)).or_default().push(value.into());
    }

    /// Replaces every value of a condition key.
    pub fn set_values<I, V>(&mut self, key: &str, values: I)
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        self.values.insert(normalize_key(key), values.into_iter().map(Into::into).collect());
    }

    pub fn action(&self) -> &str {
        &self.action
    }

    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// `None` for an anonymous request.
    pub fn principal(&self) -> Option<&PrincipalId> {
        self.principal.as_ref()
    }

    /// The values of a condition key; empty when the request does not have it.
    pub fn values(&self, key: &str) -> &[String] {
        self.values_of(&normalize_key(key))
    }

    /// Like [`values`](Self::values) for a key already passed through [`normalize_key`]; the
    /// evaluator normalises keys once at parse time so a lookup costs no allocation.
    pub(crate) fn values_of(&self, normalized_key: &str) -> &[String] {
        self.values.get(normalized_key).map(Vec::as_slice).unwrap_or_default()
    }

    /// The value a policy variable stands for. Keys with several values cannot stand in for
    /// a variable (AWS refuses them too), so they resolve to nothing.
    pub(crate) fn variable(&self, normalized_key: &str) -> Option<&str> {
        match self.values_of(normalized_key) {
            [single] => Some(single),
            _ => None,
        }
    }

    /// The service part of the action, `s3` for `s3:GetObject`.
    pub(crate) fn service(&self) -> &str {
        self.action.split_once(':').map_or("", |(service, _)| service)
    }
}

/// Condition key names are case-insensitive, but whatever follows the first `/` names a tag
/// (or similar) and keeps its case.
pub(crate) fn normalize_key(key: &str) -> String {
    match key.split_once('/') {
        Some((name, qualifier)) => format!("{}/{qualifier}", name.to_ascii_lowercase()),
        None => key.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_except_after_the_slash() {
        let ctx = RequestContext::new("s3:GetObject", "*")
            .with_value("AWS:SourceIp", "10.0.0.1")
            .with_value("s3:ExistingObjectTag/Project", "x");
        assert_eq!(ctx.values("aws:sourceip"), ["10.0.0.1"]);
        assert_eq!(ctx.values("S3:existingobjecttag/Project"), ["x"]);
        assert!(ctx.values("s3:ExistingObjectTag/project").is_empty());
    }

    #[test]
    fn time_sets_both_time_keys() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ctx = RequestContext::new("s3:GetObject", "*").with_time(now);
        assert_eq!(ctx.values("aws:CurrentTime"), ["2023-11-14T22:13:20Z"]);
        assert_eq!(ctx.values("aws:EpochTime"), ["1700000000"]);
    }

    #[test]
    fn principal_sets_username_and_multi_valued_keys_are_no_variables() {
        let ctx = RequestContext::new("s3:GetObject", "*")
            .with_principal(PrincipalId::user("123456789012", "alice", "AKALICE"))
            .with_values("s3:prefix", ["a", "b"]);
        assert_eq!(ctx.variable("aws:username"), Some("alice"));
        assert_eq!(ctx.variable("s3:prefix"), None);
        assert_eq!(ctx.service(), "s3");
    }
}
