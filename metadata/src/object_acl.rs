//! An object's canned ACL (`ObjectRecord.acl`): the gateway decides what it means, this only
//! stores it on the current object or on one version, in every copy of that record.

use rocksdb::WriteBatch;

use crate::command::Applied;
use crate::error::MetadataError;
use crate::store::Store;
use crate::versions;

/// Longer than any canned ACL name: a bound on what every read of the record carries.
pub const MAX_ACL_BYTES: usize = 64;

/// Sets the ACL of `bucket/key` (the current object when `version_id` is empty, else that
/// version, "null" included). Delete markers have no ACL.
pub fn set_acl(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    version_id: &str,
    acl: String,
) -> Result<Applied, MetadataError> {
    if acl.len() > MAX_ACL_BYTES {
        return Err(MetadataError::InvalidArgument(format!("an object ACL is at most {MAX_ACL_BYTES} bytes")));
    }
    let mut record = if version_id.is_empty() {
        store.bucket(bucket)?;
        store.object(bucket, key)?
    } else {
        versions::get(store, bucket, key, version_id)?
    };
    if record.delete_marker {
        return Err(MetadataError::InvalidArgument("a delete marker has no ACL".into()));
    }
    record.acl = acl;
    versions::rewrite(store, batch, &record)?;
    Ok(Applied::Object(record))
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::Versioning;

    use crate::command::tests::{allocate, make_bucket, object, stamp, store};
    use crate::command::{Command, apply};

    fn set(store: &crate::store::Store, version_id: &str, acl: &str) -> Result<String, crate::MetadataError> {
        let command = Command::SetObjectAcl {
            bucket: "b".into(),
            key: "k".into(),
            version_id: version_id.into(),
            acl: acl.into(),
        };
        apply(store, command).and_then(|a| a.into_object()).map(|r| r.acl)
    }

    #[test]
    fn acls_land_on_the_current_object_or_one_version() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        assert!(set(&store, "", "public-read").is_err(), "no such key");
        apply(&store, Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Enabled }).unwrap();
        let put = |data: &[u8], now| {
            let (segment, intent) = allocate(&store, data, 10, 10_000_000);
            let command = Command::PutObject {
                record: object("b", "k", segment),
                intents: vec![intent],
                condition: Default::default(),
                stamp: stamp(now),
            };
            apply(&store, command).unwrap().into_object().unwrap()
        };
        let v1 = put(b"d1", 100);
        let v2 = put(b"d2", 200);
        assert_eq!(set(&store, &v1.version_id, "public-read").unwrap(), "public-read");
        assert_eq!(crate::versions::get(&store, "b", "k", &v1.version_id).unwrap().acl, "public-read");
        assert!(store.object("b", "k").unwrap().acl.is_empty(), "the current version is untouched");
        set(&store, "", "authenticated-read").unwrap();
        assert_eq!(store.object("b", "k").unwrap().acl, "authenticated-read");
        assert_eq!(crate::versions::get(&store, "b", "k", &v2.version_id).unwrap().acl, "authenticated-read");
        assert!(set(&store, "", &"x".repeat(super::MAX_ACL_BYTES + 1)).is_err());
    }
}
