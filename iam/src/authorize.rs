//! Who may do what: the policies that apply to a signer, evaluated as AWS does.
//!
//! Root may do everything. A user's rights are the union of its policies and those of its enabled
//! groups (explicit Deny wins, then any Allow, else deny). A service account key or an STS session
//! is also narrowed by its own policy: every narrowing policy must allow as well.

use std::sync::Arc;

use crate::policy::{Decision, Policy, PrincipalId, RequestContext, evaluate_all};
use crate::session::{SessionClaims, is_session_key};
use crate::{Directory, IamError, IdentityStore};

/// The account id Coffer reports in ARNs: one account per cluster.
pub const ACCOUNT_ID: &str = "000000000000";

/// A request's signer as the evaluator sees it.
#[derive(Debug, Clone, Default)]
pub struct Signer {
    /// Root's rights (the root user, or a session it started).
    pub root: bool,
    /// The user whose policies apply; the root access key for root.
    pub name: String,
    /// The key that signed the request.
    pub access_key: String,
    /// Policies that must also allow: a service account's policy, a session policy.
    pub narrowed_by: Vec<Arc<Policy>>,
    /// The request came with STS session credentials.
    pub session: bool,
    /// A Swift tempauth user: the account (`AUTH_x`) whose containers it works with.
    pub account: Option<String>,
    /// The tempauth user administers its account (owns its containers).
    pub account_admin: bool,
}

impl Signer {
    pub fn principal(&self) -> PrincipalId {
        if self.root {
            PrincipalId::root(ACCOUNT_ID, self.access_key.clone())
        } else {
            PrincipalId::user(ACCOUNT_ID, self.name.clone(), self.access_key.clone())
        }
    }

    /// The name recorded as a bucket's owner: the user, or a tempauth user's account.
    pub fn owner_name(&self) -> &str {
        self.account.as_deref().unwrap_or(&self.name)
    }

    /// Root, unrestricted: no policy needs evaluating.
    pub fn is_root(&self) -> bool {
        self.root && self.narrowed_by.is_empty()
    }
}

impl IdentityStore {
    /// The signer behind a usable long-term access key (not a session key; see [`Self::session_signer`]).
    pub fn signer(&self, access_key: &str) -> Option<Signer> {
        if access_key == self.root().access_key {
            let name = access_key.to_string();
            return Some(Signer { root: true, name, access_key: access_key.to_string(), ..Signer::default() });
        }
        if let Some(user) = self.tempauth_user(access_key) {
            return Some(Signer {
                name: user.login(),
                access_key: user.login(),
                account: Some(user.account_name()),
                account_admin: user.admin,
                ..Signer::default()
            });
        }
        let directory = self.directory();
        let key = directory.usable_key(access_key)?;
        let narrowed_by = directory.inline_policy(access_key).into_iter().collect();
        Some(Signer { name: key.user.clone(), access_key: key.access_key.clone(), narrowed_by, ..Signer::default() })
    }

    /// The signer of a request made with session credentials: the token must verify for the key
    /// and be unexpired, and its parent must still be able to sign (a disabled or deleted user's
    /// sessions stop working with it).
    pub fn session_signer(&self, access_key: &str, token: &str, now_unix_s: i64) -> Result<Signer, IamError> {
        let directory = self.directory();
        let key = directory.session_key().ok_or_else(|| IamError::BadSessionToken("no signing key".into()))?;
        let claims: SessionClaims = key.verify(token, access_key, now_unix_s)?;
        let mut signer = if claims.parent_is_root {
            (claims.parent == self.root().access_key).then(|| self.signer(&claims.parent)).flatten()
        } else {
            directory
                .users
                .get(&claims.parent)
                .filter(|u| !u.disabled)
                .map(|u| Signer { name: u.name.clone(), ..Signer::default() })
        }
        .ok_or_else(|| IamError::BadSessionToken("the session's user can no longer sign".into()))?;
        signer.access_key = access_key.to_string();
        signer.session = true;
        if let Some(text) = &claims.policy {
            let policy = Policy::parse(text).map_err(|e| IamError::BadSessionToken(format!("session policy: {e}")))?;
            signer.narrowed_by.push(Arc::new(policy));
        }
        Ok(signer)
    }

    /// The secret of `access_key`: root, a user key, or a session key (derived; the token is
    /// checked when the request is authorised).
    pub fn secret_for(&self, access_key: &str) -> Option<String> {
        if is_session_key(access_key) {
            return self.directory().session_key().map(|key| key.secret_for(access_key));
        }
        self.lookup(access_key).map(|(secret, _)| secret)
    }

    /// Decides `ctx` for `signer` with the current directory. The context's principal is set here.
    pub fn decide(&self, signer: &Signer, ctx: RequestContext) -> Decision {
        self.decide_with(Some(signer), ctx, None)
    }

    /// Decides `ctx` for `signer` (`None`: an anonymous request) with its identity policies and
    /// the bucket's `resource_policy`, as AWS combines them within one account: an explicit Deny
    /// in either wins, then an Allow in either; a service account's or session's own policy must
    /// allow as well.
    pub fn decide_with(
        &self,
        signer: Option<&Signer>,
        ctx: RequestContext,
        resource_policy: Option<&Policy>,
    ) -> Decision {
        let ctx = match signer {
            Some(signer) => ctx.with_principal(signer.principal()),
            None => ctx,
        };
        let identity = match signer {
            None => Decision::NotApplicable,
            Some(signer) if signer.root => Decision::Allow,
            Some(signer) => {
                let directory = self.directory();
                let policies = directory.effective_policies(&signer.name);
                evaluate_all(policies.iter().map(Arc::as_ref), &ctx)
            }
        };
        let resource = resource_policy.map_or(Decision::NotApplicable, |policy| policy.evaluate(&ctx));
        if identity == Decision::ExplicitDeny || resource == Decision::ExplicitDeny {
            return Decision::ExplicitDeny;
        }
        if identity != Decision::Allow && resource != Decision::Allow {
            return Decision::NotApplicable;
        }
        for narrowing in signer.map(|s| s.narrowed_by.as_slice()).unwrap_or_default() {
            match narrowing.evaluate(&ctx) {
                Decision::Allow => {}
                other => return other,
            }
        }
        Decision::Allow
    }
}

impl Directory {
    /// The parsed policies attached to `user` directly or through its enabled groups (built-in
    /// ones included). Names that do not resolve contribute nothing.
    pub fn effective_policies(&self, user: &str) -> Vec<Arc<Policy>> {
        self.policy_names(user).into_iter().filter_map(|name| self.parsed_policy(name)).collect()
    }
}
