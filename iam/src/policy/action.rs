//! The `Action` / `NotAction` element: `service:Action` names with `*` and `?` wildcards,
//! compared without regard to case as AWS does.

use super::json::Json;
use super::template::{Case, Template, Variables, Wildcards};
use super::{PolicyError, RequestContext};

#[derive(Debug, Clone)]
pub(crate) struct ActionSet {
    patterns: Vec<Template>,
    negated: bool,
    /// Whether some `s3:` action falls under this element, which is when AWS insists on a
    /// Resource; `admin:` and `sts:` statements may leave it out, as MinIO's do.
    reaches_s3: bool,
}

impl ActionSet {
    pub(crate) fn parse(json: &Json, field: &'static str) -> Result<ActionSet, PolicyError> {
        let negated = field == "NotAction";
        let items = json.one_or_many();
        if items.is_empty() {
            return Err(PolicyError::WrongType { field: field.to_owned(), expected: "a non-empty list of actions" });
        }
        let probe = RequestContext::new("", "");
        let mut patterns = Vec::with_capacity(items.len());
        let mut reaches_s3 = negated;
        for item in items {
            let Json::String(text) = item else {
                return Err(PolicyError::WrongType {
                    field: field.to_owned(),
                    expected: "a string or an array of strings",
                });
            };
            let service = validate(text).ok_or_else(|| PolicyError::InvalidAction(text.clone()))?;
            let service = Template::parse(service, Wildcards::Glob, Variables::Literal)?;
            reaches_s3 |= service.matches("s3", Case::Insensitive, &probe);
            patterns.push(Template::parse(text, Wildcards::Glob, Variables::Literal)?);
        }
        Ok(ActionSet { patterns, negated, reaches_s3 })
    }

    /// Whether the statement covers `action`: one of the patterns matches it, or, for
    /// `NotAction`, none does.
    pub(crate) fn covers(&self, action: &str, ctx: &RequestContext) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(action, Case::Insensitive, ctx)) != self.negated
    }

    pub(crate) fn reaches_s3(&self) -> bool {
        self.reaches_s3
    }
}

/// `*`, or `service:Action` where both halves are non-empty and made of letters, digits,
/// `-`, `_` and wildcards. Returns the service half (`*` for a lone `*`).
fn validate(text: &str) -> Option<&str> {
    if text == "*" {
        return Some(text);
    }
    let (service, action) = text.split_once(':')?;
    let allowed = |part: &str| {
        !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '?'))
    };
    (allowed(service) && allowed(action)).then_some(service)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(patterns: &str, field: &'static str, action: &str) -> bool {
        let set = ActionSet::parse(&Json::parse(patterns).unwrap(), field).unwrap();
        set.covers(action, &RequestContext::new(action, "*"))
    }

    #[test]
    fn action_wildcards_ignore_case() {
        let cases = [
            (r#""*""#, "s3:GetObject", true),
            (r#""s3:*""#, "s3:GetObject", true),
            (r#""s3:*""#, "admin:ServerInfo", false),
            (r#""s3:Get*""#, "s3:GetObject", true),
            (r#""s3:Get*""#, "s3:PutObject", false),
            (r#""S3:getobject""#, "s3:GetObject", true),
            (r#""s3:GetObject?""#, "s3:GetObject", false),
            (r#""s3:Get?bject""#, "s3:GetObject", true),
            (r#"["s3:PutObject","s3:GetObject"]"#, "s3:GetObject", true),
            (r#""s3:List*""#, "s3:ListAllMyBuckets", true),
        ];
        for (patterns, action, expected) in cases {
            assert_eq!(covers(patterns, "Action", action), expected, "{patterns} vs {action}");
        }
        assert!(!covers(r#""s3:Get*""#, "NotAction", "s3:GetObject"));
        assert!(covers(r#""s3:Get*""#, "NotAction", "s3:PutObject"));
    }

    #[test]
    fn malformed_actions_are_refused() {
        for text in [r#""GetObject""#, r#""s3:""#, r#"":GetObject""#, r#""s3:Get Object""#, "[]", "[1]", r#""s3:a:b""#]
        {
            assert!(ActionSet::parse(&Json::parse(text).unwrap(), "Action").is_err(), "{text}");
        }
    }

    #[test]
    fn which_actions_reach_s3() {
        let reaches = |text: &str, field| ActionSet::parse(&Json::parse(text).unwrap(), field).unwrap().reaches_s3();
        assert!(reaches(r#""*""#, "Action"));
        assert!(reaches(r#"["admin:*","S3:Get*"]"#, "Action"));
        assert!(reaches(r#""s?:Get*""#, "Action"));
        assert!(!reaches(r#"["admin:*","sts:AssumeRole"]"#, "Action"));
        assert!(reaches(r#""admin:*""#, "NotAction"));
    }
}
