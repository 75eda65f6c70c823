//! Keeping background work (scrubbing, compaction) under a rate of bytes per second, by sleeping, so an idle
//! node spends no more than that rate on it.

use std::time::{Duration, Instant};

/// Sleeps for whatever remains of the time `bytes` may take at `bytes_per_s`, counted from `started`, when the
/// work itself took less. A rate of 0 means unpaced.
pub async fn pace(started: Instant, bytes: u64, bytes_per_s: u64) {
    if bytes_per_s == 0 {
        return;
    }
    let allowed = Duration::from_secs_f64(bytes as f64 / bytes_per_s as f64);
    if let Some(rest) = allowed.checked_sub(started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_the_rest_of_the_allowed_time_only() {
        let started = Instant::now();
        pace(started, 100_000, 1_000_000).await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        let started = Instant::now();
        pace(started, u64::MAX, 0).await;
        pace(started - Duration::from_secs(1), 1000, 1_000_000).await;
        assert!(started.elapsed() < Duration::from_millis(100), "unpaced, or already late: no sleep");
    }
}
