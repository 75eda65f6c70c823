//! One `Statement`: whom it is about, which actions on which resources, under which
//! conditions, and whether it allows or denies them.

use super::action::ActionSet;
use super::condition::ConditionBlock;
use super::json::Json;
use super::principal::PrincipalSet;
use super::resource::ResourceSet;
use super::template::Variables;
use super::{PolicyError, PolicyKind, RequestContext};

/// What a statement does to the requests it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// A parsed statement.
#[derive(Debug, Clone)]
pub struct Statement {
    sid: Option<String>,
    effect: Effect,
    principal: Option<PrincipalSet>,
    actions: ActionSet,
    resources: Option<ResourceSet>,
    conditions: ConditionBlock,
}

impl Statement {
    /// The statement's `Sid`, if it has one.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// Whether the statement names whom it is about (`Principal` or `NotPrincipal`).
    pub fn has_principal(&self) -> bool {
        self.principal.is_some()
    }

    pub(crate) fn parse(json: &Json, kind: PolicyKind, variables: Variables) -> Result<Statement, PolicyError> {
        let Json::Object(fields) = json else {
            return Err(PolicyError::WrongType { field: "Statement".to_owned(), expected: "an object" });
        };
        let mut sid = None;
        let mut effect = None;
        let (mut principal, mut not_principal) = (None, None);
        let (mut action, mut not_action) = (None, None);
        let (mut resource, mut not_resource) = (None, None);
        let mut conditions = ConditionBlock::default();
        for (name, value) in fields {
            match name.as_str() {
                "Sid" => match value {
                    Json::String(text) => sid = Some(text.clone()),
                    _ => return Err(PolicyError::WrongType { field: "Sid".to_owned(), expected: "a string" }),
                },
                "Effect" => effect = Some(parse_effect(value)?),
                "Principal" => principal = Some(PrincipalSet::parse(value, "Principal")?),
                "NotPrincipal" => not_principal = Some(PrincipalSet::parse(value, "NotPrincipal")?),
                "Action" => action = Some(ActionSet::parse(value, "Action")?),
                "NotAction" => not_action = Some(ActionSet::parse(value, "NotAction")?),
                "Resource" => resource = Some(ResourceSet::parse(value, "Resource", variables)?),
                "NotResource" => not_resource = Some(ResourceSet::parse(value, "NotResource", variables)?),
                "Condition" => conditions = ConditionBlock::parse(value, variables)?,
                other => return Err(PolicyError::UnknownField(other.to_owned())),
            }
        }
        let effect = effect.ok_or(PolicyError::MissingField("Effect"))?;
        let principal = exclusive(principal, not_principal, "Principal", "NotPrincipal")?;
        let actions = exclusive(action, not_action, "Action", "NotAction")?
            .ok_or(PolicyError::MissingEither("Action", "NotAction"))?;
        let resources = exclusive(resource, not_resource, "Resource", "NotResource")?;
        if resources.is_none() && actions.reaches_s3() {
            return Err(PolicyError::MissingEither("Resource", "NotResource"));
        }
        match (kind, &principal) {
            (PolicyKind::Identity, Some(_)) => return Err(PolicyError::PrincipalNotAllowed),
            (PolicyKind::Resource, None) => return Err(PolicyError::PrincipalRequired),
            _ => {}
        }
        Ok(Statement { sid, effect, principal, actions, resources, conditions })
    }

    /// Whether this statement speaks about this request. The cheap, selective tests go first.
    pub(crate) fn applies_to(&self, ctx: &RequestContext) -> bool {
        self.actions.covers(ctx.action(), ctx)
            && self.resources.as_ref().is_none_or(|resources| resources.covers(ctx))
            && self.principal.as_ref().is_none_or(|principals| principals.covers(ctx.principal()))
            && self.conditions.holds(ctx)
    }
}

fn parse_effect(value: &Json) -> Result<Effect, PolicyError> {
    match value {
        Json::String(text) if text == "Allow" => Ok(Effect::Allow),
        Json::String(text) if text == "Deny" => Ok(Effect::Deny),
        Json::String(text) => Err(PolicyError::InvalidEffect(text.clone())),
        _ => Err(PolicyError::WrongType { field: "Effect".to_owned(), expected: "\"Allow\" or \"Deny\"" }),
    }
}

/// An element and its `Not...` twin are alternatives: at most one may appear. The parsed
/// element remembers which one it was.
fn exclusive<T>(
    plain: Option<T>,
    negated: Option<T>,
    plain_name: &'static str,
    negated_name: &'static str,
) -> Result<Option<T>, PolicyError> {
    match (plain, negated) {
        (Some(_), Some(_)) => Err(PolicyError::Conflicting(plain_name, negated_name)),
        (Some(item), None) | (None, Some(item)) => Ok(Some(item)),
        (None, None) => Ok(None),
    }
}
