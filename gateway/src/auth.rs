//! SigV4/SigV2 verification is s3s's; this hands it the secret for an access key (root, a user's
//! key, or an STS session key, whose token `authz` checks next).

use std::sync::Arc;

use coffer_iam::IdentityStore;

use crate::swift::keystone::Keystone;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result};

pub struct CofferAuth {
    identities: Arc<IdentityStore>,
    /// Keystone's EC2 credentials also sign S3 requests, when `--keystone-url` is set.
    keystone: Option<Arc<Keystone>>,
}

impl CofferAuth {
    pub fn new(identities: Arc<IdentityStore>, keystone: Option<Arc<Keystone>>) -> Self {
        CofferAuth { identities, keystone }
    }
}

fn unknown_key() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidAccessKeyId,
        "The AWS Access Key Id you provided does not exist in our records.",
    )
}

#[async_trait::async_trait]
impl S3Auth for CofferAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let local = {
            let _span = tracing::info_span!("auth.secret_key").entered();
            self.identities.secret_for(access_key)
        };
        if let Some(secret) = local {
            return Ok(SecretKey::from(secret));
        }
        let Some(keystone) = self.keystone.clone() else { return Err(unknown_key()) };
        let access = access_key.to_string();
        match tokio::task::spawn_blocking(move || keystone.ec2_credential_blocking(&access)).await {
            Ok(Ok(Some(credential))) => Ok(SecretKey::from(credential.secret)),
            Ok(Ok(None)) => Err(unknown_key()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot look up an EC2 credential in Keystone");
                Err(S3Error::with_message(S3ErrorCode::ServiceUnavailable, "Keystone is not reachable"))
            }
            Err(e) => Err(S3Error::with_message(S3ErrorCode::InternalError, e.to_string())),
        }
    }
}
