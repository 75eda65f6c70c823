//! SigV4/SigV2 verification is s3s's; this hands it the secret for an access key (root, a user's
//! key, or an STS session key, whose token `authz` checks next).

use std::sync::Arc;

use coffer_iam::IdentityStore;
use s3s::auth::{S3Auth, SecretKey};
use s3s::{S3Error, S3ErrorCode, S3Result};

pub struct CofferAuth {
    identities: Arc<IdentityStore>,
}

impl CofferAuth {
    pub fn new(identities: Arc<IdentityStore>) -> Self {
        CofferAuth { identities }
    }
}

#[async_trait::async_trait]
impl S3Auth for CofferAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let _span = tracing::info_span!("auth.secret_key").entered();
        match self.identities.secret_for(access_key) {
            Some(secret) => Ok(SecretKey::from(secret)),
            None => Err(S3Error::with_message(
                S3ErrorCode::InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records.",
            )),
        }
    }
}
