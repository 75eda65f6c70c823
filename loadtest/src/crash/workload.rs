//! The mixed workload: `--concurrency` workers over a bounded key space (so overwrites happen), one operation per
//! key at a time (a per-key lock), every write journaled before it is sent and settled when it ends, every read
//! checked against the journal as it comes back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::content::{Version, mix64, write_seed};
use super::journal::{KeyJournal, Observed, State, WriteKind};
use super::tally::{Mismatch, Op, Tally, lock};
use crate::s3::{Fetched, OpError, OpResult, S3Conn, TargetConfig};

/// Objects up to this size live inside the metadata record (the gateway's default `--inline-threshold`).
pub const INLINE_MAX: usize = 128 << 10;
/// Largest plain PUT (striped).
pub const PUT_MAX: usize = 3 << 20;
/// The first part of a multipart upload (S3's minimum for all parts but the last).
pub const PART_SIZE: usize = 5 << 20;
/// Largest last part of a multipart upload (inline or striped).
pub const LAST_PART_MAX: usize = 256 << 10;

/// Operation weights (percent).
const WEIGHTS: [(Op, u32); 6] =
    [(Op::Put, 35), (Op::Get, 35), (Op::Delete, 10), (Op::Multipart, 5), (Op::List, 10), (Op::Head, 5)];

/// One key of the key space.
pub struct Slot {
    pub name: String,
    /// Held for the whole of an operation on the key.
    pub lock: tokio::sync::Mutex<()>,
    pub journal: Mutex<KeyJournal>,
}

/// What the workers, the final check and the summary share.
pub struct Ctx {
    pub cfg: Arc<TargetConfig>,
    pub bucket: String,
    pub slots: Vec<Slot>,
    index: HashMap<String, usize>,
    pub tally: Tally,
    pub seed: u64,
    writes: AtomicU64,
    pub start: Instant,
    pub stop: AtomicBool,
}

impl Ctx {
    pub fn new(cfg: Arc<TargetConfig>, bucket: &str, keys: usize, seed: u64) -> Ctx {
        let width = keys.saturating_sub(1).to_string().len().max(4);
        let slots: Vec<Slot> = (0..keys)
            .map(|i| Slot {
                name: format!("k{i:0width$}"),
                lock: tokio::sync::Mutex::new(()),
                journal: Mutex::new(KeyJournal::new()),
            })
            .collect();
        let index = slots.iter().enumerate().map(|(i, s)| (s.name.clone(), i)).collect();
        Ctx {
            cfg,
            bucket: bucket.to_string(),
            slots,
            index,
            tally: Tally::default(),
            seed,
            writes: AtomicU64::new(0),
            start: Instant::now(),
            stop: AtomicBool::new(false),
        }
    }

    /// Seconds since the start.
    pub fn at(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// A new write: its run-wide number and content seed.
    fn next_write(&self) -> (u64, u64) {
        let id = self.writes.fetch_add(1, Ordering::Relaxed) + 1;
        (id, write_seed(self.seed, id))
    }

    pub fn mismatch(&self, key: &str, check: &str, detail: String) {
        self.tally.mismatch(Mismatch { key: key.to_string(), check: check.to_string(), at: self.at(), detail });
    }

    /// Checks what a read of key `i` saw against its journal; a mismatch is recorded (with where the bytes came
    /// from, when they belong to another key) and returned.
    pub fn check_read(&self, i: usize, check: &str, seen: &Observed) -> bool {
        let slot = &self.slots[i];
        let verdict = lock(&slot.journal).check(seen);
        match verdict {
            Ok(()) => true,
            Err(mut detail) => {
                if let Observed::Present { len, md5: Some(md5), .. } = seen
                    && !detail.contains("older write")
                    && !detail.contains("ETag")
                {
                    for (j, other) in self.slots.iter().enumerate() {
                        if j == i {
                            continue;
                        }
                        if let Some(w) = lock(&other.journal).find_write(*len, md5) {
                            detail.push_str(&format!("; the bytes are those of write {w} to key {}", other.name));
                            break;
                        }
                    }
                }
                self.mismatch(&slot.name, check, detail);
                false
            }
        }
    }
}

/// What a GET saw.
pub fn observe(fetched: Option<Fetched>) -> Observed {
    match fetched {
        None => Observed::Absent,
        Some(f) => {
            Observed::Present { len: f.body.len() as u64, md5: Some(hex::encode(Md5::digest(&f.body))), etag: f.etag }
        }
    }
}

fn pick_op(rng: &mut SmallRng) -> Op {
    let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    for (op, weight) in WEIGHTS {
        if x < weight {
            return op;
        }
        x -= weight;
    }
    Op::Get
}

/// A PUT size: a tenth tiny (≤ 1 KiB, empty included), four tenths inline, half striped.
fn put_size(rng: &mut SmallRng) -> usize {
    match rng.random_range(0..10) {
        0 => rng.random_range(0..=1024),
        1..=4 => rng.random_range(1025..=INLINE_MAX),
        _ => rng.random_range(INLINE_MAX + 1..=PUT_MAX),
    }
}

/// A worker pauses this long after an operation found the service unavailable, rather than spinning on it.
const PAUSE_AFTER_UNAVAILABLE: Duration = Duration::from_millis(100);

/// One worker, until `ctx.stop`.
pub async fn worker(ctx: Arc<Ctx>, index: usize) {
    let mut rng = SmallRng::seed_from_u64(mix64(ctx.seed ^ mix64(0xC0FF_EE00 + index as u64)));
    let mut conn = S3Conn::new(ctx.cfg.clone());
    while !ctx.stop.load(Ordering::Relaxed) {
        let i = rng.random_range(0..ctx.slots.len());
        let answered = match pick_op(&mut rng) {
            Op::Put => {
                let len = put_size(&mut rng);
                put(&ctx, &mut conn, i, len).await
            }
            Op::Get => get(&ctx, &mut conn, i).await,
            Op::Delete => delete(&ctx, &mut conn, i).await,
            Op::Multipart => {
                let last = rng.random_range(1..=LAST_PART_MAX);
                multipart(&ctx, &mut conn, i, last).await
            }
            Op::List => {
                let name = &ctx.slots[i].name;
                let prefix = name[..rng.random_range(0..=name.len())].to_string();
                let max_keys = if rng.random_bool(0.3) { 50 } else { 1000 };
                list(&ctx, &mut conn, &prefix, max_keys).await
            }
            Op::Head => head(&ctx, &mut conn, i).await,
        };
        if !answered {
            tokio::time::sleep(PAUSE_AFTER_UNAVAILABLE).await;
        }
    }
}

/// Settles write `id` on key `i` in the journal and the counters; false when it was not acknowledged.
fn finish_write(ctx: &Ctx, i: usize, id: u64, op: Op, bytes: usize, result: OpResult<()>) -> bool {
    let code = result.as_ref().err().map(|e| e.code.to_string());
    lock(&ctx.slots[i].journal).finish(id, code.clone().map_or(Ok(()), Err));
    match code {
        None => {
            ctx.tally.acked(op);
            ctx.tally.bytes_written.fetch_add(bytes as u64, Ordering::Relaxed);
            true
        }
        Some(code) => {
            ctx.tally.unavailable(op, &code);
            ctx.tally.unacked_writes.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// Counts an operation the service did not answer; false.
fn unavailable(ctx: &Ctx, op: Op, error: &OpError) -> bool {
    ctx.tally.unavailable(op, &error.code);
    false
}

/// The operations return false when the service did not answer (the worker then pauses briefly).
async fn put(ctx: &Ctx, conn: &mut S3Conn, i: usize, len: usize) -> bool {
    let slot = &ctx.slots[i];
    let _key = slot.lock.lock().await;
    let (id, seed) = ctx.next_write();
    let (version, body) = Version::put(seed, len);
    lock(&slot.journal).begin(id, WriteKind::Put, State::Present(version), ctx.at());
    let result = conn.put_object(&ctx.bucket, &slot.name, body).await;
    finish_write(ctx, i, id, Op::Put, len, result)
}

async fn delete(ctx: &Ctx, conn: &mut S3Conn, i: usize) -> bool {
    let slot = &ctx.slots[i];
    let _key = slot.lock.lock().await;
    let (id, _) = ctx.next_write();
    lock(&slot.journal).begin(id, WriteKind::Delete, State::Absent, ctx.at());
    let result = conn.delete_object(&ctx.bucket, &slot.name).await;
    finish_write(ctx, i, id, Op::Delete, 0, result)
}

async fn multipart(ctx: &Ctx, conn: &mut S3Conn, i: usize, last_part: usize) -> bool {
    let slot = &ctx.slots[i];
    let _key = slot.lock.lock().await;
    let (id, seed) = ctx.next_write();
    let (version, parts) = Version::multipart(seed, &[PART_SIZE, last_part]);
    let len = version.len as usize;
    // Nothing before CompleteMultipartUpload can change what the key holds.
    let upload = match conn.create_multipart(&ctx.bucket, &slot.name).await {
        Ok(upload) => upload,
        Err(e) => return unavailable(ctx, Op::Multipart, &e),
    };
    let mut etags = Vec::with_capacity(parts.len());
    for (n, part) in parts.into_iter().enumerate() {
        let number = n as u32 + 1;
        match conn.upload_part(&ctx.bucket, &slot.name, &upload, number, part).await {
            Ok(etag) => etags.push((number, etag)),
            Err(e) => {
                let _ = conn.abort_multipart(&ctx.bucket, &slot.name, &upload).await;
                return unavailable(ctx, Op::Multipart, &e);
            }
        }
    }
    lock(&slot.journal).begin(id, WriteKind::Multipart, State::Present(version), ctx.at());
    let result = conn.complete_multipart(&ctx.bucket, &slot.name, &upload, &etags).await;
    if result.is_err() {
        // Best effort: the upload may have completed after all, then there is nothing left to abort.
        let _ = conn.abort_multipart(&ctx.bucket, &slot.name, &upload).await;
    }
    finish_write(ctx, i, id, Op::Multipart, len, result)
}

async fn get(ctx: &Ctx, conn: &mut S3Conn, i: usize) -> bool {
    let slot = &ctx.slots[i];
    let _key = slot.lock.lock().await;
    match conn.get_object_full(&ctx.bucket, &slot.name).await {
        Ok(fetched) => {
            let seen = observe(fetched);
            if ctx.check_read(i, "GET", &seen) {
                ctx.tally.acked(Op::Get);
                if let Observed::Present { len, .. } = seen {
                    ctx.tally.bytes_verified.fetch_add(len, Ordering::Relaxed);
                }
            }
            true
        }
        Err(e) => unavailable(ctx, Op::Get, &e),
    }
}

async fn head(ctx: &Ctx, conn: &mut S3Conn, i: usize) -> bool {
    let slot = &ctx.slots[i];
    let _key = slot.lock.lock().await;
    match conn.head_object_meta(&ctx.bucket, &slot.name).await {
        Ok(answer) => {
            let seen = match answer {
                None => Observed::Absent,
                Some((len, etag)) => Observed::Present { len, md5: None, etag },
            };
            if ctx.check_read(i, "HEAD", &seen) {
                ctx.tally.acked(Op::Head);
            }
            true
        }
        Err(e) => unavailable(ctx, Op::Head, &e),
    }
}

/// Lists every key under `prefix`, page by page.
pub async fn list_all(ctx: &Ctx, conn: &mut S3Conn, prefix: &str, max_keys: u32) -> Result<Vec<String>, OpError> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = conn.list_page(&ctx.bucket, prefix, token.as_deref(), max_keys).await?;
        keys.extend(page.keys);
        token = page.next_token;
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// Checks a listing of `prefix` against the journal: a key that stood still while the listing ran must be listed
/// when it may not be absent, and must not be listed when it may not be present; nothing outside the key space may
/// be listed.
async fn list(ctx: &Ctx, conn: &mut S3Conn, prefix: &str, max_keys: u32) -> bool {
    let before: Vec<(usize, u64, bool, bool)> = ctx
        .slots
        .iter()
        .enumerate()
        .filter(|(_, slot)| slot.name.starts_with(prefix))
        .map(|(i, slot)| {
            let journal = lock(&slot.journal);
            (i, journal.version(), journal.may_be_present(), journal.may_be_absent())
        })
        .collect();
    let listed = match list_all(ctx, conn, prefix, max_keys).await {
        Ok(keys) => keys,
        Err(e) => return unavailable(ctx, Op::List, &e),
    };
    let check = format!("LIST prefix {prefix:?} max-keys {max_keys}");
    let mut ok = true;
    let listed: HashSet<String> = listed.into_iter().collect();
    for key in &listed {
        if ctx.slot_of(key).is_none() {
            ctx.mismatch(key, &check, "a key the harness never wrote is listed".into());
            ok = false;
        }
    }
    for (i, version, may_be_present, may_be_absent) in before {
        let slot = &ctx.slots[i];
        let journal = lock(&slot.journal);
        if journal.version() != version {
            continue;
        }
        let is_listed = listed.contains(&slot.name);
        let problem = if is_listed && !may_be_present {
            Some("listed, but every state it may be in is absent")
        } else if !is_listed && !may_be_absent {
            Some("not listed, but every state it may be in is present")
        } else {
            None
        };
        if let Some(problem) = problem {
            let detail = format!("{problem}: {}", journal.describe());
            drop(journal);
            ctx.mismatch(&slot.name, &check, detail);
            ok = false;
        }
    }
    if ok {
        ctx.tally.acked(Op::List);
    }
    true
}

/// Makes sure the bucket exists.
pub async fn create_bucket(ctx: &Ctx) -> anyhow::Result<()> {
    let mut conn = S3Conn::new(ctx.cfg.clone());
    let mut last = None;
    for _ in 0..20 {
        match conn.create_bucket(&ctx.bucket).await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("creating bucket {}: {}", ctx.bucket, last.map(|e| e.to_string()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_follow_the_weights() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0u32; 6];
        for _ in 0..20_000 {
            let op = pick_op(&mut rng);
            counts[Op::ALL.iter().position(|o| *o == op).expect("op")] += 1;
        }
        for ((op, weight), n) in WEIGHTS.iter().zip(counts) {
            let expected = 200 * weight;
            assert!(n.abs_diff(expected) < expected / 5 + 50, "{}: {n}, expected ~{expected}", op.name());
        }
    }

    #[test]
    fn sizes_cover_inline_and_striped() {
        let mut rng = SmallRng::seed_from_u64(2);
        let sizes: Vec<usize> = (0..5000).map(|_| put_size(&mut rng)).collect();
        assert!(sizes.iter().all(|&s| s <= PUT_MAX));
        let inline = sizes.iter().filter(|&&s| s <= INLINE_MAX).count();
        assert!((2000..3000).contains(&inline), "{inline} of 5000 inline");
        assert!(sizes.iter().any(|&s| s <= 1024));
    }

    #[test]
    fn reads_are_observed_by_length_md5_and_etag() {
        assert_eq!(observe(None), Observed::Absent);
        let (_, body) = Version::put(3, 10);
        let seen = observe(Some(Fetched { body: body.to_vec(), etag: Some("e".into()) }));
        assert_eq!(
            seen,
            Observed::Present { len: 10, md5: Some(hex::encode(Md5::digest(&body))), etag: Some("e".into()) }
        );
    }

    #[test]
    fn keys_sort_in_numeric_order() {
        let cfg = Arc::new(TargetConfig::new(
            crate::s3::Endpoint::parse("http://127.0.0.1:1").expect("endpoint"),
            "a",
            "b",
            "us-east-1",
            Duration::from_secs(1),
        ));
        let ctx = Ctx::new(cfg, "b", 200, 1);
        assert_eq!(ctx.slots[0].name, "k0000");
        assert_eq!(ctx.slots[199].name, "k0199");
        assert_eq!(ctx.slot_of("k0042"), Some(42));
        assert!(ctx.slots.windows(2).all(|w| w[0].name < w[1].name));
    }
}
