//! The `Resource` / `NotResource` element.

use super::arn::ArnPattern;
use super::json::Json;
use super::template::Variables;
use super::{PolicyError, RequestContext};

#[derive(Debug, Clone)]
enum ResourcePattern {
    Any,
    Arn(ArnPattern),
}

#[derive(Debug, Clone)]
pub(crate) struct ResourceSet {
    patterns: Vec<ResourcePattern>,
    negated: bool,
}

impl ResourceSet {
    pub(crate) fn parse(json: &Json, field: &'static str, variables: Variables) -> Result<ResourceSet, PolicyError> {
        let items = json.one_or_many();
        if items.is_empty() {
            return Err(PolicyError::WrongType { field: field.to_owned(), expected: "a non-empty list of resources" });
        }
        let mut patterns = Vec::with_capacity(items.len());
        for item in items {
            let Json::String(text) = item else {
                return Err(PolicyError::WrongType {
                    field: field.to_owned(),
                    expected: "a string or an array of strings",
                });
            };
            patterns.push(if text == "*" {
                ResourcePattern::Any
            } else {
                let arn = ArnPattern::parse(text, variables)?;
                ResourcePattern::Arn(arn.ok_or_else(|| PolicyError::InvalidResource(text.clone()))?)
            });
        }
        Ok(ResourceSet { patterns, negated: field == "NotResource" })
    }

    /// Whether the statement covers the request's resource: one of the patterns matches it,
    /// or, for `NotResource`, none does.
    ///
    /// A request for no particular resource (`*`, e.g. `s3:ListAllMyBuckets`) is covered by
    /// patterns that cover every resource of the action's service, such as `arn:aws:s3:::*`:
    /// it is matched as if it were the ARN `arn:aws:<service>:::*`.
    pub(crate) fn covers(&self, ctx: &RequestContext) -> bool {
        let resource = ctx.resource();
        let whole_service = ["arn", "aws", ctx.service(), "", "", "*"];
        let hit = self.patterns.iter().any(|pattern| match pattern {
            ResourcePattern::Any => true,
            ResourcePattern::Arn(arn) if resource == "*" => arn.matches_parts(whole_service, ctx),
            ResourcePattern::Arn(arn) => arn.matches(resource, ctx),
        });
        hit != self.negated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(patterns: &str, field: &'static str, ctx: &RequestContext) -> bool {
        ResourceSet::parse(&Json::parse(patterns).unwrap(), field, Variables::Substitute).unwrap().covers(ctx)
    }

    #[test]
    fn resource_patterns() {
        let object = RequestContext::new("s3:GetObject", "arn:aws:s3:::photos/2024/cat.jpg");
        let bucket = RequestContext::new("s3:ListBucket", "arn:aws:s3:::photos");
        let everything = RequestContext::new("s3:ListAllMyBuckets", "*");
        let cases: &[(&str, &RequestContext, bool)] = &[
            (r#""*""#, &object, true),
            (r#""*""#, &everything, true),
            (r#""arn:aws:s3:::*""#, &object, true),
            (r#""arn:aws:s3:::*""#, &everything, true),
            (r#""arn:aws:s3:::photos/*""#, &object, true),
            (r#""arn:aws:s3:::photos/*""#, &bucket, false),
            (r#""arn:aws:s3:::photos/*""#, &everything, false),
            (r#""arn:aws:s3:::photos""#, &bucket, true),
            (r#""arn:aws:s3:::Photos""#, &bucket, false),
            (r#""arn:aws:s3:::photos/202?/*""#, &object, true),
            (r#""arn:aws:s3:::p*""#, &everything, false),
            (r#"["arn:aws:s3:::other","arn:aws:s3:::photos"]"#, &bucket, true),
        ];
        for (patterns, ctx, expected) in cases {
            assert_eq!(covers(patterns, "Resource", ctx), *expected, "{patterns} vs {}", ctx.resource());
        }
        assert!(!covers(r#""arn:aws:s3:::photos/*""#, "NotResource", &object));
        assert!(covers(r#""arn:aws:s3:::photos/*""#, "NotResource", &bucket));
    }

    #[test]
    fn malformed_resources_are_refused() {
        for text in [r#""photos""#, r#""arn:aws:s3""#, "[]", "[7]", r#""arn:aws:s3:::${x""#] {
            assert!(
                ResourceSet::parse(&Json::parse(text).unwrap(), "Resource", Variables::Substitute).is_err(),
                "{text}"
            );
        }
    }
}
