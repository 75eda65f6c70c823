//! The repair worker's one error type.

use coffer_proto::RemoteError;

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("stripe {stripe}: only {available} of the {needed} shards needed could be read")]
    NotEnoughShards { stripe: u64, available: usize, needed: usize },
    #[error("erasure coding failed: {0}")]
    Codec(String),
    #[error("invalid repair task: {0}")]
    BadTask(String),
    #[error("{0}")]
    Internal(String),
}

impl From<coffer_gateway::GatewayError> for RepairError {
    fn from(e: coffer_gateway::GatewayError) -> Self {
        match e {
            coffer_gateway::GatewayError::NotEnoughShards { stripe, available, needed } => {
                RepairError::NotEnoughShards { stripe, available, needed }
            }
            other => RepairError::Codec(other.to_string()),
        }
    }
}
