//! A shared byte-rate limit: every rebuilt shard reserves its share of time before it is written,
//! so all of a worker's concurrent rebuilds together stay under `--repair-rate`.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub struct Pacer {
    bytes_per_s: u64,
    /// When the next reservation may start. Never behind `now` by more than zero: idle time earns
    /// no credit, so a burst after a quiet spell is still paced.
    next: Mutex<Instant>,
}

impl Pacer {
    pub fn new(bytes_per_s: u64) -> Pacer {
        Pacer { bytes_per_s, next: Mutex::new(Instant::now()) }
    }

    /// How long the caller must wait before moving `bytes`; reserves them.
    pub fn reserve(&self, bytes: u64, now: Instant) -> Duration {
        if self.bytes_per_s == 0 {
            return Duration::ZERO;
        }
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_s as f64);
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let start = (*next).max(now);
        *next = start + cost;
        start - now
    }

    pub async fn take(&self, bytes: u64) {
        let wait = self.reserve(bytes, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_queue_up_at_the_rate_and_idle_time_earns_nothing() {
        let pacer = Pacer::new(1000);
        let now = Instant::now();
        assert_eq!(pacer.reserve(500, now), Duration::ZERO);
        assert_eq!(pacer.reserve(500, now), Duration::from_millis(500));
        assert_eq!(pacer.reserve(1, now + Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(Pacer::new(0).reserve(u64::MAX, now), Duration::ZERO);
    }
}
