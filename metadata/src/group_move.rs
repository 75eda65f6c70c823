//! Group 0's records of moves: changes of a range group's replicas (see docs/design/
//! metadata-sharding.md, "Move"). A move adds one replica, removes one, or both — moving the
//! group from one metadata process to another. Group 0's leader carries it out (`move_driver`):
//!
//! 1. `MoveReplica` notes the move in the group's record. From then on the joining process lists
//!    itself among the group's replicas and opens it empty, never initialized
//!    ([`GroupRecord::voters_initialize`] is false for good): the group's leader sends it the log
//!    or a snapshot.
//! 2. The group's leader adds the joining replica (a learner until caught up, then a voter), then
//!    removes the leaving one (`MetadataRaft.Join` / `Leave`, addressed to the group).
//! 3. `FinishMove` sets the record's voters to the group's new ones. The process that left no
//!    longer finds itself listed and closes the group, deleting its copy.
//!
//! Splits and moves of one group exclude each other: a split's child takes its parent's voters.

use rocksdb::WriteBatch;

use crate::command::Applied;
use crate::error::MetadataError;
use crate::range::{GroupRecord, Move, encode_record, group_record_key, group_records};
use crate::store::{Cf, Store};

fn record_of(store: &Store, group: u64) -> Result<GroupRecord, MetadataError> {
    group_records(store)?
        .into_iter()
        .find(|r| r.group == group)
        .ok_or_else(|| MetadataError::NoSuchEntity(format!("range group {group}")))
}

fn put(store: &Store, batch: &mut WriteBatch, record: &GroupRecord) -> Result<(), MetadataError> {
    batch.put_cf(store.cf(Cf::Meta)?, group_record_key(record.group), encode_record(record));
    // The write reloads the store's copy of the records, which opens and closes groups.
    store.directory_changing();
    Ok(())
}

/// Applies `MoveReplica` in group 0. The same move again is a no-op; another while one is under
/// way, or during a split of the group, is refused.
pub fn begin(
    store: &Store,
    batch: &mut WriteBatch,
    group: u64,
    from: Option<u64>,
    to: Option<(u64, String)>,
) -> Result<Applied, MetadataError> {
    let mut record = record_of(store, group)?;
    let wanted = Move { from, to };
    match &record.moving {
        Some(under_way) if *under_way == wanted => return Ok(Applied::Done),
        Some(_) => {
            return Err(MetadataError::InvalidArgument(format!("a move of range group {group} is already under way")));
        }
        None => {}
    }
    if crate::split_plan::pending(store)?.iter().any(|p| p.parent == group) {
        return Err(MetadataError::InvalidArgument(format!(
            "range group {group} is splitting: move its replicas once the split is done"
        )));
    }
    let is_voter = |id: u64| record.voters.iter().any(|(voter, _)| *voter == id);
    if let Some(from) = wanted.from
        && !is_voter(from)
    {
        return Err(MetadataError::InvalidArgument(format!("node {from} holds no replica of range group {group}")));
    }
    if let Some((to, url)) = &wanted.to {
        if is_voter(*to) {
            return Err(MetadataError::InvalidArgument(format!(
                "node {to} already holds a replica of range group {group}"
            )));
        }
        if *to == 0 || url.is_empty() {
            return Err(MetadataError::InvalidArgument("a joining replica needs a node id and an address".into()));
        }
    } else if wanted.from.is_none() {
        return Err(MetadataError::InvalidArgument("a move names a replica to add, one to remove, or both".into()));
    } else if record.voters.len() == 1 {
        return Err(MetadataError::InvalidArgument(format!("range group {group}'s only replica cannot leave")));
    }
    record.moving = Some(wanted);
    record.moves += 1;
    put(store, batch, &record)?;
    Ok(Applied::Done)
}

/// Applies `FinishMove` in group 0: the voters lose the leaving replica and gain the joining one.
/// A no-op when no move is under way.
pub fn finish(store: &Store, batch: &mut WriteBatch, group: u64) -> Result<Applied, MetadataError> {
    let mut record = record_of(store, group)?;
    let Some(done) = record.moving.take() else {
        return Ok(Applied::Done);
    };
    if let Some(from) = done.from {
        record.voters.retain(|(voter, _)| *voter != from);
    }
    if let Some(to) = done.to {
        record.voters.push(to);
    }
    record.voters.sort();
    put(store, batch, &record)?;
    Ok(Applied::Done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::range::Range;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn apply(store: &Store, command: Command) -> Result<Applied, MetadataError> {
        let mut batch = WriteBatch::default();
        let applied = crate::command::apply_into(store, &mut batch, command)?;
        store.write(batch).unwrap();
        Ok(applied)
    }

    fn voters(ids: &[u64]) -> Vec<(u64, String)> {
        ids.iter().map(|id| (*id, format!("http://n{id}"))).collect()
    }

    fn with_group(store: &Store) {
        let range = Range {
            start_bucket: "photos".into(),
            start_key: String::new(),
            end_bucket: "photos".into(),
            end_key: "m".into(),
        };
        apply(store, Command::CreateRangeGroup { group: 1, range, voters: voters(&[1, 2, 3]) }).unwrap();
    }

    fn record(store: &Store) -> GroupRecord {
        record_of(store, 1).unwrap()
    }

    #[test]
    fn a_move_lists_the_joining_replica_then_swaps_the_voters() {
        let (_dir, store) = store();
        with_group(&store);
        assert!(record(&store).voters_initialize());
        let to = Some((4, "http://n4".to_string()));
        apply(&store, Command::MoveReplica { group: 1, from: Some(2), to: to.clone() }).unwrap();
        let moving = record(&store);
        assert!(moving.lists(4) && moving.lists(2), "both take part while the move runs: {moving:?}");
        assert!(!moving.voters_initialize(), "after a move no replica initializes the group");
        // The same move again (a new leader of group 0 resuming it) changes nothing.
        apply(&store, Command::MoveReplica { group: 1, from: Some(2), to: to.clone() }).unwrap();
        assert_eq!(record(&store), moving);
        let other = apply(&store, Command::MoveReplica { group: 1, from: Some(3), to: None });
        assert!(matches!(other, Err(MetadataError::InvalidArgument(_))), "{other:?}");

        apply(&store, Command::FinishMove { group: 1 }).unwrap();
        let moved = record(&store);
        assert_eq!(moved.voters, voters(&[1, 3, 4]));
        assert!(moved.moving.is_none() && !moved.lists(2));
        assert_eq!(moved.moves, 1);
        apply(&store, Command::FinishMove { group: 1 }).unwrap();
        assert_eq!(record(&store), moved, "finishing twice is harmless");
    }

    #[test]
    fn moves_that_make_no_sense_are_refused() {
        let (_dir, store) = store();
        with_group(&store);
        let refused = |command| matches!(apply(&store, command), Err(MetadataError::InvalidArgument(_)));
        assert!(refused(Command::MoveReplica { group: 1, from: Some(9), to: None }), "not a replica");
        assert!(refused(Command::MoveReplica { group: 1, from: None, to: Some((3, "http://n3".into())) }));
        assert!(refused(Command::MoveReplica { group: 1, from: None, to: None }));
        assert!(refused(Command::MoveReplica { group: 1, from: None, to: Some((4, String::new())) }));
        let missing = apply(&store, Command::MoveReplica { group: 7, from: Some(1), to: None });
        assert!(matches!(missing, Err(MetadataError::NoSuchEntity(_))), "{missing:?}");
        assert_eq!(record(&store).moves, 0, "nothing started");
    }

    #[test]
    fn a_split_and_a_move_of_one_group_exclude_each_other() {
        let (_dir, store) = store();
        with_group(&store);
        let split = |child| Command::ReserveSplit { parent: 1, child, at_bucket: "photos".into(), at_key: "f".into() };
        apply(&store, split(2)).unwrap();
        let move_now = apply(&store, Command::MoveReplica { group: 1, from: Some(1), to: None });
        assert!(matches!(move_now, Err(MetadataError::InvalidArgument(_))), "{move_now:?}");

        let (_dir, store) = self::store();
        with_group(&store);
        apply(&store, Command::MoveReplica { group: 1, from: Some(1), to: None }).unwrap();
        let split_now = apply(&store, split(2));
        assert!(matches!(split_now, Err(MetadataError::InvalidArgument(_))), "{split_now:?}");
    }

    #[test]
    fn a_record_stored_before_moves_reads_as_never_moved() {
        let record = GroupRecord::new(
            5,
            crate::range::Descriptor {
                range: Range {
                    start_bucket: "a".into(),
                    start_key: String::new(),
                    end_bucket: String::new(),
                    end_key: String::new(),
                },
                epoch: 3,
            },
            voters(&[1, 2]),
        );
        #[derive(serde::Serialize)]
        struct V1<'a> {
            group: u64,
            descriptor: &'a crate::range::Descriptor,
            voters: &'a Vec<(u64, String)>,
        }
        let old = crate::range::to_bytes(&V1 { group: 5, descriptor: &record.descriptor, voters: &record.voters });
        assert_eq!(crate::range::decode_record(&old).unwrap(), record);
        assert_eq!(crate::range::decode_record(&encode_record(&record)).unwrap(), record);
    }
}
