//! A range group splits under a write load while a full listing runs (issue 11): three `coffer
//! metadata` replicas, range group 1 owning bucket "b"'s keys below "z". 1,500 keys are written first; then
//! writers keep adding keys on both sides of the split point while a listing pages slowly through
//! the bucket, and `coffer admin meta split` splits group 1 at "k0750" into a new group. One
//! replica is down during the split and comes back after it: it applies the split from its log
//! (so the watcher must wait for that before it opens the new group from its seed).
//!
//! Checked: the listing running across the split returns keys in order, each at most once, and
//! every key written before it started exactly once; after the load stops a full listing equals
//! the acknowledged writes (plus, at most, writes whose answer was lost); every acknowledged key
//! reads back byte-exact; the range table shows the two halves; group 0 and each half refuse the
//! other half's keys; the returning replica serves the new group.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_proto::metadata_client::{ClientConfig, MetadataClient};
use coffer_proto::pb::metadata::{
    CreateBucketRequest, GetObjectRequest, ListObjectsRequest, PutObjectRequest, RangeTableRequest,
};
use coffer_proto::stale_reads::ListingClient;
use coffer_proto::{ErrorCode, RemoteError};

use crate::common::metadata_group::{self, in_group, status, wait_for_group};
use crate::common::{Proc, runtime};
use crate::metadata_routing::{assert_read_back, create_group, object, put_all_routed};

const SPLIT_AT: &str = "k0750";

pub(crate) fn key(i: usize) -> String {
    format!("k{i:04}")
}

/// One put through the routed client, retried on retryable answers for a bounded time: `Ok`
/// when acknowledged, `Err` when it gave up (its effect is then unknown).
pub(crate) async fn put_acknowledged(client: &MetadataClient, key: &str) -> Result<(), RemoteError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = PutObjectRequest { record: Some(object(key)), intents: Vec::new(), condition: None };
        match client.rpc().put_object(request).await.map_err(RemoteError::from) {
            Ok(_) => return Ok(()),
            Err(e)
                if matches!(e.code, ErrorCode::Unavailable | ErrorCode::WrongRange | ErrorCode::Internal)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every key of bucket "b", page by page as the gateway pages (each page resumes after the last
/// key), waiting `pause` between pages. Retries a page that fails (a group electing its leader).
pub(crate) async fn list_all(listings: &ListingClient, page_size: u32, pause: Duration) -> Vec<String> {
    let mut keys = Vec::new();
    let mut marker = String::new();
    loop {
        let request = ListObjectsRequest {
            bucket: "b".into(),
            start_after: marker.clone(),
            max_keys: page_size,
            ..Default::default()
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let page = loop {
            match listings.list_objects(request.clone()).await {
                Ok(page) => break page.into_inner(),
                Err(e) if Instant::now() < deadline => {
                    eprintln!("a listing page failed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("list a page: {e}"),
            }
        };
        keys.extend(page.objects.iter().map(|o| o.key.clone()));
        if !page.is_truncated {
            return keys;
        }
        marker = page.next_marker;
        tokio::time::sleep(pause).await;
    }
}

/// Three replicas, range group 1 owning bucket "b" below "z", and the 1,500 even keys written
/// (the keys every listing must see): the start of the split and move tests.
pub(crate) struct Fixture {
    pub procs: Vec<Option<Proc>>,
    pub urls: Vec<String>,
    pub peers: String,
    pub rt: tokio::runtime::Runtime,
    pub client: MetadataClient,
    pub before: BTreeSet<String>,
}

pub(crate) fn fixture(dir: &std::path::Path) -> Fixture {
    let (procs, urls, peers) = metadata_group::start_three(dir);
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    create_group(&peers, 1, "", "z");
    wait_for_group(&rt, &urls, 1);
    let client = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");
    rt.block_on(async {
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        client.rpc().create_bucket(bucket).await.expect("create the bucket");
    });
    let before: BTreeSet<String> = (0..1500).map(|i| key(i * 2)).collect();
    rt.block_on(put_all_routed(&client, &before));
    Fixture { procs: procs.into_iter().map(Some).collect(), urls, peers, rt, client, before }
}

/// Four writers adding the odd keys, spread over the key space, each answer journaled.
pub(crate) struct Writers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<BTreeSet<String>>>,
    unknown: Arc<Mutex<BTreeSet<String>>>,
}

impl Writers {
    /// Stops them: the keys acknowledged, and those whose effect is unknown (the put gave up).
    pub(crate) fn stop(self, rt: &tokio::runtime::Runtime) -> (BTreeSet<String>, BTreeSet<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            rt.block_on(task).expect("a writer task");
        }
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        let unknown = self.unknown.lock().unwrap().clone();
        (acknowledged, unknown)
    }
}

/// Starts the [`Writers`] and a slow listing (pages of 25, 40 ms apart), which answers its keys
/// and when it ended.
pub(crate) fn start_load(
    rt: &tokio::runtime::Runtime,
    client: &MetadataClient,
) -> (Writers, tokio::task::JoinHandle<(Vec<String>, Instant)>) {
    let _guard = rt.enter();
    let writers = Writers {
        tasks: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        acknowledged: Arc::default(),
        unknown: Arc::default(),
    };
    let tasks = (0..4usize)
        .map(|w| {
            let (client, acknowledged, unknown, stop) =
                (client.clone(), writers.acknowledged.clone(), writers.unknown.clone(), writers.stop.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) && i < 1500 {
                    // Spread over the key space (7919 is prime to 1500), so every range takes writes.
                    let key = key((i * 7919 % 1500) * 2 + 1);
                    match put_acknowledged(&client, &key).await {
                        Ok(()) => acknowledged.lock().unwrap().insert(key),
                        Err(e) => {
                            eprintln!("put {key} gave up: {e}");
                            unknown.lock().unwrap().insert(key)
                        }
                    };
                    i += 4;
                }
            })
        })
        .collect();
    let listings = ListingClient::linearizable(client.clone());
    let listing = tokio::spawn(async move {
        let keys = list_all(&listings, 25, Duration::from_millis(40)).await;
        (keys, Instant::now())
    });
    (Writers { tasks, ..writers }, listing)
}

/// The listing that ran across a change (`what`): ordered, no key twice, every key of `before`
/// once, and nothing that was never written.
pub(crate) fn check_listing_across(
    what: &str,
    listed: &[String],
    before: &BTreeSet<String>,
    acknowledged: &BTreeSet<String>,
    unknown: &BTreeSet<String>,
) {
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "the listing is strictly ordered");
    let listed_set: BTreeSet<String> = listed.iter().cloned().collect();
    let missing: Vec<&String> = before.difference(&listed_set).collect();
    assert!(
        missing.is_empty(),
        "the listing missed {} keys written before it: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for key in listed {
        assert!(before.contains(key) || acknowledged.contains(key) || unknown.contains(key), "{key} was never written");
    }
    eprintln!(
        "listing across the {what}: {} keys; {} written during the load ({} gave up)",
        listed.len(),
        acknowledged.len(),
        unknown.len()
    );
}

/// After the load: a full listing is exactly what was acknowledged (and perhaps writes whose
/// answer was lost), and every acknowledged key reads back.
pub(crate) async fn check_all_after_load(
    client: &MetadataClient,
    before: &BTreeSet<String>,
    acknowledged: &BTreeSet<String>,
    unknown: &BTreeSet<String>,
) {
    let all = list_all(&ListingClient::linearizable(client.clone()), 1000, Duration::ZERO).await;
    let all_set: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(all.len(), all_set.len(), "no key twice");
    let wanted: BTreeSet<String> = before.union(acknowledged).cloned().collect();
    assert!(wanted.is_subset(&all_set), "every acknowledged key is listed");
    assert!(all_set.difference(&wanted).all(|k| unknown.contains(k)), "nothing else is listed");
    assert_read_back(client, &wanted).await;
}

#[test]
fn a_range_group_splits_under_load_and_a_listing_sees_every_key_once() {
    let dir = tempfile::Builder::new().prefix("coffer-split").tempdir_in(crate::common::test_root()).expect("tempdir");
    let Fixture { mut procs, urls, peers, rt, client, before } = fixture(dir.path());

    // A replica is down while the split happens; it comes back afterwards.
    let victim = urls.iter().position(|url| status(&rt, url).is_some_and(|s| s.state != "leader")).expect("a follower");
    procs[victim].as_mut().expect("running").kill9();

    // Writers on both sides of the split point, and a slow listing.
    let (writers, listing) = start_load(&rt, &client);
    std::thread::sleep(Duration::from_millis(500));
    let split_started = Instant::now();
    let answer = metadata_group::meta_admin(&peers, &["split", "--group", "1", "--at", &format!("b/{SPLIT_AT}")]);
    eprintln!("split in {:?}: {answer}", split_started.elapsed());
    assert!(answer.contains("group 2"), "{answer}");

    let split_done = Instant::now();
    let (listed, listing_done) = rt.block_on(listing).expect("the listing task");
    assert!(listing_done > split_done, "the listing ran across the split");
    // Back after the split: it applies it from its log and opens group 2 from its own seed.
    let db = dir.path().join(format!("meta{victim}")).display().to_string();
    let port = urls[victim].rsplit(':').next().expect("a port");
    let args = ["metadata", "--listen", &format!("127.0.0.1:{port}"), "--db", &db, "--peers", &peers].map(String::from);
    procs[victim] = Some(Proc::spawn("meta-back", &args, dir.path()));
    std::thread::sleep(Duration::from_secs(1));
    let (acknowledged, unknown) = writers.stop(&rt);

    check_listing_across("split", &listed, &before, &acknowledged, &unknown);
    assert!(acknowledged.iter().any(|k| k.as_str() < SPLIT_AT) && acknowledged.iter().any(|k| k.as_str() >= SPLIT_AT));

    rt.block_on(async {
        // Every acknowledged key is listed once and reads back, from the half that owns it.
        check_all_after_load(&client, &before, &acknowledged, &unknown).await;

        // The table: group 1 keeps [b/, b/k0750), group 2 owns [b/k0750, b/z), both at epoch 2.
        let table = client.raft().range_table(RangeTableRequest {}).await.expect("range table").into_inner();
        let ranges: Vec<(u64, String, String, u64)> = table
            .groups
            .iter()
            .map(|g| {
                let range = g.range.clone().unwrap_or_default();
                let (start, end) = (range.start.unwrap_or_default(), range.end.unwrap_or_default());
                (g.group, format!("{}/{}", start.bucket, start.key), format!("{}/{}", end.bucket, end.key), range.epoch)
            })
            .collect();
        assert_eq!(
            ranges,
            [(1, "b/".into(), format!("b/{SPLIT_AT}"), 2), (2, format!("b/{SPLIT_AT}"), "b/z".into(), 2)]
        );
        // Each half refuses the other's keys, and group 0 both.
        for (key, owner) in [("k0000", 1u64), ("k0748", 1), (SPLIT_AT, 2), ("k2998", 2)] {
            for group in 0..3u64 {
                let request = GetObjectRequest { bucket: "b".into(), key: key.into(), ..Default::default() };
                let found = client.rpc().get_object(in_group(request, group)).await.map_err(RemoteError::from);
                match found {
                    Ok(_) => assert_eq!(group, owner, "{key} is in group {group}"),
                    Err(e) if group == owner => panic!("{key} is missing from group {owner}: {e}"),
                    Err(e) => assert_eq!(e.code, ErrorCode::WrongRange, "{key} in group {group}: {e}"),
                }
            }
        }
    });

    // The replica that was down serves group 2 too: it opened it and caught up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen =
            status(&rt, &urls[victim]).map(|s| s.groups.iter().map(|g| (g.group, g.state.clone())).collect::<Vec<_>>());
        if seen
            .as_ref()
            .is_some_and(|groups| groups.iter().any(|(g, state)| *g == 2 && (state == "follower" || state == "leader")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "the returning replica opens group 2: {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // It applied the split from its log, so it opened group 2 from its own seed.
    let log = procs[victim].as_ref().expect("running").log();
    for line in log.lines().filter(|l| l.contains("split the range") || l.contains("range group open")) {
        eprintln!("returning replica: {line}");
    }
    assert!(log.contains("split the range"), "the returning replica applied the split itself");
    drop(procs);
}

/// The automatic split, from group 0 on: with `--range-split-keys 300` and no range group at first,
/// group 0 holding more than 300 objects hands the keys from its middle key on to a new range group,
/// which splits in turn while it holds more than 300; every key stays listed once and readable.
#[test]
fn metadata_groups_past_their_size_threshold_split_by_themselves() {
    let dir =
        tempfile::Builder::new().prefix("coffer-autosplit").tempdir_in(crate::common::test_root()).expect("tempdir");
    let extra = ["--range-split-keys", "300", "--range-split-check", "500ms"];
    let (_procs, urls, _peers) = metadata_group::start_three_with(dir.path(), &extra);
    let rt = runtime();
    metadata_group::wait_for_leader(&rt, &urls, Duration::from_secs(30)).expect("group 0 elects a leader");
    let client = rt.block_on(async { MetadataClient::connect(&urls, &ClientConfig::default()) }).expect("client");
    let keys: BTreeSet<String> = (0..1000).map(key).collect();
    rt.block_on(async {
        let bucket = CreateBucketRequest { name: "b".into(), owner: "me".into(), ..Default::default() };
        client.rpc().create_bucket(bucket).await.expect("create the bucket");
        let mut writes = tokio::task::JoinSet::new();
        let all: Vec<String> = keys.iter().cloned().collect();
        for chunk in all.chunks(all.len().div_ceil(8)) {
            let (client, chunk) = (client.clone(), chunk.to_vec());
            writes.spawn(async move {
                for key in chunk {
                    put_acknowledged(&client, &key).await.unwrap_or_else(|e| panic!("put {key}: {e}"));
                }
            });
        }
        while let Some(done) = writes.join_next().await {
            done.expect("a writer task");
        }

        // 1,000 objects and a threshold of 300: group 0 and at least two range groups in the end.
        let deadline = Instant::now() + Duration::from_secs(60);
        let groups = loop {
            let table = client.raft().range_table(RangeTableRequest {}).await.expect("range table").into_inner();
            if table.groups.len() >= 3 || Instant::now() > deadline {
                // (Three range groups is where the splits stop: 1,000 keys in four parts.)
                break table.groups;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(groups.len() >= 2, "group 0 split, and a range group split in turn: {groups:?}");
        eprintln!("range groups after the automatic splits: {}", groups.len());

        let listings = ListingClient::linearizable(client.clone());
        let listed = list_all(&listings, 100, Duration::ZERO).await;
        assert_eq!(listed, keys.iter().cloned().collect::<Vec<_>>(), "every key once, in order");
        for key in &keys {
            let request = GetObjectRequest { bucket: "b".into(), key: key.clone(), ..Default::default() };
            client.rpc().get_object(request).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
        }
    });
}
