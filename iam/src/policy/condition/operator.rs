//! Condition operator names: `[ForAllValues:|ForAnyValue:]Base[IfExists]`.

use crate::policy::PolicyError;

/// How a condition treats a key with several values in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SetQualifier {
    /// Every request value must pass; true when the key is missing or empty.
    ForAllValues,
    /// At least one request value must pass; false when the key is missing or empty.
    ForAnyValue,
}

/// Which way a request value is compared with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Comparison {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Comparison {
    /// `request <op> policy`, e.g. `NumericLessThan` passes when the request's value is less.
    pub(crate) fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Comparison::Equal => request == policy,
            Comparison::Less => request < policy,
            Comparison::LessOrEqual => request <= policy,
            Comparison::Greater => request > policy,
            Comparison::GreaterOrEqual => request >= policy,
        }
    }
}

/// The family of test, before its values are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OperatorKind {
    StringEquals { ignore_case: bool },
    StringLike,
    Numeric(Comparison),
    Date(Comparison),
    Bool,
    Binary,
    IpAddress,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operator {
    pub(crate) kind: OperatorKind,
    /// `StringNotEquals`, `NotIpAddress`, ...: true when no policy value matches.
    pub(crate) negated: bool,
    /// `...IfExists`: a missing key passes.
    pub(crate) if_exists: bool,
    pub(crate) qualifier: Option<SetQualifier>,
}

impl Operator {
    pub(crate) fn parse(name: &str) -> Result<Operator, PolicyError> {
        let unknown = || PolicyError::UnknownConditionOperator(name.to_owned());
        let (qualifier, rest) = if let Some(rest) = name.strip_prefix("ForAllValues:") {
            (Some(SetQualifier::ForAllValues), rest)
        } else if let Some(rest) = name.strip_prefix("ForAnyValue:") {
            (Some(SetQualifier::ForAnyValue), rest)
        } else {
            (None, name)
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (rest, false),
        };
        let (kind, negated) = base_operator(base).ok_or_else(unknown)?;
        // Null asks whether the key exists, so "if it exists" or "for each value" mean nothing.
        if kind == OperatorKind::Null && (if_exists || qualifier.is_some()) {
            return Err(unknown());
        }
        Ok(Operator { kind, negated, if_exists, qualifier })
    }
}

fn base_operator(name: &str) -> Option<(OperatorKind, bool)> {
    use Comparison::*;
    use OperatorKind::*;
    Some(match name {
        "StringEquals" => (StringEquals { ignore_case: false }, false),
        "StringNotEquals" => (StringEquals { ignore_case: false }, true),
        "StringEqualsIgnoreCase" => (StringEquals { ignore_case: true }, false),
        "StringNotEqualsIgnoreCase" => (StringEquals { ignore_case: true }, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (Numeric(Equal), false),
        "NumericNotEquals" => (Numeric(Equal), true),
        "NumericLessThan" => (Numeric(Less), false),
        "NumericLessThanEquals" => (Numeric(LessOrEqual), false),
        "NumericGreaterThan" => (Numeric(Greater), false),
        "NumericGreaterThanEquals" => (Numeric(GreaterOrEqual), false),
        "DateEquals" => (Date(Equal), false),
        "DateNotEquals" => (Date(Equal), true),
        "DateLessThan" => (Date(Less), false),
        "DateLessThanEquals" => (Date(LessOrEqual), false),
        "DateGreaterThan" => (Date(Greater), false),
        "DateGreaterThanEquals" => (Date(GreaterOrEqual), false),
        "Bool" => (Bool, false),
        "BinaryEquals" => (Binary, false),
        "IpAddress" => (IpAddress, false),
        "NotIpAddress" => (IpAddress, true),
        // AWS gives ArnEquals and ArnLike the same wildcard matching; so do we.
        "ArnEquals" | "ArnLike" => (Arn, false),
        "ArnNotEquals" | "ArnNotLike" => (Arn, true),
        "Null" => (Null, false),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_names() {
        let parsed = Operator::parse("ForAnyValue:StringNotLikeIfExists").unwrap();
        assert_eq!(
            parsed,
            Operator {
                kind: OperatorKind::StringLike,
                negated: true,
                if_exists: true,
                qualifier: Some(SetQualifier::ForAnyValue)
            }
        );
        assert_eq!(Operator::parse("NotIpAddress").unwrap().kind, OperatorKind::IpAddress);
        assert_eq!(Operator::parse("ForAllValues:StringEquals").unwrap().qualifier, Some(SetQualifier::ForAllValues));
        for bad in
            ["StringEqual", "stringequals", "NullIfExists", "ForAllValues:Null", "ForSomeValues:StringEquals", ""]
        {
            assert_eq!(Operator::parse(bad), Err(PolicyError::UnknownConditionOperator(bad.to_owned())), "{bad}");
        }
    }
}
