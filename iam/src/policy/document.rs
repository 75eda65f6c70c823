//! A whole policy document: parsing, validation, and serialisation back to JSON.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::PolicyError;
use super::json::Json;
use super::statement::Statement;
use super::template::Variables;

/// The version that enables policy variables; the one to write in new policies.
pub const CURRENT_VERSION: &str = "2012-10-17";
const LEGACY_VERSION: &str = "2008-10-17";

/// Which checks apply beyond the policy grammar itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Grammar only; statements may or may not name a principal.
    Any,
    /// Attached to a user or group: statements apply to whoever holds the policy, so naming a
    /// principal (`Principal` / `NotPrincipal`) is an error, as in AWS.
    Identity,
    /// Attached to a bucket: every statement must say whom it is about.
    Resource,
}

/// A parsed, validated policy, ready to evaluate.
///
/// It keeps the document as written (key order included), which is what
/// [`Serialize`] and [`to_json`](Policy::to_json) give back, so GetBucketPolicy returns what
/// PutBucketPolicy stored. Two policies are equal when their documents are.
#[derive(Debug, Clone)]
pub struct Policy {
    source: Json,
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses a policy of any kind; see [`PolicyKind::Any`].
    pub fn parse(json: &str) -> Result<Policy, PolicyError> {
        Policy::parse_as(json, PolicyKind::Any)
    }

    /// Parses a policy and applies the checks for `kind`.
    pub fn parse_as(json: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        Policy::from_json(Json::parse(json)?, kind)
    }

    fn from_json(source: Json, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let Json::Object(fields) = &source else {
            return Err(PolicyError::WrongType { field: "policy".to_owned(), expected: "a JSON object" });
        };
        let (mut version, mut id, mut statement_json) = (None, None, None);
        for (name, value) in fields {
            match name.as_str() {
                "Version" => version = Some(string_field(value, "Version")?),
                "Id" => id = Some(string_field(value, "Id")?),
                "Statement" => statement_json = Some(value),
                other => return Err(PolicyError::UnknownField(other.to_owned())),
            }
        }
        let variables = match version.as_deref() {
            Some(CURRENT_VERSION) => Variables::Substitute,
            // AWS treats `${...}` as plain text in old and version-less policies.
            Some(LEGACY_VERSION) | None => Variables::Literal,
            Some(other) => return Err(PolicyError::UnsupportedVersion(other.to_owned())),
        };
        let statement_json = statement_json.ok_or(PolicyError::MissingField("Statement"))?;
        let items = statement_json.one_or_many();
        if items.is_empty() {
            return Err(PolicyError::NoStatements);
        }
        let mut statements = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let statement = Statement::parse(item, kind, variables).map_err(|source| PolicyError::InStatement {
                index: index + 1,
                sid: sid_of(item),
                source: Box::new(source),
            })?;
            statements.push(statement);
        }
        Ok(Policy { source, version, id, statements })
    }

    /// `Version`, when the document has one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `Id`, when the document has one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The document as compact JSON, keys in their original order.
    pub fn to_json(&self) -> String {
        // A tree of strings, booleans and finite numbers with string keys always serialises.
        serde_json::to_string(&self.source).unwrap_or_default()
    }
}

impl PartialEq for Policy {
    fn eq(&self, other: &Policy) -> bool {
        self.source == other.source
    }
}

impl Serialize for Policy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(serializer)
    }
}

/// Deserialises and validates as [`PolicyKind::Any`].
impl<'de> Deserialize<'de> for Policy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Policy, D::Error> {
        let source = Json::deserialize(deserializer)?;
        Policy::from_json(source, PolicyKind::Any).map_err(serde::de::Error::custom)
    }
}

fn string_field(value: &Json, field: &'static str) -> Result<String, PolicyError> {
    match value {
        Json::String(text) => Ok(text.clone()),
        _ => Err(PolicyError::WrongType { field: field.to_owned(), expected: "a string" }),
    }
}

/// The Sid of a statement that failed to parse, so the error can point at it.
fn sid_of(statement: &Json) -> Option<String> {
    let Json::Object(fields) = statement else { return None };
    fields.iter().find_map(|(name, value)| match (name.as_str(), value) {
        ("Sid", Json::String(sid)) => Some(sid.clone()),
        _ => None,
    })
}
