//! The run's counters, the mismatches found, and the summary they add up to (one line, or JSON).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Mismatch details kept (the count goes on).
const KEEP_MISMATCHES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    Delete,
    Multipart,
    List,
    Head,
}

impl Op {
    pub const ALL: [Op; 6] = [Op::Put, Op::Get, Op::Delete, Op::Multipart, Op::List, Op::Head];

    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Delete => "delete",
            Op::Multipart => "multipart",
            Op::List => "list",
            Op::Head => "head",
        }
    }
}

/// One check that failed.
#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub key: String,
    /// Which check: `GET`, `HEAD`, `LIST`, `final GET`, `final LIST`, …
    pub check: String,
    /// Seconds into the run.
    pub at: f64,
    pub detail: String,
}

/// Locks a mutex, taking the data of a poisoned one (a panicking worker fails the run anyway).
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
pub struct Tally {
    acked: [AtomicU64; 6],
    unavailable: [AtomicU64; 6],
    unavailable_codes: Mutex<BTreeMap<String, u64>>,
    /// Writes that ended without an acknowledgement.
    pub unacked_writes: AtomicU64,
    pub bytes_written: AtomicU64,
    pub bytes_verified: AtomicU64,
    kills: Mutex<BTreeMap<&'static str, u64>>,
    unexpected_exits: Mutex<Vec<String>>,
    mismatch_count: AtomicU64,
    mismatches: Mutex<Vec<Mismatch>>,
}

fn index(op: Op) -> usize {
    Op::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

impl Tally {
    pub fn acked(&self, op: Op) {
        self.acked[index(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn unavailable(&self, op: Op, code: &str) {
        self.unavailable[index(op)].fetch_add(1, Ordering::Relaxed);
        *lock(&self.unavailable_codes).entry(code.to_string()).or_default() += 1;
    }

    pub fn kill(&self, role: &'static str) {
        *lock(&self.kills).entry(role).or_default() += 1;
    }

    pub fn unexpected_exit(&self, what: String) {
        lock(&self.unexpected_exits).push(what);
    }

    pub fn mismatch(&self, mismatch: Mismatch) {
        eprintln!("MISMATCH {} {} at {:.1}s: {}", mismatch.check, mismatch.key, mismatch.at, mismatch.detail);
        self.mismatch_count.fetch_add(1, Ordering::Relaxed);
        let mut kept = lock(&self.mismatches);
        if kept.len() < KEEP_MISMATCHES {
            kept.push(mismatch);
        }
    }

    pub fn mismatch_count(&self) -> u64 {
        self.mismatch_count.load(Ordering::Relaxed)
    }

    pub fn total_acked(&self) -> u64 {
        self.acked.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    pub fn total_unavailable(&self) -> u64 {
        self.unavailable.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    pub fn total_kills(&self) -> u64 {
        lock(&self.kills).values().sum()
    }

    /// The figures so far.
    pub fn summary(&self) -> Summary {
        let by_op = |counters: &[AtomicU64; 6]| -> BTreeMap<&'static str, u64> {
            Op::ALL.iter().map(|op| (op.name(), counters[index(*op)].load(Ordering::Relaxed))).collect()
        };
        let kills = lock(&self.kills);
        Summary {
            ops_acknowledged: self.total_acked(),
            acknowledged: by_op(&self.acked),
            kills: kills.values().sum(),
            kills_by_role: KillCounts {
                gateway: kills.get("gateway").copied().unwrap_or(0),
                metadata: kills.get("metadata").copied().unwrap_or(0),
                blobnode: kills.get("blobnode").copied().unwrap_or(0),
                repair: kills.get("repair").copied().unwrap_or(0),
            },
            mismatches: self.mismatch_count(),
            unavailable: self.total_unavailable(),
            unavailable_by_op: by_op(&self.unavailable),
            unavailable_by_code: lock(&self.unavailable_codes).clone(),
            unacked_writes: self.unacked_writes.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            bytes_verified: self.bytes_verified.load(Ordering::Relaxed),
            unexpected_exits: lock(&self.unexpected_exits).clone(),
            mismatch_details: lock(&self.mismatches).clone(),
            ..Summary::default()
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct KillCounts {
    pub gateway: u64,
    pub metadata: u64,
    pub blobnode: u64,
    pub repair: u64,
}

/// Everything the run measured, as printed and as written by `--json`.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub tool: &'static str,
    pub seed: u64,
    pub duration_s: f64,
    pub blobnodes: usize,
    /// Metadata services: 1, or the replicas of a Raft group (their kills all count under `metadata`).
    pub metadata_replicas: usize,
    pub ec: String,
    pub concurrency: usize,
    pub keys: usize,
    pub kill_every_s: f64,
    pub ops_acknowledged: u64,
    pub acknowledged: BTreeMap<&'static str, u64>,
    pub kills: u64,
    pub kills_by_role: KillCounts,
    pub mismatches: u64,
    pub unavailable: u64,
    pub unavailable_by_op: BTreeMap<&'static str, u64>,
    pub unavailable_by_code: BTreeMap<String, u64>,
    /// Writes that ended without an acknowledgement (each may or may not have taken effect).
    pub unacked_writes: u64,
    /// Keys whose final read settled unacknowledged writes: none took effect / one did.
    pub resolved_none_took_effect: u64,
    pub resolved_took_effect: u64,
    /// Keys present at the end.
    pub final_present: u64,
    /// Whether the re-check after killing every service at once ran.
    pub full_restart_checked: bool,
    pub bytes_written: u64,
    pub bytes_verified: u64,
    pub unexpected_exits: Vec<String>,
    pub mismatch_details: Vec<Mismatch>,
    /// The work dir, when it was kept.
    pub dir: Option<String>,
}

impl Summary {
    /// `crash: 4123 ops acknowledged (1200 put, …), 23 kills (gateway 7, …), 0 mismatches, 312 unavailable, 120 s,
    /// 3 metadata replicas, seed 42`.
    pub fn line(&self) -> String {
        let ops: Vec<String> = Op::ALL
            .iter()
            .map(|op| format!("{} {}", self.acknowledged.get(op.name()).copied().unwrap_or(0), op.name()))
            .collect();
        let k = self.kills_by_role;
        format!(
            "crash: {} ops acknowledged ({}), {} kills (gateway {}, metadata {}, blobnode {}, repair {}), {} mismatches, \
             {} unavailable, {:.0} s, {} metadata {}, seed {}",
            self.ops_acknowledged,
            ops.join(", "),
            self.kills,
            k.gateway,
            k.metadata,
            k.blobnode,
            k.repair,
            self.mismatches,
            self.unavailable,
            self.duration_s,
            self.metadata_replicas,
            if self.metadata_replicas == 1 { "replica" } else { "replicas" },
            self.seed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_has_every_figure() {
        let tally = Tally::default();
        tally.acked(Op::Put);
        tally.acked(Op::Put);
        tally.acked(Op::Get);
        tally.unavailable(Op::Get, "Connection");
        tally.kill("metadata");
        let mut summary = tally.summary();
        summary.seed = 42;
        summary.duration_s = 120.2;
        summary.metadata_replicas = 1;
        assert_eq!(
            summary.line(),
            "crash: 3 ops acknowledged (2 put, 1 get, 0 delete, 0 multipart, 0 list, 0 head), 1 kills \
             (gateway 0, metadata 1, blobnode 0, repair 0), 0 mismatches, 1 unavailable, 120 s, 1 metadata replica, \
             seed 42"
        );
        summary.metadata_replicas = 3;
        assert!(summary.line().ends_with(", 120 s, 3 metadata replicas, seed 42"), "{}", summary.line());
        assert_eq!(summary.unavailable_by_code.get("Connection"), Some(&1));
    }
}
