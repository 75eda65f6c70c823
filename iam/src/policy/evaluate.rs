//! Combining statements and policies into one decision.

use super::statement::Effect;
use super::{Policy, RequestContext};

/// The outcome of evaluating policies against a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows the request and none denies it.
    Allow,
    /// Some statement denies the request; nothing can override this.
    ExplicitDeny,
    /// No statement speaks about the request: the caller's default applies (for S3, deny).
    NotApplicable,
}

impl Decision {
    /// True only for [`Decision::Allow`].
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

impl Policy {
    /// Evaluates this policy alone: [`Decision::ExplicitDeny`] if any applicable statement
    /// denies, else [`Decision::Allow`] if any allows, else [`Decision::NotApplicable`].
    ///
    /// Statements without a `Principal` apply to every sender, which is what an identity
    /// policy means (it is attached to the sender); bucket policies should be parsed with
    /// [`PolicyKind::Resource`](super::PolicyKind::Resource) so every statement names one.
    pub fn evaluate(&self, ctx: &RequestContext) -> Decision {
        let mut decision = Decision::NotApplicable;
        for statement in self.statements() {
            if statement.applies_to(ctx) {
                match statement.effect() {
                    // A deny settles the matter; no need to look further.
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => decision = Decision::Allow,
                }
            }
        }
        decision
    }
}

/// Evaluates several policies (a user's, their groups', the bucket's) as one: an explicit
/// deny in any of them wins, then an allow in any of them, else [`Decision::NotApplicable`].
pub fn evaluate_all<'a>(policies: impl IntoIterator<Item = &'a Policy>, ctx: &RequestContext) -> Decision {
    let mut decision = Decision::NotApplicable;
    for policy in policies {
        match policy.evaluate(ctx) {
            Decision::ExplicitDeny => return Decision::ExplicitDeny,
            Decision::Allow => decision = Decision::Allow,
            Decision::NotApplicable => {}
        }
    }
    decision
}
