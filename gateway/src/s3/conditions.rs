//! Conditional requests: If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, and
//! their x-amz-copy-source-* twins, with the precedence rules of RFC 9110 that S3 follows.

use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::s3::convert::unix_seconds;

pub struct Conditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

fn matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

/// What a failed condition means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    PreconditionFailed,
    NotModified,
}

impl Conditions<'_> {
    pub fn evaluate(&self, etag: &str, last_modified_unix_ms: i64) -> Result<(), Failure> {
        let modified_s = last_modified_unix_ms.div_euclid(1000);
        // A matching If-Match overrides If-Unmodified-Since, and a failing If-None-Match
        // overrides If-Modified-Since.
        match self.if_match {
            Some(c) if !matches(c, etag) => return Err(Failure::PreconditionFailed),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_unmodified_since
                    && modified_s > unix_seconds(t)
                {
                    return Err(Failure::PreconditionFailed);
                }
            }
        }
        match self.if_none_match {
            Some(c) if matches(c, etag) => return Err(Failure::NotModified),
            Some(_) => {}
            None => {
                if let Some(t) = self.if_modified_since
                    && modified_s <= unix_seconds(t)
                {
                    return Err(Failure::NotModified);
                }
            }
        }
        Ok(())
    }

    /// For GET and HEAD: 412 or 304.
    pub fn check_read(&self, etag: &str, last_modified_unix_ms: i64) -> S3Result<()> {
        self.evaluate(etag, last_modified_unix_ms).map_err(|f| match f {
            Failure::PreconditionFailed => S3Error::new(S3ErrorCode::PreconditionFailed),
            Failure::NotModified => S3Error::new(S3ErrorCode::NotModified),
        })
    }

    /// For copy sources every failed condition is a 412.
    pub fn check_copy_source(&self, etag: &str, last_modified_unix_ms: i64) -> S3Result<()> {
        self.evaluate(etag, last_modified_unix_ms)
            .map_err(|_| S3Error::with_message(S3ErrorCode::PreconditionFailed, "copy source condition failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::convert::timestamp;
    use s3s::dto::ETag;

    const T: i64 = 1_700_000_000_000;

    fn tag(s: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(s.to_string()))
    }

    #[test]
    fn table() {
        let before = timestamp(T - 10_000);
        let same = timestamp(T);
        let after = timestamp(T + 10_000);
        let yes = tag("abc");
        let no = tag("zzz");
        let none =
            || Conditions { if_match: None, if_none_match: None, if_modified_since: None, if_unmodified_since: None };
        let cases: Vec<(Conditions, Result<(), Failure>)> = vec![
            (none(), Ok(())),
            (Conditions { if_match: Some(&yes), ..none() }, Ok(())),
            (Conditions { if_match: Some(&no), ..none() }, Err(Failure::PreconditionFailed)),
            (Conditions { if_match: Some(&ETagCondition::Any), ..none() }, Ok(())),
            (Conditions { if_none_match: Some(&yes), ..none() }, Err(Failure::NotModified)),
            (Conditions { if_none_match: Some(&no), ..none() }, Ok(())),
            (Conditions { if_modified_since: Some(&before), ..none() }, Ok(())),
            (Conditions { if_modified_since: Some(&same), ..none() }, Err(Failure::NotModified)),
            (Conditions { if_unmodified_since: Some(&after), ..none() }, Ok(())),
            (Conditions { if_unmodified_since: Some(&before), ..none() }, Err(Failure::PreconditionFailed)),
            // If-Match that matches wins over a failing If-Unmodified-Since.
            (Conditions { if_match: Some(&yes), if_unmodified_since: Some(&before), ..none() }, Ok(())),
            // If-None-Match that does not match wins over a failing If-Modified-Since.
            (Conditions { if_none_match: Some(&no), if_modified_since: Some(&after), ..none() }, Ok(())),
        ];
        for (i, (conditions, expected)) in cases.into_iter().enumerate() {
            assert_eq!(conditions.evaluate("abc", T), expected, "case {i}");
        }
    }
}
