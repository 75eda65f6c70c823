//! Bucket notifications: events recorded with the change that caused them, delivered to webhooks.
//!
//! A bucket's `NotificationConfiguration` (in `BucketRecord.configs["notification"]`, stored by the
//! gateway) names webhook targets configured on this service (`--notify-webhook ID=URL`). When a
//! command creates or removes an object, [`record`] adds one `NotificationEvent` per matching queue
//! configuration to the `notify` column family in the SAME write batch as the change, so an
//! acknowledged write never loses its event. The queue is bounded ([`MAX_QUEUED`]): past it new
//! events are dropped, counted (`coffer_notify_events_dropped_total`) and logged, never blocking
//! writes. The [`Dispatcher`] POSTs queued events, oldest first, as S3 event JSON, retries a failed
//! target with exponential backoff up to [`MAX_ATTEMPTS`] times, and removes an event after a 2xx
//! (or once its retries are spent, counted and logged as dropped).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_proto::Message;
use coffer_proto::pb::metadata::{NotificationConfiguration, NotificationEvent, ObjectRecord};
use rocksdb::WriteBatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use crate::applier::Applier;
use crate::command::{Applied, Command};
use crate::error::MetadataError;
use crate::store::{Cf, Store, decode};

/// The configuration slot the gateway stores the bucket's notification configuration in.
pub const CONFIG: &str = "notification";
/// Events waiting for delivery at most; past this, new events are dropped (and counted).
pub const MAX_QUEUED: u64 = 100_000;
/// Deliveries of one event tried at most before it is dropped (and counted).
pub const MAX_ATTEMPTS: u32 = 12;
/// Events read per dispatcher round.
const BATCH: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const IDLE_POLL: Duration = Duration::from_millis(200);
/// One delivery (connect, send, status line) takes at most this long.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// The error S3 gives for a destination it cannot use.
pub const UNKNOWN_DESTINATION: &str = "Unable to validate the following destination configurations";

/// A webhook target: `--notify-webhook ID=URL` (plain `http://` URLs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    /// `host:port` to connect to.
    pub authority: String,
    pub host: String,
    pub path: String,
}

impl Webhook {
    pub fn parse(text: &str) -> Result<Webhook, String> {
        let (id, url) = text.split_once('=').ok_or_else(|| format!("{text:?}: expected ID=URL"))?;
        let id = id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("{text:?}: the id must be letters, digits, '-' or '_'"));
        }
        let rest = url
            .trim()
            .strip_prefix("http://")
            .ok_or_else(|| format!("{text:?}: only http:// webhook URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{text:?}: the URL needs a host"));
        }
        let authority = if host.rsplit_once(':').is_some_and(|(_, port)| port.parse::<u16>().is_ok()) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        Ok(Webhook { id: id.to_string(), authority, host: host.to_string(), path: path.to_string() })
    }
}

/// The webhook targets of this service, by id.
#[derive(Debug, Clone, Default)]
pub struct Targets(HashMap<String, Webhook>);

impl Targets {
    pub fn parse(flags: &[String]) -> Result<Targets, MetadataError> {
        let mut targets = HashMap::new();
        for flag in flags.iter().filter(|f| !f.trim().is_empty()) {
            let webhook =
                Webhook::parse(flag).map_err(|e| MetadataError::InvalidArgument(format!("--notify-webhook {e}")))?;
            targets.insert(webhook.id.clone(), webhook);
        }
        Ok(Targets(targets))
    }

    /// Checks a configuration the gateway is about to store: every queue names a known target.
    pub fn validate(&self, value: &[u8]) -> Result<(), MetadataError> {
        if value.is_empty() {
            return Ok(());
        }
        let config = NotificationConfiguration::decode(value)
            .map_err(|e| MetadataError::InvalidArgument(format!("unreadable notification configuration: {e}")))?;
        if config.queues.iter().any(|q| !self.0.contains_key(&q.target)) {
            return Err(MetadataError::InvalidArgument(UNKNOWN_DESTINATION.into()));
        }
        Ok(())
    }
}

/// What a command did to an object, as an event source.
#[derive(Debug, Clone)]
pub struct Source {
    bucket: String,
    key: String,
    kind: Kind,
    time_unix_ms: i64,
}

/// How an object was created, when not by a plain PUT (the gateway says so in the commit's
/// `x-coffer-created-by` gRPC metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Created {
    Post,
    Copy,
}

const CREATED_BY_HEADER: &str = "x-coffer-created-by";

/// How the object a PutObject request commits was created.
pub fn created_by(metadata: &tonic::metadata::MetadataMap) -> Option<Created> {
    match metadata.get(CREATED_BY_HEADER).and_then(|v| v.to_str().ok()) {
        Some("Post") => Some(Created::Post),
        Some("Copy") => Some(Created::Copy),
        _ => None,
    }
}

/// `command`, marked with how its object was created when that is not a plain PUT.
pub fn hinted(how: Option<Created>, command: Command) -> Command {
    match how {
        Some(how) => Command::CreatedBy { how, command: Box::new(command) },
        None => command,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Post,
    Copy,
    CompleteMultipartUpload,
    /// DeleteObject: a delete, or a delete marker in a versioned bucket.
    Delete,
    DeleteVersion,
}

impl Source {
    /// The event source of a command that can create or remove an object.
    pub fn of(command: &Command) -> Option<Source> {
        let (bucket, key, kind, stamp) = match command {
            Command::PutObject { record, stamp, .. } => (&record.bucket, &record.key, Kind::Put, stamp),
            Command::CompleteUpload { bucket, key, stamp, .. } => (bucket, key, Kind::CompleteMultipartUpload, stamp),
            Command::DeleteObject { bucket, key, stamp } => (bucket, key, Kind::Delete, stamp),
            Command::DeleteVersion { bucket, key, stamp, .. } => (bucket, key, Kind::DeleteVersion, stamp),
            Command::CreatedBy { how, command } => {
                let mut source = Source::of(command)?;
                if source.kind == Kind::Put {
                    source.kind = match how {
                        Created::Post => Kind::Post,
                        Created::Copy => Kind::Copy,
                    };
                }
                return Some(source);
            }
            _ => return None,
        };
        Some(Source { bucket: bucket.clone(), key: key.clone(), kind, time_unix_ms: stamp.now_unix_ms })
    }
}

/// Whether a configured event name (`s3:ObjectCreated:*`, ...) covers `name` (`ObjectCreated:Put`).
pub fn event_matches(configured: &str, name: &str) -> bool {
    let configured = configured.strip_prefix("s3:").unwrap_or(configured);
    match configured.strip_suffix('*') {
        Some(family) => name.starts_with(family),
        None => configured == name,
    }
}

fn filter_matches(rules: &[coffer_proto::pb::metadata::NotificationFilterRule], key: &str) -> bool {
    rules.iter().all(|rule| match rule.name.to_ascii_lowercase().as_str() {
        "prefix" => key.starts_with(&rule.value),
        "suffix" => key.ends_with(&rule.value),
        _ => false,
    })
}

/// Adds the events of `source` (which produced `applied`) to `batch`, one per matching queue.
pub fn record(store: &Store, batch: &mut WriteBatch, source: Source, applied: &Applied) -> Result<(), MetadataError> {
    record_bounded(store, batch, source, applied, MAX_QUEUED)
}

fn record_bounded(
    store: &Store,
    batch: &mut WriteBatch,
    source: Source,
    applied: &Applied,
    limit: u64,
) -> Result<(), MetadataError> {
    let (name, object) = match (source.kind, applied) {
        (Kind::Put, Applied::Object(record)) => ("ObjectCreated:Put", Some(record)),
        (Kind::Post, Applied::Object(record)) => ("ObjectCreated:Post", Some(record)),
        (Kind::Copy, Applied::Object(record)) => ("ObjectCreated:Copy", Some(record)),
        (Kind::CompleteMultipartUpload, Applied::Object(record)) => {
            ("ObjectCreated:CompleteMultipartUpload", Some(record))
        }
        (Kind::Delete, Applied::Existed(true)) => ("ObjectRemoved:Delete", None),
        (Kind::Delete, Applied::Deleted { delete_marker: true, .. }) => ("ObjectRemoved:DeleteMarkerCreated", None),
        (Kind::DeleteVersion, Applied::Deleted { existed: true, .. }) => ("ObjectRemoved:Delete", None),
        _ => return Ok(()),
    };
    let Some(bucket) = store.find_bucket(&source.bucket)? else { return Ok(()) };
    let Some(bytes) = bucket.configs.get(CONFIG).filter(|b| !b.is_empty()) else { return Ok(()) };
    let Ok(config) = NotificationConfiguration::decode(bytes.as_slice()) else { return Ok(()) };
    let version_id = match applied {
        Applied::Object(record) => record.version_id.clone(),
        Applied::Deleted { version_id, .. } => version_id.clone(),
        _ => String::new(),
    };
    let (size, etag) = object.map_or((0, String::new()), |o: &ObjectRecord| (o.size, o.etag.clone()));
    let mut queued: Option<(u64, u64)> = None;
    for queue in &config.queues {
        if !queue.events.iter().any(|e| event_matches(e, name)) || !filter_matches(&queue.rules, &source.key) {
            continue;
        }
        let (first, next) = match queued {
            Some(bounds) => bounds,
            None => queue_bounds(store)?,
        };
        if next.saturating_sub(first) >= limit {
            metrics::counter!("coffer_notify_events_dropped_total", "reason" => "queue_full").increment(1);
            tracing::warn!(bucket = %source.bucket, key = %source.key, event = name, limit,
                "notification queue full: event dropped");
            continue;
        }
        let event = NotificationEvent {
            target: queue.target.clone(),
            config_id: queue.id.clone(),
            event_name: name.to_string(),
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            size,
            etag: etag.clone(),
            version_id: version_id.clone(),
            time_unix_ms: source.time_unix_ms,
            sequence: next,
            region: bucket.region.clone(),
        };
        batch.put_cf(store.cf(Cf::Notify)?, next.to_be_bytes(), event.encode_to_vec());
        queued = Some((first, next + 1));
    }
    Ok(())
}

/// (first, next) sequence numbers of the queue: `next - first` bounds the number of queued events.
fn queue_bounds(store: &Store) -> Result<(u64, u64), MetadataError> {
    let mut iter = store.db().raw_iterator_cf(store.cf(Cf::Notify)?);
    iter.seek_to_first();
    let first = iter.key().and_then(sequence_of);
    iter.seek_to_last();
    let last = iter.key().and_then(sequence_of);
    iter.status().map_err(MetadataError::db("reading the notification queue"))?;
    Ok(match (first, last) {
        (Some(first), Some(last)) => (first, last + 1),
        // An empty queue restarts at 0 only if nothing was ever queued; numbering from the clock
        // keeps sequencers increasing across restarts without a stored counter.
        _ => {
            let next = store.get::<NotificationEvent>(Cf::Meta, LAST_KEY)?.map_or(0, |e| e.sequence + 1);
            (next, next)
        }
    })
}

/// The last event removed from the queue, kept so numbering continues after the queue empties.
const LAST_KEY: &[u8] = b"notify-last";

fn sequence_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Removes delivered (or given up) events.
pub fn finish(store: &Store, batch: &mut WriteBatch, keys: &[Vec<u8>]) -> Result<Applied, MetadataError> {
    let cf = store.cf(Cf::Notify)?;
    let mut last: Option<u64> = None;
    for key in keys {
        batch.delete_cf(cf, key);
        last = last.max(sequence_of(key));
    }
    if let Some(last) = last {
        let stored = store.get::<NotificationEvent>(Cf::Meta, LAST_KEY)?.map_or(0, |e| e.sequence);
        if last >= stored {
            let marker = NotificationEvent { sequence: last, ..Default::default() };
            batch.put_cf(store.cf(Cf::Meta)?, LAST_KEY, marker.encode_to_vec());
        }
    }
    Ok(Applied::Done)
}

fn queued(store: &Store, limit: usize) -> Result<Vec<(Vec<u8>, NotificationEvent)>, MetadataError> {
    let mut out = Vec::new();
    store.scan_prefix(Cf::Notify, b"", |k, v| {
        out.push((k.to_vec(), decode(Cf::Notify, k, v)?));
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// S3's form of a key in an event: URL-encoded, spaces as '+'.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => out.push(char::from(b)),
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn event_time(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second(),
        time.millisecond()
    )
}

/// The S3 event message (`{"Records":[...]}`) of one event.
pub fn event_json(event: &NotificationEvent) -> serde_json::Value {
    let mut object = serde_json::json!({
        "key": encode_key(&event.key),
        "sequencer": format!("{:016X}", event.sequence),
    });
    if event.event_name.starts_with("ObjectCreated:") {
        object["size"] = event.size.into();
        object["eTag"] = event.etag.clone().into();
    }
    if !event.version_id.is_empty() {
        object["versionId"] = event.version_id.clone().into();
    }
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": event.region,
            "eventTime": event_time(event.time_unix_ms),
            "eventName": event.event_name,
            "userIdentity": {"principalId": ""},
            "requestParameters": {"sourceIPAddress": ""},
            "responseElements": {},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": event.config_id,
                "bucket": {
                    "name": event.bucket,
                    "ownerIdentity": {"principalId": ""},
                    "arn": format!("arn:aws:s3:::{}", event.bucket),
                },
                "object": object,
            },
        }]
    })
}

/// POSTs `body` to the webhook; the HTTP status.
async fn post(webhook: &Webhook, body: &[u8]) -> Result<u16, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&webhook.authority).await.map_err(|e| e.to_string())?;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            webhook.path,
            webhook.host,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
        stream.write_all(body).await.map_err(|e| e.to_string())?;
        // Only the status line matters; bounded so a misbehaving peer cannot make us buffer much.
        let mut response = Vec::with_capacity(256);
        let mut chunk = [0u8; 256];
        while !response.windows(2).any(|w| w == b"\r\n") && response.len() < 4096 {
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        let line = String::from_utf8_lossy(&response);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("no HTTP status in {:?}", line.lines().next().unwrap_or_default()))
    };
    tokio::time::timeout(POST_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())?
}

/// Delivers queued events to their webhooks.
pub struct Dispatcher {
    store: Arc<Store>,
    applier: Applier,
    targets: Targets,
    /// Failed deliveries per event sequence. In memory: a restart restarts the backoff, harmlessly.
    attempts: HashMap<u64, u32>,
    /// A target that failed is not tried again before this, so its events keep their order.
    blocked_until: HashMap<String, Instant>,
}

impl Dispatcher {
    pub fn new(store: Arc<Store>, applier: Applier, targets: Targets) -> Dispatcher {
        Dispatcher { store, applier, targets, attempts: HashMap::new(), blocked_until: HashMap::new() }
    }

    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            // Stopping mid-round is safe: an event leaves the queue only after its delivery.
            let round = tokio::select! {
                round = self.round() => round,
                _ = &mut stop => return,
            };
            let pause = match round {
                Ok(true) => Duration::ZERO,
                Ok(false) => IDLE_POLL,
                Err(e) => {
                    tracing::warn!(error = %e, "notification round failed");
                    IDLE_POLL
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = &mut stop => return,
            }
        }
    }

    fn backoff(attempts: u32) -> Duration {
        FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
    }

    /// One round over the oldest queued events; whether any was removed.
    pub async fn round(&mut self) -> Result<bool, MetadataError> {
        let store = self.store.clone();
        let events = tokio::task::spawn_blocking(move || queued(&store, BATCH))
            .await
            .map_err(|e| MetadataError::Internal(format!("notification read task failed: {e}")))??;
        let mut done = Vec::new();
        for (key, event) in events {
            let Some(webhook) = self.targets.0.get(&event.target) else {
                metrics::counter!("coffer_notify_events_dropped_total", "reason" => "unknown_target").increment(1);
                tracing::warn!(target_id = %event.target, "notification for a webhook no longer configured dropped");
                done.push(key);
                continue;
            };
            if self.blocked_until.get(&event.target).is_some_and(|until| *until > Instant::now()) {
                continue;
            }
            let body = event_json(&event).to_string();
            let outcome = post(webhook, body.as_bytes()).await;
            match outcome {
                Ok(status) if (200..300).contains(&status) => {
                    metrics::counter!("coffer_notify_events_delivered_total").increment(1);
                    self.attempts.remove(&event.sequence);
                    self.blocked_until.remove(&event.target);
                    done.push(key);
                }
                failed => {
                    let attempts = self.attempts.entry(event.sequence).or_insert(0);
                    *attempts += 1;
                    let attempts = *attempts;
                    if attempts >= MAX_ATTEMPTS {
                        metrics::counter!("coffer_notify_events_dropped_total", "reason" => "retries_exhausted")
                            .increment(1);
                        tracing::warn!(target_id = %event.target, sequence = event.sequence, outcome = ?failed,
                            "notification dropped after {MAX_ATTEMPTS} failed deliveries");
                        self.attempts.remove(&event.sequence);
                        done.push(key);
                    } else {
                        tracing::info!(target_id = %event.target, attempts, outcome = ?failed, "notification delivery failed; will retry");
                        self.blocked_until.insert(event.target.clone(), Instant::now() + Self::backoff(attempts));
                    }
                }
            }
        }
        if done.is_empty() {
            return Ok(false);
        }
        self.applier.submit(Command::NotifyDone { keys: done }).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use coffer_proto::pb::metadata::{NotificationFilterRule, NotificationQueue, Segment, Versioning};

    use super::*;
    use crate::command::apply;
    use crate::command::tests::{make_bucket, object, stamp, store};

    fn configure(store: &Store, bucket: &str, queues: Vec<NotificationQueue>) {
        let value = NotificationConfiguration { queues }.encode_to_vec();
        apply(store, Command::SetBucketConfig { name: bucket.into(), key: CONFIG.into(), value }).unwrap();
    }

    fn queue(events: &[&str], rules: &[(&str, &str)]) -> NotificationQueue {
        NotificationQueue {
            id: "q".into(),
            arn: "arn:coffer:sqs::hook:webhook".into(),
            target: "hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            rules: rules
                .iter()
                .map(|(n, v)| NotificationFilterRule { name: n.to_string(), value: v.to_string() })
                .collect(),
        }
    }

    fn put(store: &Store, key: &str, now: i64) {
        let inline = Segment { size: 3, inline_data: b"abc".to_vec(), ..Default::default() };
        let record = object("b", key, inline);
        apply(store, Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(now) })
            .unwrap();
    }

    fn names(store: &Store) -> Vec<(String, String)> {
        queued(store, 100).unwrap().into_iter().map(|(_, e)| (e.event_name, e.key)).collect()
    }

    #[test]
    fn event_names_and_filters() {
        assert!(event_matches("s3:ObjectCreated:*", "ObjectCreated:Put"));
        assert!(event_matches("s3:ObjectCreated:Put", "ObjectCreated:Put"));
        assert!(!event_matches("s3:ObjectCreated:Copy", "ObjectCreated:Put"));
        assert!(!event_matches("s3:ObjectRemoved:*", "ObjectCreated:Put"));
        let rules = queue(&[], &[("prefix", "img/"), ("Suffix", ".jpg")]).rules;
        assert!(filter_matches(&rules, "img/a.jpg"));
        assert!(!filter_matches(&rules, "img/a.png"));
        assert!(!filter_matches(&rules, "doc/a.jpg"));
        assert_eq!(encode_key("a b/ü+c"), "a+b/%C3%BC%2Bc");
        assert_eq!(event_time(86_400_123), "1970-01-02T00:00:00.123Z");
    }

    #[test]
    fn matching_changes_queue_events_in_order_and_delivered_ones_go() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        put(&store, "before", 1);
        configure(&store, "b", vec![queue(&["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], &[("prefix", "in/")])]);
        put(&store, "in/a", 2);
        put(&store, "out/a", 3);
        apply(&store, Command::DeleteObject { bucket: "b".into(), key: "in/a".into(), stamp: stamp(4) }).unwrap();
        apply(&store, Command::DeleteObject { bucket: "b".into(), key: "in/none".into(), stamp: stamp(5) }).unwrap();
        apply(&store, Command::SetBucketVersioning { name: "b".into(), versioning: Versioning::Enabled }).unwrap();
        apply(&store, Command::DeleteObject { bucket: "b".into(), key: "in/m".into(), stamp: stamp(6) }).unwrap();
        let expected = [
            ("ObjectCreated:Put", "in/a"),
            ("ObjectRemoved:Delete", "in/a"),
            ("ObjectRemoved:DeleteMarkerCreated", "in/m"),
        ];
        assert_eq!(names(&store), expected.map(|(n, k)| (n.to_string(), k.to_string())));

        let events = queued(&store, 100).unwrap();
        let json = event_json(&events[0].1);
        let record = &json["Records"][0];
        assert_eq!(record["eventName"], "ObjectCreated:Put");
        assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::b");
        assert_eq!(record["s3"]["object"]["size"], 3);
        let keys: Vec<Vec<u8>> = events.iter().take(2).map(|(k, _)| k.clone()).collect();
        apply(&store, Command::NotifyDone { keys }).unwrap();
        assert_eq!(names(&store).len(), 1);
        // Numbering continues after the queue empties.
        let last = events[2].1.sequence;
        apply(&store, Command::NotifyDone { keys: vec![events[2].0.clone()] }).unwrap();
        put(&store, "in/b", 7);
        assert_eq!(queued(&store, 10).unwrap()[0].1.sequence, last + 1);
    }

    #[test]
    fn a_full_queue_drops_new_events_and_writes_still_succeed() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        configure(&store, "b", vec![queue(&["s3:ObjectCreated:*"], &[])]);
        for i in 0..3 {
            let inline = Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
            let record = object("b", &format!("k{i}"), inline);
            let command =
                Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(1) };
            let source = Source::of(&command).unwrap();
            let mut batch = WriteBatch::default();
            let applied = Applied::Object(store.find_object("b", "none").unwrap().unwrap_or_default());
            record_bounded(&store, &mut batch, source, &applied, 2).unwrap();
            store.write(batch).unwrap();
        }
        assert_eq!(queued(&store, 10).unwrap().len(), 2);
    }

    #[test]
    fn targets_parse_and_validate_configurations() {
        let targets =
            Targets::parse(&["hook=http://127.0.0.1:9/events".into(), "plain=http://example".into()]).unwrap();
        let hook = &targets.0["hook"];
        assert_eq!((hook.authority.as_str(), hook.path.as_str()), ("127.0.0.1:9", "/events"));
        assert_eq!(targets.0["plain"].authority, "example:80");
        assert!(Targets::parse(&["nohttp=https://x".into()]).is_err());
        assert!(Targets::parse(&["missing-url".into()]).is_err());
        let ok = NotificationConfiguration { queues: vec![queue(&["s3:ObjectCreated:*"], &[])] }.encode_to_vec();
        targets.validate(&ok).unwrap();
        let mut unknown = queue(&["s3:ObjectCreated:*"], &[]);
        unknown.target = "other".into();
        let bad = NotificationConfiguration { queues: vec![unknown] }.encode_to_vec();
        assert!(matches!(targets.validate(&bad), Err(MetadataError::InvalidArgument(m)) if m == UNKNOWN_DESTINATION));
        targets.validate(&[]).unwrap();
    }

    #[tokio::test]
    async fn the_dispatcher_retries_a_failing_webhook_and_removes_delivered_events() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        make_bucket(&store, "b");
        configure(&store, "b", vec![queue(&["s3:ObjectCreated:*"], &[])]);
        put(&store, "k", 1);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (bodies_tx, mut bodies) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            for status in [503, 200] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&request).contains("\"Records\"") || !request.ends_with(b"}") {
                    let n = socket.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                socket.write_all(reply.as_bytes()).await.unwrap();
                bodies_tx.send(String::from_utf8_lossy(&request).into_owned()).unwrap();
            }
        });
        let (applier, thread) = Applier::start(store.clone()).unwrap();
        let targets = Targets::parse(&[format!("hook=http://{address}/in")]).unwrap();
        let mut dispatcher = Dispatcher::new(store.clone(), applier, targets);
        assert!(!dispatcher.round().await.unwrap(), "the first delivery fails");
        assert!(bodies.recv().await.unwrap().starts_with("POST /in HTTP/1.1"));
        assert!(!dispatcher.round().await.unwrap(), "backing off: not tried again at once");
        tokio::time::sleep(FIRST_BACKOFF).await;
        assert!(dispatcher.round().await.unwrap());
        assert!(bodies.recv().await.unwrap().contains("ObjectCreated:Put"));
        assert!(queued(&store, 10).unwrap().is_empty());
        thread.stop().await;
    }
}
