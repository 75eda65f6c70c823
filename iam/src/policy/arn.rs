//! ARN patterns, matched the way AWS matches them: each of the six colon-separated parts
//! (`arn:partition:service:region:account:resource`) on its own, so a wildcard in one part
//! never reaches into the next. The resource part is everything after the fifth colon and may
//! itself hold colons (object keys can).

use super::template::{Case, Template, Token, Variables, Wildcards};
use super::{PolicyError, RequestContext};

const PARTS: usize = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArnPattern {
    parts: Box<[Template; PARTS]>,
}

impl ArnPattern {
    /// `Ok(None)` when `text` is not shaped like an ARN.
    pub(crate) fn parse(text: &str, variables: Variables) -> Result<Option<ArnPattern>, PolicyError> {
        if !text.starts_with("arn:") {
            return Ok(None);
        }
        let tokens = Template::parse(text, Wildcards::Glob, variables)?.into_tokens();
        Ok(split_tokens(tokens))
    }
}

fn split_tokens(tokens: Vec<Token>) -> Option<ArnPattern> {
    // Split only on colons written in the policy: a colon inside `${aws:username}` or in a
    // substituted value belongs to its part.
    let mut parts: Vec<Vec<Token>> = vec![Vec::new()];
    for token in tokens {
        let Token::Lit(text) = token else {
            parts.last_mut()?.push(token);
            continue;
        };
        let mut rest: &str = &text;
        while parts.len() < PARTS
            && let Some((before, after)) = rest.split_once(':')
        {
            parts.last_mut()?.push(Token::Lit(before.into()));
            parts.push(Vec::new());
            rest = after;
        }
        parts.last_mut()?.push(Token::Lit(rest.into()));
    }
    let parts: Box<[Template]> = parts.into_iter().map(Template::from_tokens).collect();
    Some(ArnPattern { parts: parts.try_into().ok()? })
}

impl ArnPattern {
    /// Whether `arn` matches, part by part; a string that is not an ARN never does.
    pub(crate) fn matches(&self, arn: &str, ctx: &RequestContext) -> bool {
        split_arn(arn).is_some_and(|parts| self.matches_parts(parts, ctx))
    }

    pub(crate) fn matches_parts(&self, parts: [&str; PARTS], ctx: &RequestContext) -> bool {
        self.parts.iter().zip(parts).all(|(pattern, part)| pattern.matches(part, Case::Sensitive, ctx))
    }
}

pub(crate) fn split_arn(arn: &str) -> Option<[&str; PARTS]> {
    let mut parts = arn.splitn(PARTS, ':');
    let split = [parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?];
    (split[0] == "arn").then_some(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, arn: &str) -> bool {
        let ctx = RequestContext::new("s3:GetObject", "*").with_value("aws:username", "al:ice");
        ArnPattern::parse(pattern, Variables::Substitute).unwrap().unwrap().matches(arn, &ctx)
    }

    #[test]
    fn parts_match_separately() {
        let cases = [
            ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket", true),
            ("arn:aws:s3:::bucket", "arn:aws:s3:::bucket2", false),
            ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c", true),
            ("arn:aws:s3:::*", "arn:aws:s3:::bucket/key", true),
            ("arn:aws:s3:::*", "arn:aws:sqs:::bucket", false),
            ("arn:*:s3:::b", "arn:aws:s3:::b", true),
            // `*` in the region cannot swallow the account part.
            ("arn:aws:s3:*::b", "arn:aws:s3:us-east-1::b", true),
            ("arn:aws:s3:*::b", "arn:aws:s3:us-east-1:123::b", false),
            ("arn:aws:s3:::B*", "arn:aws:s3:::bucket", false),
            ("arn:aws:s3:::b?cket", "arn:aws:s3:::bucket", true),
            ("arn:aws:s3:::home/${aws:username}/*", "arn:aws:s3:::home/al:ice/x", true),
            ("arn:aws:s3:::bucket", "bucket", false),
            ("arn:aws:s3:::bucket", "arn:aws:s3::bucket", false),
        ];
        for (pattern, arn, expected) in cases {
            assert_eq!(matches(pattern, arn), expected, "{pattern:?} vs {arn:?}");
        }
    }

    #[test]
    fn non_arns_are_refused() {
        for text in ["*", "bucket/*", "arn:aws:s3", "aws:s3:::bucket"] {
            assert_eq!(ArnPattern::parse(text, Variables::Substitute), Ok(None), "{text}");
        }
        assert!(ArnPattern::parse("arn:aws:s3:::${oops", Variables::Substitute).is_err());
    }
}
