//! Keeps the gateway's IAM directory current: loads the whole IAM state from the metadata service,
//! opening sealed secrets with the master key, and reloads it whenever the generation moves.
//!
//! The gateway stores nothing itself; a restart loads the state again.

use std::sync::Arc;
use std::time::Duration;

use coffer_iam::seal::MasterKey;
use coffer_iam::session::{SIGNING_KEY_SETTING, SessionKey};
use coffer_iam::{AccessKey, Directory, Group, IdentityStore, ManagedPolicy, User};
use coffer_proto::ErrorCode;
use coffer_proto::metadata_client::MetadataClient;
use coffer_proto::pb::metadata::{
    GetIamGenerationRequest, IamEntity, IamSetting, ListIamRequest, PutIamEntityRequest, iam_entity::Entity,
};

use crate::error::{GatewayError, GatewayResult};

/// Everything the gateway needs to read and write IAM state.
#[derive(Clone)]
pub struct IamSync {
    pub identities: Arc<IdentityStore>,
    pub master_key: Arc<MasterKey>,
    metadata: MetadataClient,
}

/// Reads the master key file: 32 raw bytes, 64 hex digits or base64 of 32 bytes.
pub fn load_master_key(path: &std::path::Path) -> GatewayResult<MasterKey> {
    use base64::Engine;
    let raw = std::fs::read(path)
        .map_err(|e| GatewayError::Internal(format!("cannot read the IAM master key file {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&raw).trim().to_string();
    let bytes = if raw.len() == 32 {
        raw
    } else if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(&text).map_err(|e| GatewayError::Internal(format!("IAM master key: {e}")))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(&text)
            .map_err(|_| GatewayError::Internal("the IAM master key file must hold 32 bytes, hex or base64".into()))?
    };
    MasterKey::from_bytes(&bytes).map_err(|e| GatewayError::Internal(e.to_string()))
}

impl IamSync {
    pub fn new(identities: Arc<IdentityStore>, master_key: MasterKey, metadata: MetadataClient) -> IamSync {
        IamSync { identities, master_key: Arc::new(master_key), metadata }
    }

    pub fn metadata(&self) -> &MetadataClient {
        &self.metadata
    }

    /// Loads the whole state and installs it (see [`IdentityStore::install`] for `replace_newer`).
    pub async fn reload(&self, replace_newer: bool) -> GatewayResult<()> {
        let response =
            self.metadata.rpc().list_iam(ListIamRequest {}).await.map_err(|s| GatewayError::Remote(s.into()))?;
        let response = response.into_inner();
        let directory = self.build(response.entities, response.generation);
        self.identities.install(directory, replace_newer);
        Ok(())
    }

    fn build(&self, entities: Vec<IamEntity>, generation: u64) -> Directory {
        let mut directory = Directory::default();
        directory.generation = generation;
        for entity in entities {
            match entity.entity {
                Some(Entity::User(u)) => {
                    let user = User {
                        name: u.name.clone(),
                        disabled: u.disabled,
                        policies: u.policies,
                        created_unix_ms: u.created_unix_ms,
                    };
                    directory.users.insert(u.name, user);
                }
                Some(Entity::Key(k)) => match self.master_key.open(&k.sealed_secret, k.access_key.as_bytes()) {
                    Ok(secret) => {
                        let Ok(secret) = String::from_utf8(secret) else {
                            tracing::error!(access_key = %k.access_key, "stored secret is not UTF-8; key ignored");
                            continue;
                        };
                        let mut key = AccessKey::new(k.access_key.clone(), k.user, secret);
                        key.disabled = k.disabled;
                        key.created_unix_ms = k.created_unix_ms;
                        key.inline_policy = (!k.inline_policy.is_empty()).then_some(k.inline_policy);
                        key.service_account = k.service_account;
                        key.description = k.description;
                        directory.keys.insert(k.access_key, key);
                    }
                    // A key this gateway cannot open cannot sign here; the others still work.
                    Err(e) => tracing::error!(access_key = %k.access_key, error = %e, "access key ignored"),
                },
                Some(Entity::Group(g)) => {
                    let group = Group {
                        name: g.name.clone(),
                        members: g.members,
                        policies: g.policies,
                        disabled: g.disabled,
                        created_unix_ms: g.created_unix_ms,
                    };
                    directory.groups.insert(g.name, group);
                }
                Some(Entity::Policy(p)) => {
                    let policy = ManagedPolicy {
                        name: p.name.clone(),
                        document: p.document,
                        created_unix_ms: p.created_unix_ms,
                    };
                    directory.policies.insert(p.name, policy);
                }
                Some(Entity::Setting(setting)) if setting.name == SIGNING_KEY_SETTING => {
                    let opened = self.master_key.open(&setting.value, setting.name.as_bytes());
                    match opened.and_then(|bytes| SessionKey::from_bytes(&bytes)) {
                        Ok(key) => directory.set_session_key(key),
                        Err(e) => tracing::error!(error = %e, "STS signing key unusable; session credentials fail"),
                    }
                }
                Some(Entity::Setting(_)) | None => {}
            }
        }
        directory.index_policies();
        directory
    }

    /// Creates the cluster's STS signing key unless one exists; the first gateway to try wins and
    /// the others load its key.
    pub async fn ensure_session_key(&self) -> GatewayResult<()> {
        if self.identities.directory().session_key().is_some() {
            return Ok(());
        }
        let value = self.master_key.seal(&SessionKey::generate_bytes(), SIGNING_KEY_SETTING.as_bytes());
        let setting = IamSetting { name: SIGNING_KEY_SETTING.to_string(), value };
        let request = PutIamEntityRequest {
            entity: Some(IamEntity { entity: Some(Entity::Setting(setting)) }),
            create_only: true,
        };
        match self.metadata.rpc().put_iam_entity(request).await {
            Ok(_) => {}
            Err(status) => {
                let error = coffer_proto::RemoteError::from(status);
                if error.code != ErrorCode::EntityAlreadyExists {
                    return Err(GatewayError::Remote(error));
                }
            }
        }
        self.reload(false).await
    }

    /// Polls the generation every `every` and reloads when it moved; runs until aborted.
    pub fn spawn_refresher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let sync = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = sync.ensure_session_key().await {
                    tracing::debug!(error = %e, "cannot create the STS signing key yet");
                }
                let current = sync.identities.directory().generation;
                let generation = match sync.metadata.rpc().get_iam_generation(GetIamGenerationRequest {}).await {
                    Ok(r) => r.into_inner().generation,
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot poll the IAM generation");
                        continue;
                    }
                };
                // A metadata database restored from a backup goes back: follow it there too.
                if generation != current
                    && let Err(e) = sync.reload(generation < current).await
                {
                    tracing::warn!(error = %e, "cannot reload IAM state");
                }
            }
        })
    }
}
