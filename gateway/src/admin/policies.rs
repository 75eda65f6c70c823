//! Managed policies: create, list, show, delete, attach to and detach from users and groups.

use coffer_iam::policy::{self, Policy, PolicyKind};
use coffer_proto::pb::metadata::{
    DeleteIamEntityRequest, IamEntity, IamKind, IamPolicy, PutIamEntityRequest, iam_entity::Entity,
};
use hyper::Method;
use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, AdminResult, Call, groups, ok, users};
use crate::s3::convert::now_unix_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreatePolicy {
    name: String,
    /// The policy as a JSON object, or as a string holding one.
    document: serde_json::Value,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Target {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    group: Option<String>,
}

#[derive(Serialize)]
struct PolicyView {
    name: String,
    builtin: bool,
    document: serde_json::Value,
}

pub fn parse_document(text: &str) -> Result<Policy, AdminError> {
    Policy::parse_as(text, PolicyKind::Identity).map_err(|e| AdminError::malformed_policy(e.to_string()))
}

/// The policy exists: built in, or stored.
pub fn require_exists(admin: &Admin, name: &str) -> Result<(), AdminError> {
    if policy::builtin(name).is_some() || admin.iam.identities.directory().policies.contains_key(name) {
        Ok(())
    } else {
        Err(AdminError::not_found(format!("policy {name}")))
    }
}

fn document_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

fn view(admin: &Admin, name: &str) -> Option<PolicyView> {
    if let Some(text) = policy::builtin_document(name) {
        let document = serde_json::from_str(text).unwrap_or(serde_json::Value::Null);
        return Some(PolicyView { name: name.to_string(), builtin: true, document });
    }
    let directory = admin.iam.identities.directory();
    let stored = directory.policies.get(name)?;
    let document = serde_json::from_str(&stored.document).unwrap_or(serde_json::Value::Null);
    Some(PolicyView { name: name.to_string(), builtin: false, document })
}

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (call.method, segs.as_slice()) {
        (&Method::GET, ["policies"]) => {
            admin.require(call, "admin:ListUserPolicies")?;
            let stored: Vec<String> = admin.iam.identities.directory().policies.keys().cloned().collect();
            let names = policy::BUILTIN_NAMES.iter().map(|n| n.to_string()).chain(stored);
            ok(names.filter_map(|name| view(admin, &name)).collect::<Vec<_>>())
        }
        (&Method::POST, ["policies"]) => {
            admin.require(call, "admin:CreatePolicy")?;
            let request: CreatePolicy = call.json()?;
            users::validate_user_name(&request.name)?;
            if policy::builtin(&request.name).is_some() {
                return Err(AdminError::invalid(format!("{} is a built-in policy", request.name)));
            }
            let document = document_text(request.document);
            parse_document(&document)?;
            let record = IamPolicy { name: request.name.clone(), document, created_unix_ms: now_unix_ms() };
            let entity = IamEntity { entity: Some(Entity::Policy(record)) };
            let request_put = PutIamEntityRequest { entity: Some(entity), create_only: false };
            admin.iam.metadata().rpc().put_iam_entity(request_put).await?;
            admin.refresh().await;
            ok(view(admin, &request.name))
        }
        (&Method::GET, ["policies", name]) => {
            admin.require(call, "admin:GetPolicy")?;
            ok(view(admin, name).ok_or_else(|| AdminError::not_found(format!("policy {name}")))?)
        }
        (&Method::DELETE, ["policies", name]) => {
            admin.require(call, "admin:DeletePolicy")?;
            if policy::builtin(name).is_some() {
                return Err(AdminError::invalid(format!("{name} is a built-in policy")));
            }
            let request = DeleteIamEntityRequest { kind: IamKind::Policy as i32, name: name.to_string() };
            admin.iam.metadata().rpc().delete_iam_entity(request).await?;
            admin.refresh().await;
            ok(serde_json::json!({ "deleted": name }))
        }
        (&Method::POST, ["policies", name, action @ ("attach" | "detach")]) => {
            admin.require(call, "admin:AttachUserOrGroupPolicy")?;
            let attach = *action == "attach";
            if attach {
                require_exists(admin, name)?;
            }
            let target: Target = call.json()?;
            let edit = |policies: &mut Vec<String>| {
                policies.retain(|p| p != name);
                if attach {
                    policies.push(name.to_string());
                }
            };
            match (target.user, target.group) {
                (Some(user), None) => users::update_user(admin, &user, |u| edit(&mut u.policies)).await?,
                (None, Some(group)) => groups::update_group(admin, &group, |g| edit(&mut g.policies)).await?,
                _ => return Err(AdminError::invalid("name exactly one of \"user\" or \"group\"".into())),
            }
            ok(serde_json::json!({ "policy": name, "attached": attach }))
        }
        (_, ["policies", ..]) => Err(AdminError::method()),
        _ => Err(AdminError::not_found("no such admin endpoint".into())),
    }
}
