//! Validated shard identities, the only form in which ids from the network reach the index and record headers.

use std::fmt;

use coffer_proto::pb::blobnode::ShardId;

use crate::error::BlobnodeError;

pub use coffer_proto::limits::MAX_DATA_ID_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShardKey {
    pub data_id: Vec<u8>,
    pub stripe: u32,
    pub index: u32,
}

impl ShardKey {
    pub fn from_proto(id: Option<ShardId>) -> Result<Self, BlobnodeError> {
        let id = id.ok_or_else(|| BlobnodeError::InvalidArgument("shard id missing".into()))?;
        check_data_id(&id.data_id)?;
        Ok(ShardKey { data_id: id.data_id, stripe: id.stripe, index: id.index })
    }
}

impl fmt::Display for ShardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}.{}", hex::encode(&self.data_id), self.stripe, self.index)
    }
}

pub fn check_data_id(data_id: &[u8]) -> Result<(), BlobnodeError> {
    if data_id.is_empty() || data_id.len() > MAX_DATA_ID_BYTES {
        return Err(BlobnodeError::InvalidArgument(format!(
            "data id of {} bytes; expected 1 to {MAX_DATA_ID_BYTES}",
            data_id.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_ids() {
        assert!(ShardKey::from_proto(None).is_err());
        let id = |data_id: Vec<u8>| Some(ShardId { data_id, stripe: 3, index: 4 });
        assert!(ShardKey::from_proto(id(vec![])).is_err());
        assert!(ShardKey::from_proto(id(vec![1; MAX_DATA_ID_BYTES + 1])).is_err());
        let key = ShardKey::from_proto(id(vec![0xab, 0x01])).expect("valid");
        assert_eq!(key.to_string(), "ab01/3.4");
    }
}
