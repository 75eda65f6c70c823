//! The parts of MinIO's admin API (`/minio/admin/v3/…`, `/v4/…`) that `mc admin user|policy|group`
//! uses with plain JSON, mapped onto the same handlers and rights as `/coffer/admin/v1/`.
//!
//! In MinIO a user's name is its access key; here `accessKey=` names the user. Calls whose
//! bodies madmin encrypts with the caller's secret (add-user, list-users, add-service-account,
//! idp/builtin/policy/attach) answer 501 with a pointer to the Coffer admin API instead.

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Admin, AdminError, AdminResult, Call, groups, ok, users};

pub const PREFIXES: [&str; 2] = ["/minio/admin/v3/", "/minio/admin/v4/"];

/// A `Call` for the native handler behind a MinIO route.
fn native<'a>(call: &Call<'a>, method: &'a Method, path: &[&str], body: Bytes) -> Call<'a> {
    Call {
        method,
        segments: path.iter().map(|s| s.to_string()).collect(),
        body,
        caller: call.caller.clone(),
        query: vec![],
    }
}

fn param(call: &Call<'_>, name: &str) -> Result<String, AdminError> {
    call.query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| AdminError::invalid(format!("the query parameter {name} is required")))
}

fn empty() -> AdminResult {
    Ok((StatusCode::OK, Value::Null))
}

fn list(value: &Value, field: &str) -> String {
    value[field]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct GroupAddRemove {
    group: String,
    #[serde(default)]
    members: Vec<String>,
    #[serde(default, rename = "isRemove")]
    is_remove: bool,
}

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let operation = call.segments.join("/");
    match (call.method, operation.as_str()) {
        (&Method::GET, "user-info") => {
            let name = param(call, "accessKey")?;
            let (_, user) =
                Box::pin(users::handle(admin, &native(call, &Method::GET, &["users", &name], Bytes::new()))).await?;
            let groups: Vec<Value> = user["groups"].as_array().cloned().unwrap_or_default();
            ok(json!({ "policyName": list(&user, "policies"), "status": user["status"], "memberOf": groups }))
        }
        (&Method::PUT, "set-user-status") => {
            let name = param(call, "accessKey")?;
            let status = param(call, "status")?;
            let action = match status.as_str() {
                "enabled" => "enable",
                "disabled" => "disable",
                other => return Err(AdminError::invalid(format!("unknown status {other}"))),
            };
            users::handle(admin, &native(call, &Method::POST, &["users", &name, action], Bytes::new())).await?;
            empty()
        }
        (&Method::DELETE, "remove-user") => {
            let name = param(call, "accessKey")?;
            users::handle(admin, &native(call, &Method::DELETE, &["users", &name], Bytes::new())).await?;
            empty()
        }
        (&Method::GET, "list-canned-policies") => {
            let (_, policies) =
                super::policies::handle(admin, &native(call, &Method::GET, &["policies"], Bytes::new())).await?;
            let map: serde_json::Map<String, Value> = policies
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| Some((p["name"].as_str()?.to_string(), p["document"].clone())))
                .collect();
            ok(Value::Object(map))
        }
        (&Method::GET, "info-canned-policy") => {
            let name = param(call, "name")?;
            let (_, policy) =
                super::policies::handle(admin, &native(call, &Method::GET, &["policies", &name], Bytes::new())).await?;
            if call.query.iter().any(|(n, v)| n == "v" && v == "2") {
                ok(json!({ "PolicyName": name, "Policy": policy["document"] }))
            } else {
                ok(policy["document"].clone())
            }
        }
        (&Method::PUT, "add-canned-policy") => {
            let name = param(call, "name")?;
            let document: Value =
                serde_json::from_slice(&call.body).map_err(|e| AdminError::malformed_policy(format!("policy: {e}")))?;
            let body = Bytes::from(json!({ "name": name, "document": document }).to_string());
            super::policies::handle(admin, &native(call, &Method::POST, &["policies"], body)).await?;
            empty()
        }
        (&Method::DELETE, "remove-canned-policy") => {
            let name = param(call, "name")?;
            super::policies::handle(admin, &native(call, &Method::DELETE, &["policies", &name], Bytes::new())).await?;
            empty()
        }
        (&Method::PUT, "set-user-or-group-policy") => {
            admin.require(call, "admin:AttachUserOrGroupPolicy")?;
            let names: Vec<String> = param(call, "policyName")?
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            for name in &names {
                super::policies::require_exists(admin, name)?;
            }
            let target = param(call, "userOrGroup")?;
            if call.query.iter().any(|(n, v)| n == "isGroup" && v == "true") {
                groups::update_group(admin, &target, |g| g.policies = names).await?;
            } else {
                users::update_user(admin, &target, |u| u.policies = names).await?;
            }
            empty()
        }
        (&Method::GET, "groups") => {
            admin.require(call, "admin:ListGroups")?;
            ok(admin.iam.identities.directory().groups.keys().cloned().collect::<Vec<_>>())
        }
        (&Method::GET, "group") => {
            let name = param(call, "group")?;
            let (_, group) =
                groups::handle(admin, &native(call, &Method::GET, &["groups", &name], Bytes::new())).await?;
            ok(json!({
                "name": group["group"], "status": group["status"], "members": group["members"],
                "policy": list(&group, "policies"),
            }))
        }
        (&Method::PUT, "set-group-status") => {
            let name = param(call, "group")?;
            let action = match param(call, "status")?.as_str() {
                "enabled" => "enable",
                "disabled" => "disable",
                other => return Err(AdminError::invalid(format!("unknown status {other}"))),
            };
            groups::handle(admin, &native(call, &Method::POST, &["groups", &name, action], Bytes::new())).await?;
            empty()
        }
        (&Method::PUT, "update-group-members") => update_group_members(admin, call).await,
        (
            _,
            "add-user"
            | "list-users"
            | "add-service-account"
            | "idp/builtin/policy/attach"
            | "idp/builtin/policy/detach",
        ) => Err(AdminError {
            status: StatusCode::NOT_IMPLEMENTED,
            code: "NotImplemented",
            message: format!(
                "{operation} takes a body encrypted with the caller's secret, which Coffer does not accept; use \
                     `coffer admin` or /coffer/admin/v1/"
            ),
        }),
        _ => Err(AdminError::not_found(format!("no MinIO admin endpoint {operation}"))),
    }
}

/// MinIO creates a group on its first member and removes it on a removal with no members listed.
async fn update_group_members(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let request: GroupAddRemove = call.json()?;
    let exists = admin.iam.identities.directory().groups.contains_key(&request.group);
    let (path, body): (Vec<&str>, Value) = match (exists, request.is_remove, request.members.is_empty()) {
        (_, true, true) => (vec!["groups", &request.group], Value::Null),
        (true, true, false) => (vec!["groups", &request.group, "members"], json!({ "remove": request.members })),
        (true, false, _) => (vec!["groups", &request.group, "members"], json!({ "add": request.members })),
        (false, false, _) => (vec!["groups"], json!({ "name": request.group, "members": request.members })),
        (false, true, false) => return Err(AdminError::not_found(format!("group {}", request.group))),
    };
    let method = if body.is_null() { &Method::DELETE } else { &Method::POST };
    let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
    groups::handle(admin, &native(call, method, &path, body)).await?;
    empty()
}
