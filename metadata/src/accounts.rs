//! Swift account records (`AUTH_x`): the account's metadata (`X-Account-Meta-*`, TempURL keys,
//! quotas). An account exists implicitly; a record is written on its first metadata change.
//! Stored in the `meta` column family under `account 0x00 name`.

use coffer_proto::Message;
use coffer_proto::pb::metadata::AccountRecord;
use rocksdb::WriteBatch;

use crate::error::MetadataError;
use crate::store::{Cf, Store};

const KEY_PREFIX: &[u8] = b"account\0";
const MAX_NAME_BYTES: usize = 256;

fn key(name: &str) -> Vec<u8> {
    [KEY_PREFIX, name.as_bytes()].concat()
}

fn validate(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
        return Err(MetadataError::InvalidArgument("account names are 1-256 bytes without NUL".into()));
    }
    Ok(())
}

/// The account's record; an account never written to has an empty one.
pub fn get(store: &Store, name: &str) -> Result<AccountRecord, MetadataError> {
    validate(name)?;
    Ok(store
        .get(Cf::Meta, &key(name))?
        .unwrap_or_else(|| AccountRecord { name: name.to_string(), ..Default::default() }))
}

pub fn set_metadata(
    store: &Store,
    batch: &mut WriteBatch,
    name: &str,
    metadata: std::collections::HashMap<String, String>,
) -> Result<AccountRecord, MetadataError> {
    let mut record = get(store, name)?;
    record.metadata = metadata;
    batch.put_cf(store.cf(Cf::Meta)?, key(name), record.encode_to_vec());
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_exist_implicitly_and_keep_their_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(get(&store, "AUTH_test").unwrap().metadata.is_empty());
        let mut batch = WriteBatch::default();
        set_metadata(&store, &mut batch, "AUTH_test", [("color".to_string(), "red".to_string())].into()).unwrap();
        store.write(batch).unwrap();
        assert_eq!(get(&store, "AUTH_test").unwrap().metadata["color"], "red");
        assert!(get(&store, "AUTH_other").unwrap().metadata.is_empty());
        assert!(get(&store, "").is_err());
    }
}
