//! Why a policy document was refused. Every message is meant to be shown to the user as the
//! text of an S3 `MalformedPolicy` error, so each names the offending element and value.

/// A policy document that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("policy Version {0:?} is not supported; use \"2012-10-17\"")]
    UnsupportedVersion(String),
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("missing required field {0}")]
    MissingField(&'static str),
    #[error("{field} must be {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("policy has no statements")]
    NoStatements,
    #[error("Effect must be \"Allow\" or \"Deny\", not {0:?}")]
    InvalidEffect(String),
    #[error("{0} and {1} cannot both appear in one statement")]
    Conflicting(&'static str, &'static str),
    #[error("statement needs either {0} or {1}")]
    MissingEither(&'static str, &'static str),
    #[error("invalid action {0:?}: expected \"*\" or service:Action, e.g. s3:GetObject or s3:Get*")]
    InvalidAction(String),
    #[error("invalid resource {0:?}: expected \"*\" or an ARN such as arn:aws:s3:::bucket/*")]
    InvalidResource(String),
    #[error("invalid principal {0}")]
    InvalidPrincipal(String),
    #[error("Principal and NotPrincipal are not allowed in identity policies")]
    PrincipalNotAllowed,
    #[error("statement needs a Principal or NotPrincipal in a resource policy")]
    PrincipalRequired,
    #[error("unknown condition operator {0:?}")]
    UnknownConditionOperator(String),
    #[error("condition {operator}: {problem}")]
    InvalidCondition { operator: String, problem: String },
    #[error("condition {operator} on {key}: invalid value {value:?}: {problem}")]
    InvalidConditionValue { operator: String, key: String, value: String, problem: &'static str },
    #[error("invalid policy variable in {0:?}: {1}")]
    InvalidVariable(String, &'static str),
    /// A statement's own error, with its position (counting from 1) and Sid.
    #[error("statement {index}{}: {source}", sid_suffix(.sid))]
    InStatement { index: usize, sid: Option<String>, source: Box<PolicyError> },
}

fn sid_suffix(sid: &Option<String>) -> String {
    sid.as_ref().map(|sid| format!(" (Sid {sid:?})")).unwrap_or_default()
}
