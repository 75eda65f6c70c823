//! The check at the end, once nothing is killed and nothing is in flight: every key of the key space is read (a
//! failed read is retried with backoff before it counts as a mismatch: a 503 right after a restart is not data loss)
//! and must be in one of its allowed states, which then becomes its only state (the journal is resolved); then the
//! whole bucket is listed and must hold exactly the keys that are present.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use super::journal::{Observed, Resolution};
use super::tally::lock;
use super::workload::{Ctx, list_all, observe};
use crate::s3::{Fetched, OpError, S3Conn};

/// Attempts per read or listing before a failure counts (backoff 0.25 s doubling: ~16 s in all).
const ATTEMPTS: u32 = 7;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Keys per page of the final listing (several pages, so pagination is checked too).
const PAGE: u32 = 64;

/// What the final check found, besides the mismatches it recorded.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    pub present: u64,
    pub none_took_effect: u64,
    pub took_effect: u64,
}

/// Waits between attempts: `wait` sleeps and says whether another attempt is due.
struct Backoff {
    attempts: u32,
    delay: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { attempts: 1, delay: FIRST_BACKOFF }
    }

    async fn wait(&mut self) -> bool {
        if self.attempts >= ATTEMPTS {
            return false;
        }
        tokio::time::sleep(self.delay).await;
        self.delay *= 2;
        self.attempts += 1;
        true
    }
}

async fn get_with_retries(ctx: &Ctx, conn: &mut S3Conn, key: &str) -> Result<Option<Fetched>, OpError> {
    let mut backoff = Backoff::new();
    loop {
        match conn.get_object_full(&ctx.bucket, key).await {
            Ok(fetched) => return Ok(fetched),
            Err(e) if !backoff.wait().await => return Err(e),
            Err(_) => {}
        }
    }
}

async fn list_with_retries(ctx: &Ctx, conn: &mut S3Conn) -> Result<Vec<String>, OpError> {
    let mut backoff = Backoff::new();
    loop {
        match list_all(ctx, conn, "", PAGE).await {
            Ok(keys) => return Ok(keys),
            Err(e) if !backoff.wait().await => return Err(e),
            Err(_) => {}
        }
    }
}

/// Reads key `i` (with retries) and resolves its journal; returns how it resolved, or `None` after a mismatch.
async fn check_key(ctx: &Ctx, conn: &mut S3Conn, i: usize, phase: &str) -> Option<Resolution> {
    let slot = &ctx.slots[i];
    let check = format!("{phase} GET");
    let seen = match get_with_retries(ctx, conn, &slot.name).await {
        Ok(fetched) => observe(fetched),
        Err(e) => {
            let detail = {
                let journal = lock(&slot.journal);
                format!("unreadable after {ATTEMPTS} attempts ({e}); {}", journal.describe())
            };
            ctx.mismatch(&slot.name, &check, detail);
            return None;
        }
    };
    if !ctx.check_read(i, &check, &seen) {
        return None;
    }
    if let Observed::Present { len, .. } = seen {
        ctx.tally.bytes_verified.fetch_add(len, Ordering::Relaxed);
    }
    lock(&slot.journal).resolve(&seen).ok()
}

/// Reads every key and lists the bucket; `phase` names the checks in mismatches ("final", "after full restart").
pub async fn check_all(ctx: &Arc<Ctx>, phase: &str, concurrency: usize) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    let mut readers = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (ctx, next, phase) = (ctx.clone(), next.clone(), phase.to_string());
        readers.spawn(async move {
            let mut conn = S3Conn::new(ctx.cfg.clone());
            let mut outcome = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ctx.slots.len() {
                    return outcome;
                }
                match check_key(&ctx, &mut conn, i, &phase).await {
                    Some(Resolution::NoneTookEffect) => outcome.none_took_effect += 1,
                    Some(Resolution::TookEffect(_)) => outcome.took_effect += 1,
                    Some(Resolution::Certain) | None => {}
                }
            }
        });
    }
    let mut outcome = Outcome::default();
    while let Some(joined) = readers.join_next().await {
        match joined {
            Ok(part) => {
                outcome.none_took_effect += part.none_took_effect;
                outcome.took_effect += part.took_effect;
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    outcome.present = ctx.slots.iter().filter(|s| lock(&s.journal).may_be_present()).count() as u64;

    let check = format!("{phase} LIST");
    let mut conn = S3Conn::new(ctx.cfg.clone());
    let listed = match list_with_retries(ctx, &mut conn).await {
        Ok(keys) => keys,
        Err(e) => {
            ctx.mismatch("(bucket)", &check, format!("the bucket cannot be listed after {ATTEMPTS} attempts: {e}"));
            return outcome;
        }
    };
    let mut seen = HashSet::new();
    for key in &listed {
        if !seen.insert(key.as_str()) {
            ctx.mismatch(key, &check, "listed twice".into());
        }
        if ctx.slot_of(key).is_none() {
            ctx.mismatch(key, &check, "a key the harness never wrote is listed".into());
        }
    }
    for slot in &ctx.slots {
        let journal = lock(&slot.journal);
        let listed = seen.contains(slot.name.as_str());
        let problem = if listed && !journal.may_be_present() {
            "listed, but a GET found no such key: a listing entry without data"
        } else if !listed && !journal.may_be_absent() {
            "present, but missing from the listing"
        } else {
            continue;
        };
        let detail = format!("{problem}; {}", journal.describe());
        drop(journal);
        ctx.mismatch(&slot.name, &check, detail);
    }
    outcome
}
