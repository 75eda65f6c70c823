//! Repair: which columns (shard `index` of every stripe of one data) need rebuilding and where to,
//! and the atomic switch of a rebuilt column to its new place.
//!
//! Work is derived from durable state only — damaged-shard reports, the holdings of lost or
//! draining disks, and the owners' layouts — so a restarted metadata service or repair worker
//! simply finds the same work again. Workers do the rebuilding; this module only plans and commits.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use coffer_proto::Message;
use coffer_proto::pb::metadata::{DataLayout, GcRecord, RepairTask, ShardLocation};
use rand::Rng;
use rand::seq::IndexedRandom;
use rocksdb::WriteBatch;

use crate::cluster::DiskView;
use crate::command::{Applied, Stamp};
use crate::data;
use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store};

/// Entries (reports and holdings) one plan looks at; the rest waits for the next claim.
pub const SCAN_LIMIT: usize = 100_000;
/// Holdings read per page.
const PAGE: usize = 1000;

/// What one planning pass found.
#[derive(Debug, Default)]
pub struct Plan {
    /// Up to the requested number, for a worker to lease.
    pub tasks: Vec<RepairTask>,
    /// Columns needing repair (leased ones included) and the stripes they span.
    pub degraded_columns: u64,
    pub degraded_stripes: u64,
    /// Columns that must move but have no disk to go to yet.
    pub blocked_columns: u64,
    pub damaged_reports: u64,
    pub lost_disks: u64,
    /// Reports that no longer apply (the shard moved, its data is gone): to delete.
    pub stale_reports: Vec<Vec<u8>>,
    /// Draining nodes of which no record references any shard any more.
    pub drained: Vec<String>,
}

/// One column found needing repair.
struct Column {
    layout: DataLayout,
    index: u32,
    first_stripe: u32,
    reason: &'static str,
}

pub struct Inputs<'a> {
    pub disks: &'a [DiskView],
    pub now_unix_ms: i64,
    /// A report about data no record owns is kept this long (its upload may still commit), then dropped.
    pub unowned_report_ttl_ms: i64,
    /// Tasks wanted; 0 only counts.
    pub limit: usize,
}

/// Finds the columns needing repair. `leased(data_id, index)` tells which are being worked on.
pub fn plan(
    store: &Store,
    inputs: &Inputs<'_>,
    leased: impl Fn(&[u8], u32) -> bool,
    rng: &mut impl Rng,
) -> Result<Plan, MetadataError> {
    let mut plan = Plan::default();
    let mut columns: BTreeMap<(Vec<u8>, u32), Column> = BTreeMap::new();
    let mut budget = SCAN_LIMIT;
    damaged_columns(store, inputs, &mut plan, &mut columns, &mut budget)?;
    disk_columns(store, inputs, &mut plan, &mut columns, &mut budget)?;

    for ((data_id, index), column) in columns {
        let Some(source) = column.layout.shards.get(index as usize).cloned() else {
            continue;
        };
        let stripes = column.layout.size.div_ceil(column.layout.stripe_size.max(1));
        plan.degraded_columns += 1;
        plan.degraded_stripes += stripes.saturating_sub(u64::from(column.first_stripe));
        let view = inputs.disks.iter().find(|d| d.node_id == source.node_id && d.disk_id == source.disk_id);
        let must_move = view.is_none_or(|v| v.lost || v.draining);
        let target = if must_move {
            match choose_target(store, inputs.disks, &column.layout, rng)? {
                Some(target) => target,
                None => {
                    plan.blocked_columns += 1;
                    continue;
                }
            }
        } else if view.is_some_and(|v| v.usable) {
            source.clone()
        } else {
            // Down (or full) but not lost yet: wait for it to come back or for the grace to end.
            continue;
        };
        if plan.tasks.len() >= inputs.limit || leased(&data_id, index) {
            continue;
        }
        plan.tasks.push(RepairTask {
            layout: Some(column.layout),
            index,
            source: Some(source),
            target: Some(target),
            first_stripe: if must_move { 0 } else { column.first_stripe },
            reason: column.reason.to_string(),
            // Named by the service that hands the task out (see `MetadataService::claim_repairs`).
            group: 0,
        });
    }
    Ok(plan)
}

fn add_column(columns: &mut BTreeMap<(Vec<u8>, u32), Column>, column: Column) {
    let key = (column.layout.data_id.clone(), column.index);
    match columns.get_mut(&key) {
        Some(existing) => existing.first_stripe = existing.first_stripe.min(column.first_stripe),
        None => {
            columns.insert(key, column);
        }
    }
}

/// The reports about one column.
struct Reports {
    disk_id: String,
    first_stripe: u32,
    oldest_unix_ms: i64,
    keys: Vec<Vec<u8>>,
}

/// Columns with damaged-shard reports (corrupt, missing, unwritten) that still apply.
fn damaged_columns(
    store: &Store,
    inputs: &Inputs<'_>,
    plan: &mut Plan,
    columns: &mut BTreeMap<(Vec<u8>, u32), Column>,
    budget: &mut usize,
) -> Result<(), MetadataError> {
    let reports = store.damaged_with_keys(*budget)?;
    *budget = budget.saturating_sub(reports.len());
    plan.damaged_reports = reports.len() as u64;
    let mut groups: BTreeMap<(Vec<u8>, u32), Reports> = BTreeMap::new();
    for (key, report) in reports {
        let group = groups.entry((report.data_id.clone(), report.index)).or_insert_with(|| Reports {
            disk_id: report.disk_id.clone(),
            first_stripe: report.stripe,
            oldest_unix_ms: report.reported_unix_ms,
            keys: Vec::new(),
        });
        group.first_stripe = group.first_stripe.min(report.stripe);
        group.oldest_unix_ms = group.oldest_unix_ms.min(report.reported_unix_ms);
        group.keys.push(key);
    }
    for ((data_id, index), Reports { disk_id, first_stripe, oldest_unix_ms: reported, keys }) in groups {
        match store.owned_layout(&data_id)? {
            Some((_, layout)) if layout.shards.get(index as usize).is_some_and(|s| s.disk_id == disk_id) => {
                add_column(columns, Column { layout, index, first_stripe, reason: "damaged" });
            }
            // Not committed (yet): keep the report while the upload may still commit.
            None if inputs.now_unix_ms.saturating_sub(reported) < inputs.unowned_report_ttl_ms => {}
            _ => plan.stale_reports.extend(keys),
        }
    }
    Ok(())
}

/// Columns on disks that are lost or being drained; notes draining nodes left with nothing.
fn disk_columns(
    store: &Store,
    inputs: &Inputs<'_>,
    plan: &mut Plan,
    columns: &mut BTreeMap<(Vec<u8>, u32), Column>,
    budget: &mut usize,
) -> Result<(), MetadataError> {
    let mut draining_nodes: BTreeSet<&str> = BTreeSet::new();
    let mut still_holding: HashSet<&str> = HashSet::new();
    for disk in inputs.disks.iter().filter(|d| d.lost || d.draining) {
        if disk.lost {
            plan.lost_disks += 1;
        }
        if disk.draining {
            draining_nodes.insert(&disk.node_id);
        }
        let reason = if disk.lost { "lost" } else { "draining" };
        let mut after = Vec::new();
        loop {
            if *budget == 0 {
                // Not looked at everything: nothing can be called drained.
                still_holding.insert(&disk.node_id);
                break;
            }
            let page = store.holdings(&disk.node_id, &disk.disk_id, &after, PAGE.min(*budget))?;
            *budget = budget.saturating_sub(page.len());
            for data_id in &page {
                let Some((_, layout)) = store.owned_layout(data_id)? else {
                    continue;
                };
                let Some(index) =
                    layout.shards.iter().position(|s| s.node_id == disk.node_id && s.disk_id == disk.disk_id)
                else {
                    continue;
                };
                still_holding.insert(&disk.node_id);
                add_column(columns, Column { layout, index: index as u32, first_stripe: 0, reason });
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after.clone_from(last),
                _ => break,
            }
        }
    }
    plan.drained = draining_nodes.into_iter().filter(|n| !still_holding.contains(n)).map(str::to_string).collect();
    Ok(())
}

/// A usable disk that holds nothing of this data (not in the layout, no copy awaiting deletion),
/// on a node the layout does not use yet when there is one.
fn choose_target(
    store: &Store,
    disks: &[DiskView],
    layout: &DataLayout,
    rng: &mut impl Rng,
) -> Result<Option<ShardLocation>, MetadataError> {
    let used_nodes: BTreeSet<&str> = layout.shards.iter().map(|s| s.node_id.as_str()).collect();
    let mut fresh_node = Vec::new();
    let mut any = Vec::new();
    for disk in disks.iter().filter(|d| d.usable) {
        let in_layout = layout.shards.iter().any(|s| s.node_id == disk.node_id && s.disk_id == disk.disk_id);
        if in_layout || store.holds(&disk.node_id, &disk.disk_id, &layout.data_id)? {
            continue;
        }
        if used_nodes.contains(disk.node_id.as_str()) {
            any.push(disk);
        } else {
            fresh_node.push(disk);
        }
    }
    let pick = if fresh_node.is_empty() { any.choose(rng) } else { fresh_node.choose(rng) };
    Ok(pick.map(|d| ShardLocation { node_id: d.node_id.clone(), disk_id: d.disk_id.clone() }))
}

/// Applies a finished rebuild: when the owner's record still has the column at `source`, it now
/// points at `target` (the source copy goes to the collector after the read grace, since readers
/// may hold the old layout) and the column's damage reports are dropped. Otherwise the rebuilt
/// copy is garbage and goes to the collector, also after the read grace.
pub fn complete(
    store: &Store,
    batch: &mut WriteBatch,
    data_id: &[u8],
    index: u32,
    source: &ShardLocation,
    target: &ShardLocation,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let moved = source != target;
    let layout = store.owned_layout(data_id)?;
    let current = layout.as_ref().and_then(|(_, l)| l.shards.get(index as usize));
    if current != Some(source) {
        let still_used = layout.as_ref().is_some_and(|(_, l)| l.shards.iter().any(|s| s.disk_id == target.disk_id));
        if !still_used {
            // After the read grace, like any replaced copy: an in-place rewrite that lost a race
            // with a move wrote where readers of the older layout may still look.
            data::hold(store, batch, data_id, std::slice::from_ref(target))?;
            let record = GcRecord { data_id: data_id.to_vec(), shards: vec![target.clone()], ..Default::default() };
            data::put_gc(store, batch, &keys::gc(stamp.replaced_gc_unix_ms, data_id), record)?;
        }
        return Ok(Applied::Repaired(false));
    }
    if moved {
        let Some((owner, _)) = layout else {
            return Ok(Applied::Repaired(false));
        };
        relocate(store, batch, &owner, data_id, index, target)?;
        data::hold(store, batch, data_id, std::slice::from_ref(target))?;
        let record = GcRecord { data_id: data_id.to_vec(), shards: vec![source.clone()], ..Default::default() };
        data::put_gc(store, batch, &keys::gc(stamp.replaced_gc_unix_ms, data_id), record)?;
    }
    let damaged = store.cf(Cf::Damaged)?;
    for (key, report) in store.damaged_reports(&source.disk_id, data_id)? {
        if report.index == index {
            batch.delete_cf(damaged, key);
        }
    }
    Ok(Applied::Repaired(true))
}

/// Points shard `index` of `data_id` at `target` in the owner's record.
fn relocate(
    store: &Store,
    batch: &mut WriteBatch,
    owner: &coffer_proto::pb::metadata::DataOwner,
    data_id: &[u8],
    index: u32,
    target: &ShardLocation,
) -> Result<(), MetadataError> {
    let set = |layout: &mut DataLayout| -> bool {
        match layout.shards.get_mut(index as usize) {
            Some(slot) if layout.data_id == data_id => {
                *slot = target.clone();
                true
            }
            _ => false,
        }
    };
    if let Some(order) = owner.version_order {
        // A version of a versioned bucket: its entry in `versions`, and the copy in `objects` when
        // it is the current version.
        let Some(mut record) = store.find_version(&owner.bucket, &owner.key, order)? else {
            return Err(MetadataError::corrupt("version record", "owner of data that does not exist"));
        };
        if !record.segments.iter_mut().filter_map(|s| s.layout.as_mut()).any(set) {
            return Err(MetadataError::corrupt("version record", "owner of data that it does not reference"));
        }
        let value = record.encode_to_vec();
        batch.put_cf(store.cf(Cf::Versions)?, keys::version(&owner.bucket, &owner.key, order), &value);
        if store.find_object(&owner.bucket, &owner.key)?.is_some_and(|c| c.version_order == order) {
            batch.put_cf(store.cf(Cf::Objects)?, keys::object(&owner.bucket, &owner.key), &value);
        }
    } else if owner.upload_id.is_empty() {
        let mut record = store.object(&owner.bucket, &owner.key)?;
        if !record.segments.iter_mut().filter_map(|s| s.layout.as_mut()).any(set) {
            return Err(MetadataError::corrupt("object record", "owner of data that it does not reference"));
        }
        batch.put_cf(store.cf(Cf::Objects)?, keys::object(&owner.bucket, &owner.key), record.encode_to_vec());
    } else {
        let Some(mut part) = store.find_part(&owner.upload_id, owner.part_number)? else {
            return Err(MetadataError::corrupt("part record", "owner of data that does not exist"));
        };
        if !part.segment.as_mut().and_then(|s| s.layout.as_mut()).is_some_and(set) {
            return Err(MetadataError::corrupt("part record", "owner of data that it does not reference"));
        }
        batch.put_cf(store.cf(Cf::Parts)?, keys::part(&owner.upload_id, owner.part_number), part.encode_to_vec());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{DamagedShard, Segment};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::command::tests::{make_bucket, object, stamp, store};
    use crate::command::{Command, apply};

    fn loc(i: usize) -> ShardLocation {
        ShardLocation { node_id: format!("n{i}"), disk_id: format!("d{i}") }
    }

    fn view(i: usize, usable: bool, lost: bool, draining: bool) -> DiskView {
        DiskView { node_id: format!("n{i}"), disk_id: format!("d{i}"), usable, lost, draining }
    }

    /// Commits object `key` of 3 MiB (three 1 MiB stripes, 2+1) on disks 0, 1 and 2.
    fn put(store: &Store, key: &str, data_id: &[u8]) -> DataLayout {
        let shards = vec![loc(0), loc(1), loc(2)];
        let intent = keys::gc(i64::MAX / 2, data_id);
        let record = GcRecord { data_id: data_id.to_vec(), shards: shards.clone(), ..Default::default() };
        apply(store, Command::RecordIntent { intent: intent.clone(), record }).unwrap();
        let layout = DataLayout {
            data_id: data_id.to_vec(),
            data_shards: 2,
            parity_shards: 1,
            stripe_size: 1 << 20,
            size: 3 << 20,
            shards,
        };
        let segment = Segment { size: 3 << 20, layout: Some(layout.clone()), ..Default::default() };
        apply(
            store,
            Command::PutObject {
                record: object("b", key, segment),
                intents: vec![intent],
                condition: Default::default(),
                stamp: stamp(1),
            },
        )
        .unwrap();
        layout
    }

    fn plan_with(store: &Store, disks: &[DiskView]) -> Plan {
        let inputs = Inputs { disks, now_unix_ms: 10, unowned_report_ttl_ms: 1000, limit: 10 };
        plan(store, &inputs, |_, _| false, &mut StdRng::seed_from_u64(1)).unwrap()
    }

    fn complete_cmd(data_id: &[u8], task: &RepairTask) -> Command {
        Command::CompleteRepair {
            data_id: data_id.to_vec(),
            index: task.index,
            source: task.source.clone().unwrap(),
            target: task.target.clone().unwrap(),
            stamp: stamp(20),
        }
    }

    #[test]
    fn a_lost_disk_moves_its_columns_once_and_the_old_copy_is_collected_after_the_grace() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", b"data-1");
        assert!(store.holds("n1", "d1", b"data-1").unwrap());
        let disks = [
            view(0, true, false, false),
            view(1, false, true, false),
            view(2, true, false, false),
            view(3, true, false, false),
        ];

        let found = plan_with(&store, &disks);
        assert_eq!((found.degraded_columns, found.degraded_stripes, found.lost_disks), (1, 3, 1));
        let task = &found.tasks[0];
        assert_eq!((task.index, task.reason.as_str(), task.first_stripe), (1, "lost", 0));
        assert_eq!(task.target, Some(loc(3)), "the only usable disk the data does not use");

        assert_eq!(apply(&store, complete_cmd(b"data-1", task)).unwrap(), Applied::Repaired(true));
        let record = store.object("b", "k").unwrap();
        assert_eq!(record.segments[0].layout.as_ref().unwrap().shards, [loc(0), loc(3), loc(2)]);
        assert!(store.holds("n3", "d3", b"data-1").unwrap());
        let due = store.due_gc(20 + crate::command::tests::GRACE_MS, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.shards, [loc(1)], "the stale copy goes once readers of the old layout are done");
        assert!(store.due_gc(19 + crate::command::tests::GRACE_MS, 10).unwrap().is_empty());

        assert!(plan_with(&store, &disks).tasks.is_empty(), "nothing references the lost disk any more");
        // A second worker finishing the same column late changes nothing but collects its copy.
        let late = RepairTask { target: Some(loc(4)), ..task.clone() };
        assert_eq!(apply(&store, complete_cmd(b"data-1", &late)).unwrap(), Applied::Repaired(false));
        assert_eq!(store.object("b", "k").unwrap().segments[0].layout.as_ref().unwrap().shards[1], loc(3));
        let due = store.due_gc(20 + crate::command::tests::GRACE_MS, 10).unwrap();
        assert!(due.iter().any(|(_, r)| r.shards.contains(&loc(4))), "{due:?}");
    }

    #[test]
    fn unwritten_shards_on_a_healthy_disk_are_rewritten_in_place_from_their_first_stripe() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", b"data-2");
        let report = DamagedShard {
            node_id: "n2".into(),
            disk_id: "d2".into(),
            data_id: b"data-2".to_vec(),
            stripe: 1,
            index: 2,
            reason: "unwritten".into(),
            reported_unix_ms: 5,
            ..Default::default()
        };
        apply(&store, Command::ReportDamaged { shards: vec![report.clone()] }).unwrap();
        let disks = [view(0, true, false, false), view(1, true, false, false), view(2, true, false, false)];
        let found = plan_with(&store, &disks);
        assert_eq!(found.tasks.len(), 1);
        let task = &found.tasks[0];
        assert_eq!((task.index, task.first_stripe, task.target.clone()), (2, 1, Some(loc(2))));
        assert_eq!(found.degraded_stripes, 2);

        // While the disk's node is down (not lost yet), nothing is handed out.
        let waiting = [view(0, true, false, false), view(1, true, false, false), view(2, false, false, false)];
        assert!(plan_with(&store, &waiting).tasks.is_empty());

        assert_eq!(apply(&store, complete_cmd(b"data-2", task)).unwrap(), Applied::Repaired(true));
        assert!(store.damaged_shards(10).unwrap().is_empty(), "the report is resolved");
        assert!(store.due_gc(i64::MAX - 1, 10).unwrap().is_empty(), "nothing to collect after an in-place rewrite");

        // A report about data nobody owns waits for the upload to commit, then is dropped.
        let orphan = DamagedShard { data_id: b"never-committed".to_vec(), ..report };
        apply(&store, Command::ReportDamaged { shards: vec![orphan] }).unwrap();
        assert!(plan_with(&store, &disks).stale_reports.is_empty());
        let inputs = Inputs { disks: &disks, now_unix_ms: 5_000, unowned_report_ttl_ms: 1000, limit: 10 };
        let later = plan(&store, &inputs, |_, _| false, &mut StdRng::seed_from_u64(1)).unwrap();
        assert_eq!(later.stale_reports.len(), 1);
    }

    #[test]
    fn a_draining_node_is_emptied_then_reported_drained() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", b"data-3");
        let disks = [
            view(0, true, false, false),
            view(1, true, false, false),
            view(2, false, false, true),
            view(3, true, false, false),
        ];
        let found = plan_with(&store, &disks);
        assert!(found.drained.is_empty());
        assert_eq!(found.tasks.len(), 1);
        assert_eq!(found.tasks[0].reason, "draining");
        // What a range group answers group 0 (`GetNodeReferences`) about the draining node.
        assert_eq!(store.referenced_columns("n2", 1).unwrap(), 1);
        apply(&store, complete_cmd(b"data-3", &found.tasks[0])).unwrap();
        let after = plan_with(&store, &disks);
        assert!(after.tasks.is_empty());
        assert_eq!(after.drained, ["n2"]);
        // No layout names the node any more (a copy awaiting collection does not count).
        assert_eq!(store.referenced_columns("n2", 1).unwrap(), 0);

        // With no disk to move to, the column is blocked, not handed out.
        put(&store, "k2", b"data-4");
        let short = [view(0, true, false, false), view(1, true, false, false), view(2, false, true, false)];
        let blocked = plan_with(&store, &short);
        assert_eq!((blocked.tasks.len(), blocked.blocked_columns), (0, 1));
        // Counting stops at the limit.
        assert_eq!(store.referenced_columns("n0", 1).unwrap(), 1);
        assert_eq!(store.referenced_columns("n0", 10).unwrap(), 2);
    }

    #[test]
    fn deleting_the_object_releases_ownership_and_holdings_once_collected() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "k", b"data-5");
        assert!(store.owner(b"data-5").unwrap().is_some());
        apply(&store, Command::DeleteObject { bucket: "b".into(), key: "k".into(), stamp: stamp(30) }).unwrap();
        assert!(store.owner(b"data-5").unwrap().is_none());
        let due = store.due_gc(i64::MAX - 1, 10).unwrap();
        apply(&store, Command::FinishGc { done: vec![due[0].0.clone()], retry: vec![] }).unwrap();
        for i in 0..3 {
            assert!(!store.holds(&format!("n{i}"), &format!("d{i}"), b"data-5").unwrap());
        }
    }
}
