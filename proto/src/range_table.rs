//! The range table a client routes metadata calls by (issue 11, step 2; see
//! docs/design/metadata-sharding.md), and which (bucket, key) a call is about.
//!
//! Group 0 records every range group: its half-open range `[start, end)` over (bucket, key),
//! ordered by bucket then key, bytewise (an empty end is the end of the key space), and its
//! voters. A key no range group holds is group 0's. [`route`] decodes a unary `Metadata` request
//! by its method path into the key it is about — a listing's *effective start*, computed exactly
//! as the metadata service starts its scan (`metadata/src/listing.rs`) — or into "group 0's".

use prost::Message;

use crate::pb::metadata::{
    AbandonDataRequest, AbortUploadRequest, AclSetObjectAclRequest, AllocateDataRequest, CompleteRepairRequest,
    CompleteUploadRequest, CreateUploadRequest, DeleteObjectRequest, GetObjectRequest, GetUploadRequest, KeyRange,
    ListObjectVersionsRequest, ListObjectsRequest, ListPartsRequest, ListUploadsRequest, ObjectLockUpdateRequest,
    PutObjectRequest, PutObjectTagsRequest, PutPartRequest, RangeTableResponse, ReportDamagedShardsRequest,
};

/// The gRPC path prefix of the `Metadata` API.
pub const METADATA_API: &str = "/coffer.metadata.v1.Metadata/";

/// One range group as group 0 recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeEntry {
    pub group: u64,
    pub start: Bound,
    /// `None`: to the end of the key space.
    pub end: Option<Bound>,
    pub epoch: u64,
    /// The group's voters' URLs.
    pub replicas: Vec<String>,
}

impl RangeEntry {
    pub fn contains(&self, bucket: &[u8], key: &[u8]) -> bool {
        let at = (bucket, key);
        at >= (self.start.0.as_slice(), self.start.1.as_slice())
            && self.end.as_ref().is_none_or(|(b, k)| at < (b.as_slice(), k.as_slice()))
    }
}

/// Every range group, by start. Empty: every call is group 0's (no range groups exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeTable {
    entries: Vec<RangeEntry>,
}

/// (bucket, key) as bytes.
pub type Bound = (Vec<u8>, Vec<u8>);

/// A range's start and end (`None`: to the end of the key space).
fn bounds(range: &KeyRange) -> (Bound, Option<Bound>) {
    let start = range.start.clone().unwrap_or_default();
    let end = range.end.clone().unwrap_or_default();
    let end = (!end.bucket.is_empty() || !end.key.is_empty()).then(|| (end.bucket.into_bytes(), end.key.into_bytes()));
    ((start.bucket.into_bytes(), start.key.into_bytes()), end)
}

impl RangeTable {
    pub fn from_pb(response: RangeTableResponse) -> RangeTable {
        let mut entries: Vec<RangeEntry> = response
            .groups
            .into_iter()
            .filter(|entry| entry.group != 0)
            .map(|entry| {
                let range = entry.range.unwrap_or_default();
                let (start, end) = bounds(&range);
                RangeEntry { group: entry.group, start, end, epoch: range.epoch, replicas: entry.replicas }
            })
            .collect();
        entries.sort_by(|a, b| a.start.cmp(&b.start));
        RangeTable { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[RangeEntry] {
        &self.entries
    }

    /// The group that owns (bucket, key): the range group whose range holds it, else group 0.
    pub fn owner(&self, bucket: &[u8], key: &[u8]) -> u64 {
        // The last range starting at or before the key is the only one that can hold it (ranges
        // never overlap).
        let at = (bucket, key);
        let after = self.entries.partition_point(|e| (e.start.0.as_slice(), e.start.1.as_slice()) <= at);
        match after.checked_sub(1).map(|i| &self.entries[i]) {
            Some(entry) if entry.contains(bucket, key) => entry.group,
            _ => 0,
        }
    }

    pub fn replicas(&self, group: u64) -> Option<&[String]> {
        self.entries.iter().find(|e| e.group == group).map(|e| e.replicas.as_slice())
    }

    /// The group a call goes to (for [`Route::Every`], the first: group 0).
    pub fn group_of(&self, route: &Route) -> u64 {
        match route {
            Route::Directory | Route::Every => 0,
            Route::Key { bucket, key } => self.owner(bucket.as_bytes(), key),
            Route::Group(group) => *group,
        }
    }

    /// Every group: group 0, then each range group by start.
    pub fn groups(&self) -> Vec<u64> {
        std::iter::once(0).chain(self.entries.iter().map(|e| e.group)).collect()
    }
}

/// What a call is about, for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Group 0's: bucket, node, IAM and account calls, and anything not decodable.
    Directory,
    /// The group owning (bucket, key): a keyed call's key, or a listing's effective start (not
    /// necessarily a key: the byte successor of a common prefix need not be UTF-8).
    Key { bucket: String, key: Vec<u8> },
    /// A group the call names itself: a repair completed where it was claimed.
    Group(u64),
    /// Every group: a damaged-shard report names data ids, which carry no group (each group keeps
    /// the reports of the data it holds).
    Every,
}

/// The common prefix `key` folds into (as `metadata/src/listing.rs`).
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// The smallest byte string greater than every string starting with `prefix` (as
/// `metadata/src/keys.rs`); `None` when there is none (all 0xff).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < 0xff {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Where a forward listing of keys under `prefix` that resumes after `marker` (and at or after
/// `start_at`) starts scanning, as the metadata service computes it: `None` when nothing can
/// follow. A marker inside a common prefix skips the whole prefix (it was returned already).
/// `after_marker` is what follows the marker key itself (a NUL: the first key after it).
pub fn listing_start(
    prefix: &str,
    delimiter: &str,
    marker: &str,
    after_marker: &[u8],
    start_at: &str,
) -> Option<Vec<u8>> {
    let start = if marker.is_empty() || marker < prefix {
        prefix.as_bytes().to_vec()
    } else if let Some(cp) = common_prefix(marker, prefix, delimiter) {
        successor(cp.as_bytes())?
    } else {
        [marker.as_bytes(), after_marker].concat()
    };
    Some(start.max(start_at.as_bytes().to_vec()))
}

fn keyed(bucket: String, key: String) -> Route {
    Route::Key { bucket, key: key.into_bytes() }
}

fn listing(bucket: String, start: Option<Vec<u8>>) -> Route {
    match start {
        Some(key) => Route::Key { bucket, key },
        // Nothing can follow: any group answers an empty page; group 0 always exists.
        None => Route::Directory,
    }
}

/// The route of a unary `Metadata` call: `path` is its gRPC path, `message` its encoded request
/// (without the gRPC frame header). An undecodable message goes to group 0, which refuses it as
/// it always did.
pub fn route(path: &str, message: &[u8]) -> Route {
    let Some(method) = path.strip_prefix(METADATA_API) else { return Route::Directory };
    fn decode<M: Message + Default>(message: &[u8]) -> Option<M> {
        M::decode(message).ok()
    }
    let route = match method {
        "PutObject" => {
            decode::<PutObjectRequest>(message).and_then(|r| r.record).map(|record| keyed(record.bucket, record.key))
        }
        "CreateUpload" => decode::<CreateUploadRequest>(message)
            .and_then(|r| r.template)
            .map(|template| keyed(template.bucket, template.key)),
        "GetObject" => decode::<GetObjectRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "DeleteObject" => decode::<DeleteObjectRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "PutObjectTags" => decode::<PutObjectTagsRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "UpdateObjectLock" => decode::<ObjectLockUpdateRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "SetObjectAcl" => decode::<AclSetObjectAclRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "GetUpload" => decode::<GetUploadRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "PutPart" => decode::<PutPartRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "ListParts" => decode::<ListPartsRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "CompleteUpload" => decode::<CompleteUploadRequest>(message).map(|r| keyed(r.bucket, r.key)),
        "AbortUpload" => decode::<AbortUploadRequest>(message).map(|r| keyed(r.bucket, r.key)),
        // Data is allocated in the group of the key it is written for (an older writer names no
        // key: group 0's, as before).
        "AllocateData" => {
            decode::<AllocateDataRequest>(message).filter(|r| !r.bucket.is_empty()).map(|r| keyed(r.bucket, r.key))
        }
        "AbandonData" => {
            decode::<AbandonDataRequest>(message).filter(|r| !r.bucket.is_empty()).map(|r| keyed(r.bucket, r.key))
        }
        "CompleteRepair" => decode::<CompleteRepairRequest>(message).map(|r| Route::Group(r.group)),
        // A writer's report of the shards it could not write names the key the data was
        // allocated for: only that key's group holds the data (and the other groups, which would
        // keep nothing, need not be up for the write to succeed).
        "ReportDamagedShards" => Some(match decode::<ReportDamagedShardsRequest>(message) {
            Some(r) if !r.bucket.is_empty() => keyed(r.bucket, r.key),
            _ => Route::Every,
        }),
        // Backwards listings (Swift's reverse=true) are not range-aware yet: group 0's.
        "ListObjects" => decode::<ListObjectsRequest>(message).filter(|r| !r.reverse).map(|r| {
            let start = listing_start(&r.prefix, &r.delimiter, &r.start_after, &[0], &r.start_at);
            listing(r.bucket, start)
        }),
        // With a version-id / upload-id marker the listing resumes inside the marker key's own
        // versions or uploads; without, after every one of them.
        "ListObjectVersions" => decode::<ListObjectVersionsRequest>(message).map(|r| {
            let after: &[u8] = if r.version_id_marker.is_empty() { &[0] } else { &[] };
            let start = listing_start(&r.prefix, &r.delimiter, &r.key_marker, after, &r.start_at);
            listing(r.bucket, start)
        }),
        "ListUploads" => decode::<ListUploadsRequest>(message).map(|r| {
            let after: &[u8] = if r.upload_id_marker.is_empty() { &[0] } else { &[] };
            let start = listing_start(&r.prefix, &r.delimiter, &r.key_marker, after, &r.start_at);
            listing(r.bucket, start)
        }),
        _ => None,
    };
    route.unwrap_or(Route::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::metadata::{KeyBound, ObjectRecord, RangeGroupEntry};

    fn entry(group: u64, start: (&str, &str), end: (&str, &str)) -> RangeGroupEntry {
        RangeGroupEntry {
            group,
            range: Some(KeyRange {
                start: Some(KeyBound { bucket: start.0.into(), key: start.1.into() }),
                end: Some(KeyBound { bucket: end.0.into(), key: end.1.into() }),
                epoch: 1,
            }),
            replicas: vec![format!("http://g{group}")],
        }
    }

    fn table() -> RangeTable {
        // Group 2 listed first: the table sorts by start.
        RangeTable::from_pb(RangeTableResponse {
            groups: vec![
                entry(2, ("b", "m"), ("b", "t")),
                entry(1, ("b", "d"), ("b", "m")),
                entry(3, ("x", ""), ("", "")),
            ],
        })
    }

    #[test]
    fn lookup_finds_the_owner_or_group_0() {
        let t = table();
        let owner = |b: &str, k: &str| t.owner(b.as_bytes(), k.as_bytes());
        assert_eq!(owner("b", "a"), 0, "before every range");
        assert_eq!(owner("b", "d"), 1, "starts are included");
        assert_eq!(owner("b", "l/zz"), 1);
        assert_eq!(owner("b", "m"), 2, "ends are excluded");
        assert_eq!(owner("b", "t"), 0, "the gap after group 2");
        assert_eq!(owner("c", ""), 0);
        assert_eq!(owner("x", ""), 3);
        assert_eq!(owner("zzz", "k"), 3, "an empty end is the end of the key space");
        assert_eq!(owner("a", "z"), 0);
        assert_eq!(t.replicas(2), Some(&["http://g2".to_string()][..]));
        assert!(RangeTable::default().is_empty());
        assert_eq!(RangeTable::default().owner(b"b", b"k"), 0);
    }

    #[test]
    fn listing_starts_as_the_service_scans() {
        // No marker, or one before the prefix: the prefix.
        assert_eq!(listing_start("p/", "/", "", &[0], ""), Some(b"p/".to_vec()));
        assert_eq!(listing_start("p/", "/", "a", &[0], ""), Some(b"p/".to_vec()));
        // A key: just after it.
        assert_eq!(listing_start("", "", "k", &[0], ""), Some(b"k\0".to_vec()));
        // A common prefix (or a key inside one): past every key of the prefix.
        assert_eq!(listing_start("", "/", "p/", &[0], ""), Some(b"p0".to_vec()));
        assert_eq!(listing_start("", "/", "p/x", &[0], ""), Some(b"p0".to_vec()));
        assert_eq!(listing_start("a/", "/", "a/b/c", &[0], ""), Some(b"a/b0".to_vec()));
        // start_at wins when later.
        assert_eq!(listing_start("", "/", "p/", &[0], "q"), Some(b"q".to_vec()));
        assert_eq!(listing_start("", "/", "p/", &[0], "p/5"), Some(b"p0".to_vec()));
        assert_eq!(successor(&[0xff, 0xff]), None);
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
    }

    fn encoded<M: Message>(m: &M) -> Vec<u8> {
        m.encode_to_vec()
    }

    fn path(method: &str) -> String {
        format!("{METADATA_API}{method}")
    }

    #[test]
    fn routes_per_method() {
        let key = |b: &str, k: &str| Route::Key { bucket: b.into(), key: k.as_bytes().to_vec() };
        let record = ObjectRecord { bucket: "b".into(), key: "k".into(), ..Default::default() };
        let put = PutObjectRequest { record: Some(record.clone()), ..Default::default() };
        assert_eq!(route(&path("PutObject"), &encoded(&put)), key("b", "k"));
        let upload = CreateUploadRequest { template: Some(record) };
        assert_eq!(route(&path("CreateUpload"), &encoded(&upload)), key("b", "k"));
        let get = GetObjectRequest { bucket: "b".into(), key: "g".into(), ..Default::default() };
        assert_eq!(route(&path("GetObject"), &encoded(&get)), key("b", "g"));
        let part = PutPartRequest { bucket: "b".into(), key: "p".into(), ..Default::default() };
        assert_eq!(route(&path("PutPart"), &encoded(&part)), key("b", "p"));
        let acl = AclSetObjectAclRequest { bucket: "b".into(), key: "a".into(), ..Default::default() };
        assert_eq!(route(&path("SetObjectAcl"), &encoded(&acl)), key("b", "a"));
        let lock = ObjectLockUpdateRequest { bucket: "b".into(), key: "l".into(), ..Default::default() };
        assert_eq!(route(&path("UpdateObjectLock"), &encoded(&lock)), key("b", "l"));
        let tags = PutObjectTagsRequest { bucket: "b".into(), key: "t".into(), ..Default::default() };
        assert_eq!(route(&path("PutObjectTags"), &encoded(&tags)), key("b", "t"));
        for method in ["DeleteObject", "GetUpload", "ListParts", "CompleteUpload", "AbortUpload"] {
            // These share field numbers 1 (bucket) and 2 (key).
            let message = GetUploadRequest { bucket: "b".into(), key: method.into(), upload_id: "u".into() };
            assert_eq!(route(&path(method), &encoded(&message)), key("b", method), "{method}");
        }
        let allocate = AllocateDataRequest { bucket: "b".into(), key: "d".into(), ..Default::default() };
        assert_eq!(route(&path("AllocateData"), &encoded(&allocate)), key("b", "d"));
        let unkeyed = AllocateDataRequest { data_shards: 4, ..Default::default() };
        assert_eq!(route(&path("AllocateData"), &encoded(&unkeyed)), Route::Directory, "an older writer's");
        let abandon = AbandonDataRequest { intent: vec![1], bucket: "b".into(), key: "d".into() };
        assert_eq!(route(&path("AbandonData"), &encoded(&abandon)), key("b", "d"));
        let unkeyed = AbandonDataRequest { intent: vec![1], ..Default::default() };
        assert_eq!(route(&path("AbandonData"), &encoded(&unkeyed)), Route::Directory);
        let repaired = CompleteRepairRequest { group: 2, ..Default::default() };
        assert_eq!(route(&path("CompleteRepair"), &encoded(&repaired)), Route::Group(2));
        assert_eq!(table().group_of(&Route::Group(2)), 2);
        let report = ReportDamagedShardsRequest::default();
        assert_eq!(route(&path("ReportDamagedShards"), &encoded(&report)), Route::Every);
        let written = ReportDamagedShardsRequest { bucket: "b".into(), key: "w".into(), ..Default::default() };
        assert_eq!(route(&path("ReportDamagedShards"), &encoded(&written)), key("b", "w"));
        assert_eq!(table().groups(), [0, 1, 2, 3]);
        let list = ListObjectsRequest {
            bucket: "b".into(),
            delimiter: "/".into(),
            start_after: "p/".into(),
            max_keys: 5,
            ..Default::default()
        };
        assert_eq!(route(&path("ListObjects"), &encoded(&list)), key("b", "p0"));
        let reverse = ListObjectsRequest { reverse: true, ..list };
        assert_eq!(route(&path("ListObjects"), &encoded(&reverse)), Route::Directory);
        let versions = ListObjectVersionsRequest { bucket: "b".into(), key_marker: "k".into(), ..Default::default() };
        assert_eq!(route(&path("ListObjectVersions"), &encoded(&versions)), key("b", "k\0"));
        let uploads = ListUploadsRequest {
            bucket: "b".into(),
            key_marker: "k".into(),
            upload_id_marker: "u".into(),
            ..Default::default()
        };
        assert_eq!(route(&path("ListUploads"), &encoded(&uploads)), key("b", "k"));
        let resumed = ListUploadsRequest { start_at: "m".into(), ..uploads };
        assert_eq!(route(&path("ListUploads"), &encoded(&resumed)), key("b", "m"));
        assert_eq!(route(&path("CreateBucket"), &[]), Route::Directory);
        assert_eq!(route(&path("GetObject"), &[0xff, 0xff]), Route::Directory, "undecodable");
        assert_eq!(route("/coffer.metadata.v1.MetadataRaft/Status", &[]), Route::Directory);
    }
}
