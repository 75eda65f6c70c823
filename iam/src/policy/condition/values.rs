//! The policy side of one condition: its values, parsed once into the form the operator
//! compares, and the test of one request value against them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::date::parse_instant;
use super::ip::Network;
use super::operator::{Comparison, OperatorKind};
use crate::policy::arn::ArnPattern;
use crate::policy::template::{Case, Template, Variables, Wildcards};
use crate::policy::{PolicyError, RequestContext};

#[derive(Debug, Clone)]
pub(crate) enum Values {
    Strings {
        templates: Vec<Template>,
        case: Case,
    },
    Arns(Vec<ArnPattern>),
    Numbers {
        numbers: Vec<f64>,
        comparison: Comparison,
    },
    Dates {
        instants: Vec<i128>,
        comparison: Comparison,
    },
    Bools(Vec<bool>),
    Binary(Vec<Vec<u8>>),
    Networks(Vec<Network>),
    /// `Null`: `true` wants the key absent, `false` wants it present.
    Null(Vec<bool>),
}

/// Where a bad value was found, for the error message.
pub(crate) struct Place<'a> {
    pub(crate) operator: &'a str,
    pub(crate) key: &'a str,
}

impl Place<'_> {
    fn invalid(&self, value: &str, problem: &'static str) -> PolicyError {
        PolicyError::InvalidConditionValue {
            operator: self.operator.to_owned(),
            key: self.key.to_owned(),
            value: value.to_owned(),
            problem,
        }
    }
}

impl Values {
    /// Parses the policy's values for an operator. Variables are recognised only where AWS
    /// recognises them: in string and ARN values.
    pub(crate) fn parse(
        kind: OperatorKind,
        texts: &[String],
        variables: Variables,
        place: &Place,
    ) -> Result<Values, PolicyError> {
        Ok(match kind {
            OperatorKind::StringEquals { ignore_case } => Values::Strings {
                templates: texts
                    .iter()
                    .map(|text| Template::parse(text, Wildcards::Literal, variables))
                    .collect::<Result<_, _>>()?,
                case: if ignore_case { Case::Insensitive } else { Case::Sensitive },
            },
            OperatorKind::StringLike => Values::Strings {
                templates: texts
                    .iter()
                    .map(|text| Template::parse(text, Wildcards::Glob, variables))
                    .collect::<Result<_, _>>()?,
                case: Case::Sensitive,
            },
            OperatorKind::Arn => {
                let mut patterns = Vec::with_capacity(texts.len());
                for text in texts {
                    let pattern = ArnPattern::parse(text, variables)?;
                    patterns.push(pattern.ok_or_else(|| {
                        place.invalid(text, "expected an ARN: arn:partition:service:region:account:resource")
                    })?);
                }
                Values::Arns(patterns)
            }
            OperatorKind::Numeric(comparison) => {
                Values::Numbers { numbers: parse_each(texts, place, "expected a number", parse_number)?, comparison }
            }
            OperatorKind::Date(comparison) => Values::Dates {
                instants: parse_each(texts, place, "expected an ISO 8601 date or epoch seconds", parse_instant)?,
                comparison,
            },
            OperatorKind::Bool => Values::Bools(parse_each(texts, place, "expected true or false", parse_bool)?),
            OperatorKind::Null => Values::Null(parse_each(texts, place, "expected true or false", parse_bool)?),
            OperatorKind::Binary => {
                Values::Binary(parse_each(texts, place, "expected base64", |text| BASE64.decode(text).ok())?)
            }
            OperatorKind::IpAddress => {
                Values::Networks(parse_each(texts, place, "expected an IP address or CIDR block", Network::parse)?)
            }
        })
    }

    /// Whether one request value matches any of the policy's values (the values of one key
    /// are OR-ed). A request value that does not parse as the operator's type matches none.
    pub(crate) fn any_matches(&self, value: &str, ctx: &RequestContext) -> bool {
        match self {
            Values::Strings { templates, case } => templates.iter().any(|t| t.matches(value, *case, ctx)),
            Values::Arns(patterns) => patterns.iter().any(|pattern| pattern.matches(value, ctx)),
            Values::Numbers { numbers, comparison } => {
                parse_number(value).is_some_and(|value| numbers.iter().any(|&n| comparison.holds(value, n)))
            }
            Values::Dates { instants, comparison } => {
                parse_instant(value).is_some_and(|value| instants.iter().any(|&i| comparison.holds(value, i)))
            }
            Values::Bools(bools) => parse_bool(value).is_some_and(|value| bools.contains(&value)),
            Values::Binary(blobs) => BASE64.decode(value).is_ok_and(|bytes| blobs.contains(&bytes)),
            Values::Networks(networks) => {
                value.parse().is_ok_and(|address| networks.iter().any(|network| network.contains(address)))
            }
            // Null looks at whether the key exists, never at its values; see `Clause::holds`.
            Values::Null(_) => false,
        }
    }
}

fn parse_each<T>(
    texts: &[String],
    place: &Place,
    problem: &'static str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, PolicyError> {
    texts.iter().map(|text| parse(text).ok_or_else(|| place.invalid(text, problem))).collect()
}

/// Integers and decimals; not `inf`, `NaN` or hex, which `f64::from_str` partly accepts.
fn parse_number(text: &str) -> Option<f64> {
    let plausible = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    plausible.then(|| text.parse().ok()).flatten().filter(|n: &f64| n.is_finite())
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}
