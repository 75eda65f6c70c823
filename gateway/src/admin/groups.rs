//! Groups: members share the group's policies while the group is enabled.

use coffer_proto::pb::metadata::{
    DeleteIamEntityRequest, IamEntity, IamGroup, IamKind, PutIamEntityRequest, iam_entity::Entity,
};
use hyper::Method;
use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, AdminResult, Call, ok, users};
use crate::s3::convert::now_unix_ms;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Members {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Serialize)]
struct GroupView {
    group: String,
    status: &'static str,
    members: Vec<String>,
    policies: Vec<String>,
}

fn view(group: &coffer_iam::Group) -> GroupView {
    GroupView {
        group: group.name.clone(),
        status: if group.disabled { "disabled" } else { "enabled" },
        members: group.members.clone(),
        policies: group.policies.clone(),
    }
}

fn record(group: &coffer_iam::Group) -> IamGroup {
    IamGroup {
        name: group.name.clone(),
        members: group.members.clone(),
        policies: group.policies.clone(),
        disabled: group.disabled,
        created_unix_ms: group.created_unix_ms,
    }
}

async fn put(admin: &Admin, group: IamGroup, create_only: bool) -> Result<(), AdminError> {
    let entity = IamEntity { entity: Some(Entity::Group(group)) };
    admin.iam.metadata().rpc().put_iam_entity(PutIamEntityRequest { entity: Some(entity), create_only }).await?;
    admin.refresh().await;
    Ok(())
}

/// Rewrites a group record from this gateway's current view.
pub async fn update_group(admin: &Admin, name: &str, change: impl FnOnce(&mut IamGroup)) -> Result<(), AdminError> {
    admin.refresh().await;
    let directory = admin.iam.identities.directory();
    let current = directory.groups.get(name).ok_or_else(|| AdminError::not_found(format!("group {name}")))?;
    let mut group = record(current);
    change(&mut group);
    put(admin, group, false).await
}

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (call.method, segs.as_slice()) {
        (&Method::GET, ["groups"]) => {
            admin.require(call, "admin:ListGroups")?;
            ok(admin.iam.identities.directory().groups.values().map(view).collect::<Vec<_>>())
        }
        (&Method::POST, ["groups"]) => {
            admin.require(call, "admin:AddUserToGroup")?;
            let request: CreateGroup = call.json()?;
            users::validate_user_name(&request.name)?;
            let group = IamGroup {
                name: request.name.clone(),
                members: request.members,
                created_unix_ms: now_unix_ms(),
                ..IamGroup::default()
            };
            put(admin, group, true).await?;
            ok(admin.iam.identities.directory().groups.get(&request.name).map(view))
        }
        (&Method::GET, ["groups", name]) => {
            admin.require(call, "admin:GetGroup")?;
            let directory = admin.iam.identities.directory();
            ok(directory.groups.get(*name).map(view).ok_or_else(|| AdminError::not_found(format!("group {name}")))?)
        }
        (&Method::DELETE, ["groups", name]) => {
            admin.require(call, "admin:RemoveUserFromGroup")?;
            let request = DeleteIamEntityRequest { kind: IamKind::Group as i32, name: name.to_string() };
            admin.iam.metadata().rpc().delete_iam_entity(request).await?;
            admin.refresh().await;
            ok(serde_json::json!({ "deleted": name }))
        }
        (&Method::POST, ["groups", name, "members"]) => {
            let request: Members = call.json()?;
            if !request.add.is_empty() {
                admin.require(call, "admin:AddUserToGroup")?;
            }
            if !request.remove.is_empty() {
                admin.require(call, "admin:RemoveUserFromGroup")?;
            }
            update_group(admin, name, |g| {
                g.members.retain(|m| !request.remove.contains(m));
                for member in request.add {
                    if !g.members.contains(&member) {
                        g.members.push(member);
                    }
                }
            })
            .await?;
            ok(admin.iam.identities.directory().groups.get(*name).map(view))
        }
        (&Method::POST, ["groups", name, action @ ("enable" | "disable")]) => {
            let disable = *action == "disable";
            admin.require(call, if disable { "admin:DisableGroup" } else { "admin:EnableGroup" })?;
            update_group(admin, name, |g| g.disabled = disable).await?;
            ok(admin.iam.identities.directory().groups.get(*name).map(view))
        }
        (_, ["groups", ..]) => Err(AdminError::method()),
        _ => Err(AdminError::not_found("no such admin endpoint".into())),
    }
}
