//! Which repair columns are leased to which worker, and what repair has achieved since start.
//! In memory only: after a restart every lease is gone and the work is found again; a column
//! rebuilt twice is harmless because a commit only applies while the record still points at the
//! source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most leases held at once; claims beyond this get no work until leases end.
pub const MAX_LEASES: usize = 100_000;

type Column = (Vec<u8>, u32);

#[derive(Default)]
pub struct Leases {
    held: Mutex<HashMap<Column, (String, Instant)>>,
    pub columns_repaired: AtomicU64,
    pub bytes_repaired: AtomicU64,
}

impl Leases {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Column, (String, Instant)>> {
        // A plain map with no invariant a panicking holder could break halfway.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The columns leased now (expired leases are dropped first).
    pub fn snapshot(&self, now: Instant) -> std::collections::HashSet<Column> {
        let mut held = self.held();
        held.retain(|_, (_, until)| *until > now);
        held.keys().cloned().collect()
    }

    pub fn room(&self) -> usize {
        MAX_LEASES.saturating_sub(self.held().len())
    }

    pub fn grant(&self, worker: &str, columns: impl IntoIterator<Item = Column>, until: Instant) {
        let mut held = self.held();
        for column in columns {
            held.insert(column, (worker.to_string(), until));
        }
    }

    pub fn release(&self, data_id: &[u8], index: u32) {
        self.held().remove(&(data_id.to_vec(), index));
    }

    pub fn count(&self, now: Instant) -> usize {
        self.held().values().filter(|(_, until)| *until > now).count()
    }

    pub fn record(&self, bytes: u64) {
        self.columns_repaired.fetch_add(1, Ordering::Relaxed);
        self.bytes_repaired.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A lease length within sane bounds: a worker must finish a column well within it.
pub fn lease_length(requested_ms: u64) -> Duration {
    match requested_ms {
        0 => Duration::from_secs(300),
        ms => Duration::from_millis(ms).clamp(Duration::from_secs(1), Duration::from_secs(3600)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_and_release() {
        let leases = Leases::default();
        let now = Instant::now();
        leases.grant("w", [(vec![1], 0), (vec![2], 1)], now + Duration::from_secs(5));
        assert_eq!(leases.snapshot(now).len(), 2);
        leases.release(&[1], 0);
        assert_eq!(leases.count(now), 1);
        assert!(leases.snapshot(now + Duration::from_secs(6)).is_empty());
        assert_eq!(lease_length(0), Duration::from_secs(300));
        assert_eq!(lease_length(10), Duration::from_secs(1));
    }
}
