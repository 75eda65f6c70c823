//! Group 0's records of splits (see `split`): `ReserveSplit` takes the new group's id and notes
//! the split as pending; `FinishSplit`, once the parent applied it, records both halves — the
//! range table clients route by — and removes the note. A pending split is what a new leader of
//! group 0 finishes (`split_driver`), so a split never stays half done.

use rocksdb::WriteBatch;

use crate::command::Applied;
use crate::error::MetadataError;
use crate::range::{Descriptor, GroupRecord, Range};
use crate::store::{Cf, Store};

/// Group 0's `meta` key prefix of pending splits: the prefix, then the child's id, big-endian.
const PENDING_PREFIX: &[u8] = b"split_pending/";

/// A split group 0 reserved and has not recorded as done.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PendingSplit {
    pub parent: u64,
    pub child: u64,
    pub at_bucket: String,
    pub at_key: String,
    /// The parent's epoch when the split was reserved; both halves get the next one.
    pub epoch: u64,
    /// The parent's voters, the child's too.
    pub voters: Vec<(u64, String)>,
}

fn pending_key(child: u64) -> Vec<u8> {
    [PENDING_PREFIX, &child.to_be_bytes()].concat()
}

/// Every pending split, in child order. Blocking.
pub fn pending(store: &Store) -> Result<Vec<PendingSplit>, MetadataError> {
    let mut found = Vec::new();
    store.scan_prefix(Cf::Meta, PENDING_PREFIX, |_, value| {
        found.push(crate::range::from_bytes("pending split", value)?);
        Ok(true)
    })?;
    Ok(found)
}

/// The id the next split takes: above every recorded and reserved group. Blocking.
pub fn next_group_id(store: &Store) -> Result<u64, MetadataError> {
    let recorded = crate::range::group_records(store)?.into_iter().map(|r| r.group);
    let reserved = pending(store)?.into_iter().map(|p| p.child);
    Ok(recorded.chain(reserved).max().unwrap_or(0) + 1)
}

/// Applies `ReserveSplit` in group 0.
pub fn reserve(
    store: &Store,
    batch: &mut WriteBatch,
    parent: u64,
    child: u64,
    at: (String, String),
) -> Result<Applied, MetadataError> {
    let records = crate::range::group_records(store)?;
    let pending = pending(store)?;
    if child == 0 || records.iter().any(|r| r.group == child) || pending.iter().any(|p| p.child == child) {
        return Err(MetadataError::EntityAlreadyExists(format!("metadata group {child}")));
    }
    let Some(record) = records.iter().find(|r| r.group == parent) else {
        return Err(MetadataError::NoSuchEntity(format!("range group {parent}")));
    };
    if pending.iter().any(|p| p.parent == parent) {
        return Err(MetadataError::InvalidArgument(format!("a split of range group {parent} is already under way")));
    }
    // The child takes the parent's voters: they must be settled.
    if record.moving.is_some() {
        return Err(MetadataError::InvalidArgument(format!(
            "range group {parent} is moving a replica: split it once the move is done"
        )));
    }
    let range = &record.descriptor.range;
    let (at_bucket, at_key) = at;
    if !range.splits_at(&at_bucket, &at_key) {
        return Err(MetadataError::InvalidArgument(format!(
            "{at_bucket}/{at_key} does not split range group {parent}'s range {range}: it must lie inside it, after \
             its start"
        )));
    }
    let split = PendingSplit {
        parent,
        child,
        at_bucket,
        at_key,
        epoch: record.descriptor.epoch,
        voters: record.voters.clone(),
    };
    batch.put_cf(store.cf(Cf::Meta)?, pending_key(child), crate::range::to_bytes(&split));
    Ok(Applied::Done)
}

/// Applies `FinishSplit` in group 0: a no-op for a split already recorded.
pub fn finish(store: &Store, batch: &mut WriteBatch, child: u64) -> Result<Applied, MetadataError> {
    let records = crate::range::group_records(store)?;
    let Some(split) = pending(store)?.into_iter().find(|p| p.child == child) else {
        if records.iter().any(|r| r.group == child) {
            return Ok(Applied::Done);
        }
        return Err(MetadataError::NoSuchEntity(format!("a pending split into group {child}")));
    };
    let Some(parent) = records.into_iter().find(|r| r.group == split.parent) else {
        return Err(MetadataError::Internal(format!("the parent of pending split {child} is not recorded")));
    };
    if parent.descriptor.epoch != split.epoch {
        return Err(MetadataError::Internal(format!(
            "range group {}'s epoch moved from {} to {} during its split",
            split.parent, split.epoch, parent.descriptor.epoch
        )));
    }
    let old = parent.descriptor.range.clone();
    let epoch = split.epoch + 1;
    let left = GroupRecord {
        descriptor: Descriptor {
            range: Range { end_bucket: split.at_bucket.clone(), end_key: split.at_key.clone(), ..old.clone() },
            epoch,
        },
        ..parent
    };
    let right = GroupRecord::new(
        child,
        Descriptor {
            range: Range {
                start_bucket: split.at_bucket.clone(),
                start_key: split.at_key.clone(),
                end_bucket: old.end_bucket,
                end_key: old.end_key,
            },
            epoch,
        },
        split.voters,
    );
    let meta = store.cf(Cf::Meta)?;
    batch.put_cf(meta, crate::range::group_record_key(left.group), crate::range::encode_record(&left));
    batch.put_cf(meta, crate::range::group_record_key(child), crate::range::encode_record(&right));
    batch.delete_cf(meta, pending_key(child));
    // The child got the parent's bucket states in its seed; this sends it every later change.
    crate::bucket_state::enqueue_for_new_group(store, batch, &right)?;
    store.directory_changing();
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, apply};
    use crate::range::tests::range;

    #[test]
    fn a_split_is_reserved_then_recorded_as_two_ranges() {
        let (_dir, store) = crate::command::tests::store();
        let voters = vec![(1, "http://a".to_string())];
        let create = Command::CreateRangeGroup { group: 4, range: range(("b", ""), ("c", "")), voters };
        apply(&store, create).unwrap();
        assert_eq!(next_group_id(&store).unwrap(), 5);
        let reserve = |parent, child, key: &str| Command::ReserveSplit {
            parent,
            child,
            at_bucket: "b".into(),
            at_key: key.into(),
        };
        assert!(apply(&store, reserve(4, 4, "m")).is_err(), "a taken id");
        assert!(apply(&store, reserve(3, 5, "m")).is_err(), "no such parent");
        assert!(apply(&store, reserve(4, 5, "")).is_err(), "the range's start");
        apply(&store, reserve(4, 5, "m")).unwrap();
        assert_eq!(next_group_id(&store).unwrap(), 6, "reserved ids are not handed out again");
        assert!(apply(&store, reserve(4, 6, "p")).is_err(), "one split of a group at a time");
        assert_eq!(pending(&store).unwrap().len(), 1);
        // Until finished, group 0 still routes the whole range to group 4.
        assert_eq!(crate::range::group_records(&store).unwrap().len(), 1);

        apply(&store, Command::FinishSplit { child: 5 }).unwrap();
        apply(&store, Command::FinishSplit { child: 5 }).unwrap();
        assert!(pending(&store).unwrap().is_empty());
        let records = crate::range::group_records(&store).unwrap();
        let ranges: Vec<_> =
            records.iter().map(|r| (r.group, r.descriptor.range.clone(), r.descriptor.epoch)).collect();
        assert_eq!(ranges, [(4, range(("b", ""), ("b", "m")), 2), (5, range(("b", "m"), ("c", "")), 2)]);
        assert_eq!(records[1].voters, records[0].voters);
        // Group 0 refuses both halves' keys, each for its own group.
        assert!(matches!(store.check_directory_key("b", "z"), Err(MetadataError::WrongRange { epoch: 2, .. })));
        assert!(apply(&store, Command::FinishSplit { child: 9 }).is_err());
    }
}
