//! The bound on memory held by shard buffers in flight: every put and every read window holds a permit for its
//! bytes, so N concurrent clients cannot make the node allocate N × 60 MiB.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::BlobnodeError;

/// Permits count 4 KiB pages, so a u32 permit count covers any buffer and the semaphore any sane budget.
const PAGE_BYTES: u64 = 4096;

#[derive(Clone)]
pub struct IoBudget {
    semaphore: Arc<Semaphore>,
    total_pages: u32,
}

/// Bytes reserved from an [`IoBudget`], returned on drop.
#[derive(Debug)]
pub struct IoPermit {
    _permit: OwnedSemaphorePermit,
}

impl IoBudget {
    pub fn new(total_bytes: u64) -> Self {
        let max_pages = (Semaphore::MAX_PERMITS as u64).min(u32::MAX.into());
        let total_pages = total_bytes.div_ceil(PAGE_BYTES).clamp(1, max_pages) as u32;
        IoBudget { semaphore: Arc::new(Semaphore::new(total_pages as usize)), total_pages }
    }

    /// Waits until `bytes` are free. A request larger than the whole budget waits for all of it and so runs alone,
    /// rather than never.
    pub async fn acquire(&self, bytes: u64) -> Result<IoPermit, BlobnodeError> {
        let pages = bytes.div_ceil(PAGE_BYTES).min(self.total_pages.into()) as u32;
        let permit = Arc::clone(&self.semaphore)
            .acquire_many_owned(pages)
            .await
            .map_err(|_| BlobnodeError::Internal("I/O budget closed".into()))?;
        Ok(IoPermit { _permit: permit })
    }

    #[cfg(test)]
    pub fn available_bytes(&self) -> u64 {
        self.semaphore.available_permits() as u64 * PAGE_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bounds_bytes_in_flight() {
        let budget = IoBudget::new(1 << 20);
        let a = budget.acquire(600 * 1024).await.expect("first");
        assert_eq!(budget.available_bytes(), (1 << 20) - 600 * 1024);
        let waiting = tokio::time::timeout(Duration::from_millis(50), budget.acquire(600 * 1024)).await;
        assert!(waiting.is_err(), "second reservation should wait");
        drop(a);
        let _b = budget.acquire(600 * 1024).await.expect("after release");
        // Larger than the whole budget: waits for everything instead of deadlocking forever.
        drop(_b);
        let _all = budget.acquire(10 << 20).await.expect("oversized");
        assert_eq!(budget.available_bytes(), 0);
    }
}
