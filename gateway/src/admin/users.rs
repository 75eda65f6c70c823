//! Users, their access keys and service accounts.

use coffer_proto::pb::metadata::{
    DeleteIamEntityRequest, IamAccessKey, IamEntity, IamKind, IamUser, PutIamEntityRequest, iam_entity::Entity,
};
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, AdminResult, Call, ok};
use crate::s3::convert::now_unix_ms;

const USER_KEY_PREFIX: &str = "CK";
const SERVICE_KEY_PREFIX: &str = "CS";
const MAX_KEYS_PER_USER: usize = 16;

/// The shape `coffer admin user add NAME --json` prints.
#[derive(Serialize)]
pub struct NewKey {
    pub user: String,
    pub access_key: String,
    pub secret_key: String,
}

#[derive(Serialize)]
struct UserView {
    user: String,
    status: &'static str,
    policies: Vec<String>,
    groups: Vec<String>,
    access_keys: Vec<KeyView>,
    created_unix_ms: i64,
}

#[derive(Serialize)]
struct KeyView {
    access_key: String,
    user: String,
    status: &'static str,
    service_account: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    has_policy: bool,
    created_unix_ms: i64,
}

fn status(disabled: bool) -> &'static str {
    if disabled { "disabled" } else { "enabled" }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    name: String,
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateServiceAccount {
    #[serde(default)]
    policy: Option<serde_json::Value>,
    #[serde(default)]
    description: String,
}

/// AWS IAM's user-name alphabet, plus `:` for Swift-style `account:user` names.
pub fn validate_user_name(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-:".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AdminError::invalid(format!("invalid user name {name:?}: 1-64 of A-Z a-z 0-9 +=,.@_-:")))
    }
}

pub async fn handle(admin: &Admin, call: &Call<'_>) -> AdminResult {
    let segs: Vec<&str> = call.segments.iter().map(String::as_str).collect();
    match (call.method, segs.as_slice()) {
        (&Method::GET, ["users"]) => {
            admin.require(call, "admin:ListUsers")?;
            let directory = admin.iam.identities.directory();
            ok(directory.users.keys().map(|name| view(&directory, name)).collect::<Option<Vec<_>>>())
        }
        (&Method::POST, ["users"]) => {
            admin.require(call, "admin:CreateUser")?;
            create_user(admin, call.json()?).await
        }
        (&Method::GET, ["users", name]) => {
            admin.require(call, "admin:GetUser")?;
            let directory = admin.iam.identities.directory();
            let user = view(&directory, name).ok_or_else(|| AdminError::not_found(format!("user {name}")))?;
            ok(user)
        }
        (&Method::DELETE, ["users", name]) => {
            admin.require(call, "admin:DeleteUser")?;
            let request = DeleteIamEntityRequest { kind: IamKind::User as i32, name: name.to_string() };
            admin.iam.metadata().rpc().delete_iam_entity(request).await?;
            admin.refresh().await;
            ok(serde_json::json!({ "deleted": name }))
        }
        (&Method::POST, ["users", name, action @ ("enable" | "disable")]) => {
            let disable = *action == "disable";
            admin.require(call, if disable { "admin:DisableUser" } else { "admin:EnableUser" })?;
            update_user(admin, name, |u| u.disabled = disable).await?;
            ok(serde_json::json!({ "user": name, "status": status(disable) }))
        }
        (&Method::GET, ["users", name, "keys"]) => {
            admin.require(call, "admin:ListAccessKeys")?;
            let directory = admin.iam.identities.directory();
            if !directory.users.contains_key(*name) {
                return Err(AdminError::not_found(format!("user {name}")));
            }
            ok(directory.keys_of(name).into_iter().map(key_view).collect::<Vec<_>>())
        }
        (&Method::POST, ["users", name, "keys"]) => {
            admin.require(call, "admin:CreateAccessKey")?;
            let key = add_key(admin, name, USER_KEY_PREFIX, None, String::new()).await?;
            Ok((StatusCode::OK, to_value(key)?))
        }
        (&Method::POST, ["users", name, "service-accounts"]) => {
            admin.require(call, "admin:CreateServiceAccount")?;
            let request: CreateServiceAccount = call.json()?;
            let policy = match request.policy {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(text)) => Some(text),
                Some(value) => Some(value.to_string()),
            };
            if let Some(text) = &policy {
                super::policies::parse_document(text)?;
            }
            let key = add_key(admin, name, SERVICE_KEY_PREFIX, policy, request.description).await?;
            Ok((StatusCode::OK, to_value(key)?))
        }
        (&Method::DELETE, ["keys", access_key]) => {
            admin.require(call, "admin:DeleteAccessKey")?;
            let request = DeleteIamEntityRequest { kind: IamKind::AccessKey as i32, name: access_key.to_string() };
            admin.iam.metadata().rpc().delete_iam_entity(request).await?;
            admin.refresh().await;
            ok(serde_json::json!({ "deleted": access_key }))
        }
        (&Method::POST, ["keys", access_key, action @ ("enable" | "disable")]) => {
            admin.require(call, "admin:UpdateAccessKey")?;
            let disable = *action == "disable";
            set_key_disabled(admin, access_key, disable).await?;
            ok(serde_json::json!({ "access_key": access_key, "status": status(disable) }))
        }
        (_, ["users", ..] | ["keys", ..]) => Err(AdminError::method()),
        _ => Err(AdminError::not_found("no such admin endpoint".into())),
    }
}

fn to_value<T: Serialize>(value: T) -> Result<serde_json::Value, AdminError> {
    serde_json::to_value(value).map_err(|e| AdminError::internal(e.to_string()))
}

fn key_view(key: &coffer_iam::AccessKey) -> KeyView {
    KeyView {
        access_key: key.access_key.clone(),
        user: key.user.clone(),
        status: status(key.disabled),
        service_account: key.service_account,
        description: key.description.clone(),
        has_policy: key.inline_policy.is_some(),
        created_unix_ms: key.created_unix_ms,
    }
}

fn view(directory: &coffer_iam::Directory, name: &str) -> Option<UserView> {
    let user = directory.users.get(name)?;
    Some(UserView {
        user: user.name.clone(),
        status: status(user.disabled),
        policies: user.policies.clone(),
        groups: directory.groups_of(name).into_iter().map(str::to_string).collect(),
        access_keys: directory.keys_of(name).into_iter().map(key_view).collect(),
        created_unix_ms: user.created_unix_ms,
    })
}

async fn create_user(admin: &Admin, request: CreateUser) -> AdminResult {
    validate_user_name(&request.name)?;
    if request.name == admin.authorizer.root_access_key() {
        return Err(AdminError {
            status: StatusCode::CONFLICT,
            code: "EntityAlreadyExists",
            message: "the root user".into(),
        });
    }
    for policy in &request.policies {
        super::policies::require_exists(admin, policy)?;
    }
    let user = IamUser {
        name: request.name.clone(),
        disabled: false,
        policies: request.policies,
        created_unix_ms: now_unix_ms(),
    };
    let entity = IamEntity { entity: Some(Entity::User(user)) };
    admin.iam.metadata().rpc().put_iam_entity(PutIamEntityRequest { entity: Some(entity), create_only: true }).await?;
    admin.refresh().await;
    let key = add_key(admin, &request.name, USER_KEY_PREFIX, None, String::new()).await?;
    Ok((StatusCode::OK, to_value(key)?))
}

async fn add_key(
    admin: &Admin,
    user: &str,
    prefix: &str,
    inline_policy: Option<String>,
    description: String,
) -> Result<NewKey, AdminError> {
    let directory = admin.iam.identities.directory();
    if !directory.users.contains_key(user) {
        return Err(AdminError::not_found(format!("user {user}")));
    }
    if directory.keys_of(user).len() >= MAX_KEYS_PER_USER {
        return Err(AdminError::invalid(format!("user {user} already has {MAX_KEYS_PER_USER} keys")));
    }
    let access_key = coffer_iam::keygen::new_access_key(prefix);
    let secret_key = coffer_iam::keygen::new_secret_key();
    let record = IamAccessKey {
        access_key: access_key.clone(),
        user: user.to_string(),
        sealed_secret: admin.iam.master_key.seal(secret_key.as_bytes(), access_key.as_bytes()),
        disabled: false,
        created_unix_ms: now_unix_ms(),
        service_account: prefix == SERVICE_KEY_PREFIX,
        inline_policy: inline_policy.unwrap_or_default(),
        description,
    };
    let entity = IamEntity { entity: Some(Entity::Key(record)) };
    admin.iam.metadata().rpc().put_iam_entity(PutIamEntityRequest { entity: Some(entity), create_only: true }).await?;
    admin.refresh().await;
    Ok(NewKey { user: user.to_string(), access_key, secret_key })
}

/// Rewrites a user record from this gateway's current view (changes race only with other admins).
pub async fn update_user(admin: &Admin, name: &str, change: impl FnOnce(&mut IamUser)) -> Result<(), AdminError> {
    admin.refresh().await;
    let directory = admin.iam.identities.directory();
    let current = directory.users.get(name).ok_or_else(|| AdminError::not_found(format!("user {name}")))?;
    let mut user = IamUser {
        name: current.name.clone(),
        disabled: current.disabled,
        policies: current.policies.clone(),
        created_unix_ms: current.created_unix_ms,
    };
    change(&mut user);
    let entity = IamEntity { entity: Some(Entity::User(user)) };
    admin.iam.metadata().rpc().put_iam_entity(PutIamEntityRequest { entity: Some(entity), create_only: false }).await?;
    admin.refresh().await;
    Ok(())
}

async fn set_key_disabled(admin: &Admin, access_key: &str, disabled: bool) -> Result<(), AdminError> {
    admin.refresh().await;
    let directory = admin.iam.identities.directory();
    let key =
        directory.keys.get(access_key).ok_or_else(|| AdminError::not_found(format!("access key {access_key}")))?;
    let record = IamAccessKey {
        access_key: key.access_key.clone(),
        user: key.user.clone(),
        sealed_secret: admin.iam.master_key.seal(key.secret().as_bytes(), key.access_key.as_bytes()),
        disabled,
        created_unix_ms: key.created_unix_ms,
        inline_policy: key.inline_policy.clone().unwrap_or_default(),
        service_account: key.service_account,
        description: key.description.clone(),
    };
    let entity = IamEntity { entity: Some(Entity::Key(record)) };
    admin.iam.metadata().rpc().put_iam_entity(PutIamEntityRequest { entity: Some(entity), create_only: false }).await?;
    admin.refresh().await;
    Ok(())
}
