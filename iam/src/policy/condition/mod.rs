//! The `Condition` element: `{ operator: { key: value | [values] } }`.
//!
//! Every operator and every key within it must pass (AND); the values listed for one key are
//! alternatives (OR), and for a negated operator none of them may match (NOR).

mod date;
mod ip;
mod operator;
mod values;

#[cfg(test)]
mod tests;

use operator::{Operator, OperatorKind, SetQualifier};
use values::{Place, Values};

use super::context::normalize_key;
use super::json::Json;
use super::template::Variables;
use super::{PolicyError, RequestContext};

/// One key tested by one operator.
#[derive(Debug, Clone)]
struct Clause {
    operator: Operator,
    /// Normalised once here so evaluation looks the key up without allocating.
    key: Box<str>,
    values: Values,
}

/// A parsed `Condition` element; empty when the statement has none.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConditionBlock {
    clauses: Vec<Clause>,
}

impl ConditionBlock {
    pub(crate) fn parse(json: &Json, variables: Variables) -> Result<ConditionBlock, PolicyError> {
        let Json::Object(operators) = json else {
            return Err(PolicyError::WrongType {
                field: "Condition".to_owned(),
                expected: "an object of operators, e.g. {\"StringEquals\": {\"s3:prefix\": \"home/\"}}",
            });
        };
        let mut clauses = Vec::new();
        for (name, keys) in operators {
            let operator = Operator::parse(name)?;
            let invalid = |problem: String| PolicyError::InvalidCondition { operator: name.clone(), problem };
            let Json::Object(keys) = keys else {
                return Err(invalid("must map condition keys to values".to_owned()));
            };
            if keys.is_empty() {
                return Err(invalid("names no condition keys".to_owned()));
            }
            for (key, values) in keys {
                if key.is_empty() {
                    return Err(invalid("has an empty condition key".to_owned()));
                }
                let mut texts = Vec::new();
                for value in values.one_or_many() {
                    let Some(text) = value.scalar_text() else {
                        return Err(invalid(format!("values of {key} must be strings, numbers or booleans")));
                    };
                    texts.push(text);
                }
                if texts.is_empty() {
                    return Err(invalid(format!("{key} has no values")));
                }
                let values = Values::parse(operator.kind, &texts, variables, &Place { operator: name, key })?;
                clauses.push(Clause { operator, key: normalize_key(key).into_boxed_str(), values });
            }
        }
        Ok(ConditionBlock { clauses })
    }

    /// Whether every clause passes for this request.
    pub(crate) fn holds(&self, ctx: &RequestContext) -> bool {
        self.clauses.iter().all(|clause| clause.holds(ctx))
    }
}

impl Clause {
    fn holds(&self, ctx: &RequestContext) -> bool {
        let present = ctx.values_of(&self.key);
        let Operator { kind, negated, if_exists, qualifier } = self.operator;
        if kind == OperatorKind::Null {
            let Values::Null(wanted) = &self.values else { return false };
            return wanted.contains(&present.is_empty());
        }
        if present.is_empty() {
            // AWS: a missing key fails a positive test and passes a negated one;
            // ForAllValues over nothing is vacuously true and ForAnyValue false.
            return if_exists
                || match qualifier {
                    None => negated,
                    Some(SetQualifier::ForAllValues) => true,
                    Some(SetQualifier::ForAnyValue) => false,
                };
        }
        let passes = |value: &String| self.values.any_matches(value, ctx) != negated;
        match qualifier {
            // Without a set qualifier a request value matching any policy value is a match,
            // and the negated operators are exactly the negation of that.
            None => present.iter().any(|value| self.values.any_matches(value, ctx)) != negated,
            Some(SetQualifier::ForAnyValue) => present.iter().any(passes),
            Some(SetQualifier::ForAllValues) => present.iter().all(passes),
        }
    }
}
