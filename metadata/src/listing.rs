//! ListObjects, ListUploads and ListParts as range scans.
//!
//! A listing never reads more than it returns plus one entry: it seeks to its start, and after
//! folding a key into a common prefix it seeks past every key of that prefix.

use coffer_proto::pb::metadata::{
    ListObjectsRequest, ListObjectsResponse, ListPartsRequest, ListPartsResponse, ListUploadsRequest,
    ListUploadsResponse, ObjectRecord, ObjectSummary, PartRecord, UploadRecord,
};

use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store, bounded, decode};

/// S3's cap on one page of any listing.
pub const MAX_PAGE: u32 = 1000;

/// The common prefix `key` folds into: the prefix, then up to and including the first delimiter.
pub(crate) fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Where a listing of `bucket`'s keys under `prefix` that resumes after `marker` starts: `None`
/// when nothing can follow. A marker inside a common prefix skips the whole prefix, since the
/// prefix was already returned.
fn start_key(base: &[u8], prefix: &str, delimiter: &str, marker: &str, after_marker: &[u8]) -> Option<Vec<u8>> {
    let join = |tail: &[u8]| [base, tail].concat();
    if marker.is_empty() || marker < prefix {
        return Some(join(prefix.as_bytes()));
    }
    if let Some(cp) = common_prefix(marker, prefix, delimiter) {
        return keys::successor(&join(cp.as_bytes()));
    }
    Some([join(marker.as_bytes()).as_slice(), after_marker].concat())
}

/// Where a listing of `bucket` from `start` (a database key: `base` then the key) must stop in
/// this group: the key where the next group's part of the key space starts, and it as a database
/// key; `None` when this group owns the rest of the bucket (see `range::listing_end`). The page
/// then says where the next group's part starts (`resume_at`).
fn group_end(
    store: &Store,
    bucket: &str,
    base: &[u8],
    start: &[u8],
) -> Result<Option<(String, Vec<u8>)>, MetadataError> {
    Ok(match crate::range::listing_end(store, bucket, &start[base.len()..])? {
        Some((end_bucket, key)) if end_bucket == bucket => {
            let db_key = [base, key.as_bytes()].concat();
            Some((key, db_key))
        }
        _ => None,
    })
}

fn check_no_nul(fields: &[(&str, &str)]) -> Result<(), MetadataError> {
    match fields.iter().find(|(_, value)| value.contains('\0')) {
        Some((name, _)) => Err(MetadataError::InvalidArgument(format!("{name} contains NUL"))),
        None => Ok(()),
    }
}

fn key_str(cf: Cf, key: &[u8]) -> Result<&str, MetadataError> {
    std::str::from_utf8(key).map_err(|e| MetadataError::corrupt(format!("key in {}", cf.name()), e))
}

/// What a listing shows of one object.
fn summary(key: &str, record: ObjectRecord) -> ObjectSummary {
    ObjectSummary {
        key: key.to_string(),
        size: record.size,
        etag: record.etag,
        last_modified_unix_ms: record.last_modified_unix_ms,
        storage_class: record.storage_class,
        content_type: record.content_type,
    }
}

pub fn list_objects(store: &Store, req: &ListObjectsRequest) -> Result<ListObjectsResponse, MetadataError> {
    let (prefix, delimiter, start_after) = (req.prefix.as_str(), req.delimiter.as_str(), req.start_after.as_str());
    check_no_nul(&[
        ("prefix", prefix),
        ("delimiter", delimiter),
        ("start-after", start_after),
        ("start-at", &req.start_at),
    ])?;
    store.bucket(&req.bucket)?;
    if req.reverse {
        return list_objects_reverse(store, req);
    }
    let mut out = ListObjectsResponse::default();
    let limit = req.max_keys.min(MAX_PAGE) as usize;
    let base = keys::bucket_prefix(&req.bucket);
    // Keys hold no NUL, so appending one gives the first key after `start_after` itself.
    let Some(start) = start_key(&base, prefix, delimiter, start_after, &[keys::SEP]) else {
        return Ok(out);
    };
    // A page resuming where another group's part of the key space ended (its `resume_at`).
    let start = start.max([base.as_slice(), req.start_at.as_bytes()].concat());
    if limit == 0 {
        return Ok(out);
    }
    let until = group_end(store, &req.bucket, &base, &start)?;
    let range = [base.as_slice(), prefix.as_bytes()].concat();
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Objects)?, bounded(&range));
    iter.seek(&start);
    // Whether the page stopped for its size (or because nothing can follow) rather than at the
    // end of the keys this group holds.
    let mut full = false;
    while let Some((db_key, value)) = iter.item() {
        if !db_key.starts_with(&range) || until.as_ref().is_some_and(|(_, until)| db_key >= until.as_slice()) {
            break;
        }
        let key = key_str(Cf::Objects, &db_key[base.len()..])?;
        if out.objects.len() + out.common_prefixes.len() == limit {
            out.is_truncated = true;
            full = true;
            break;
        }
        if let Some(cp) = common_prefix(key, prefix, delimiter) {
            out.common_prefixes.push(cp.to_string());
            out.next_marker = cp.to_string();
            match keys::successor(&[base.as_slice(), cp.as_bytes()].concat()) {
                Some(next) => iter.seek(next),
                None => {
                    full = true;
                    break;
                }
            }
            continue;
        }
        out.objects.push(summary(key, decode(Cf::Objects, db_key, value)?));
        out.next_marker = key.to_string();
        iter.next();
    }
    iter.status().map_err(MetadataError::db("listing objects"))?;
    // The listing goes on past this group's part: the next group owns what follows.
    if let Some((key, until)) = until
        && !full
        && until.starts_with(&range)
    {
        out.is_truncated = true;
        out.resume_at = key;
    }
    Ok(out)
}

/// [`list_objects`] from the last key backwards: keys below `start_after` (all when empty), each
/// common prefix once, where its last key is met.
fn list_objects_reverse(store: &Store, req: &ListObjectsRequest) -> Result<ListObjectsResponse, MetadataError> {
    let (prefix, delimiter, before) = (req.prefix.as_str(), req.delimiter.as_str(), req.start_after.as_str());
    let mut out = ListObjectsResponse::default();
    let limit = req.max_keys.min(MAX_PAGE) as usize;
    if limit == 0 {
        return Ok(out);
    }
    let base = keys::bucket_prefix(&req.bucket);
    let range = [base.as_slice(), prefix.as_bytes()].concat();
    let join = |tail: &[u8]| [base.as_slice(), tail].concat();
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Objects)?, bounded(&range));
    // Positions the iterator on the last key strictly below `bound` (or the last of the range).
    let seek_below =
        |iter: &mut rocksdb::DBRawIteratorWithThreadMode<'_, rocksdb::DB>, bound: Option<&[u8]>| match bound {
            Some(bound) => {
                iter.seek_for_prev(bound);
                if iter.key() == Some(bound) {
                    iter.prev();
                }
            }
            None => iter.seek_to_last(),
        };
    // A marker inside a common prefix skips the rest of that prefix, which was already returned.
    let first_bound = match common_prefix(before, prefix, delimiter) {
        _ if before.is_empty() => None,
        Some(cp) => Some(join(cp.as_bytes())),
        None => Some(join(before.as_bytes())),
    };
    seek_below(&mut iter, first_bound.as_deref());
    while let Some((db_key, value)) = iter.item() {
        if !db_key.starts_with(&range) {
            break;
        }
        let key = key_str(Cf::Objects, &db_key[base.len()..])?;
        if out.objects.len() + out.common_prefixes.len() == limit {
            out.is_truncated = true;
            break;
        }
        if let Some(cp) = common_prefix(key, prefix, delimiter) {
            out.common_prefixes.push(cp.to_string());
            out.next_marker = cp.to_string();
            let bound = join(cp.as_bytes());
            seek_below(&mut iter, Some(&bound));
            continue;
        }
        out.objects.push(summary(key, decode(Cf::Objects, db_key, value)?));
        out.next_marker = key.to_string();
        iter.prev();
    }
    iter.status().map_err(MetadataError::db("listing objects backwards"))?;
    Ok(out)
}

pub fn list_uploads(store: &Store, req: &ListUploadsRequest) -> Result<ListUploadsResponse, MetadataError> {
    let (prefix, delimiter) = (req.prefix.as_str(), req.delimiter.as_str());
    let (key_marker, upload_id_marker) = (req.key_marker.as_str(), req.upload_id_marker.as_str());
    check_no_nul(&[
        ("prefix", prefix),
        ("delimiter", delimiter),
        ("key-marker", key_marker),
        ("upload-id-marker", upload_id_marker),
        ("start-at", &req.start_at),
    ])?;
    store.bucket(&req.bucket)?;
    let mut out = ListUploadsResponse::default();
    let limit = req.max_uploads.min(MAX_PAGE) as usize;
    let base = keys::bucket_prefix(&req.bucket);
    // Without an upload-id-marker, every upload of the marker key is skipped (its keys all start
    // with `key 0x00`, so `key 0x01` follows them); with one, only those up to and including it.
    let after_marker = if upload_id_marker.is_empty() {
        vec![keys::SEP + 1]
    } else {
        [&[keys::SEP][..], upload_id_marker.as_bytes(), &[keys::SEP]].concat()
    };
    let Some(start) = start_key(&base, prefix, delimiter, key_marker, &after_marker) else {
        return Ok(out);
    };
    // As in `list_objects`: a page resuming at another group's range end, clamped to this group's.
    let start = start.max([base.as_slice(), req.start_at.as_bytes()].concat());
    if limit == 0 {
        return Ok(out);
    }
    let until = group_end(store, &req.bucket, &base, &start)?;
    let range = [base.as_slice(), prefix.as_bytes()].concat();
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Uploads)?, bounded(&range));
    iter.seek(&start);
    let mut full = false;
    while let Some((db_key, value)) = iter.item() {
        // An upload's database key is its object key's, then 0x00 and the id: it is past the
        // group's end exactly when its key is.
        if !db_key.starts_with(&range) || until.as_ref().is_some_and(|(_, until)| db_key >= until.as_slice()) {
            break;
        }
        let (key, upload_id) = keys::split_upload(&db_key[base.len()..])
            .ok_or_else(|| MetadataError::corrupt("upload key", "no separator before the upload id"))?;
        let key = key_str(Cf::Uploads, key)?;
        if out.uploads.len() + out.common_prefixes.len() == limit {
            out.is_truncated = true;
            full = true;
            break;
        }
        if let Some(cp) = common_prefix(key, prefix, delimiter) {
            out.common_prefixes.push(cp.to_string());
            out.next_key_marker = cp.to_string();
            out.next_upload_id_marker.clear();
            match keys::successor(&[base.as_slice(), cp.as_bytes()].concat()) {
                Some(next) => iter.seek(next),
                None => {
                    full = true;
                    break;
                }
            }
            continue;
        }
        out.next_key_marker = key.to_string();
        out.next_upload_id_marker = key_str(Cf::Uploads, upload_id)?.to_string();
        out.uploads.push(decode::<UploadRecord>(Cf::Uploads, db_key, value)?);
        iter.next();
    }
    iter.status().map_err(MetadataError::db("listing uploads"))?;
    if let Some((key, until)) = until
        && !full
        && until.starts_with(&range)
    {
        out.is_truncated = true;
        out.resume_at = key;
    }
    Ok(out)
}

pub fn list_parts(store: &Store, req: &ListPartsRequest) -> Result<ListPartsResponse, MetadataError> {
    let upload = store.upload(&req.bucket, &req.key, &req.upload_id)?;
    let mut out = ListPartsResponse { upload: Some(upload), ..Default::default() };
    let limit = req.max_parts.min(MAX_PAGE) as usize;
    let Some(first) = req.part_number_marker.checked_add(1) else {
        return Ok(out);
    };
    if limit == 0 {
        return Ok(out);
    }
    let range = keys::part_prefix(&req.upload_id);
    let mut iter = store.db().raw_iterator_cf_opt(store.cf(Cf::Parts)?, bounded(&range));
    iter.seek(keys::part(&req.upload_id, first));
    while let Some((db_key, value)) = iter.item() {
        if !db_key.starts_with(&range) {
            break;
        }
        if out.parts.len() == limit {
            out.is_truncated = true;
            break;
        }
        let part: PartRecord = decode(Cf::Parts, db_key, value)?;
        out.next_part_number_marker = part.part_number;
        out.parts.push(part);
        iter.next();
    }
    iter.status().map_err(MetadataError::db("listing parts"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use coffer_proto::pb::metadata::{ListObjectVersionsRequest, ListObjectVersionsResponse, Segment};

    use super::*;
    use crate::command::tests::{allocate, make_bucket, stamp, store};
    use crate::command::{Command, apply};

    fn put_keys<'a>(store: &Store, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            let record = ObjectRecord {
                bucket: "b".into(),
                key: key.into(),
                size: 1,
                segments: vec![Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() }],
                ..Default::default()
            };
            apply(
                store,
                Command::PutObject { record, intents: vec![], condition: Default::default(), stamp: stamp(1) },
            )
            .unwrap();
        }
    }

    fn list(store: &Store, prefix: &str, delimiter: &str, start_after: &str, max_keys: u32) -> ListObjectsResponse {
        let req = ListObjectsRequest {
            bucket: "b".into(),
            prefix: prefix.into(),
            delimiter: delimiter.into(),
            start_after: start_after.into(),
            max_keys,
            ..Default::default()
        };
        list_objects(store, &req).unwrap()
    }

    fn names(out: &ListObjectsResponse) -> (Vec<&str>, Vec<&str>) {
        (out.objects.iter().map(|o| o.key.as_str()).collect(), out.common_prefixes.iter().map(String::as_str).collect())
    }

    #[test]
    fn list_objects_cases() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        make_bucket(&store, "b2");
        put_keys(&store, ["a", "a/1", "a/2", "a/b/1", "ab", "b/1", "b/2", "c", "photos/2024/x.jpg", "photos/y.jpg"]);
        let other = ObjectRecord { bucket: "b2".into(), key: "a".into(), ..Default::default() };
        apply(
            &store,
            Command::PutObject { record: other, intents: vec![], condition: Default::default(), stamp: stamp(1) },
        )
        .unwrap();

        // (name, prefix, delimiter, start_after, max_keys, objects, common prefixes, truncated)
        type Case = (
            &'static str,
            &'static str,
            &'static str,
            &'static str,
            u32,
            &'static [&'static str],
            &'static [&'static str],
            bool,
        );
        #[rustfmt::skip]
        let cases: [Case; 15] = [
            ("everything", "", "", "", 1000,
                &["a", "a/1", "a/2", "a/b/1", "ab", "b/1", "b/2", "c", "photos/2024/x.jpg", "photos/y.jpg"], &[], false),
            ("prefix", "a/", "", "", 1000, &["a/1", "a/2", "a/b/1"], &[], false),
            ("delimiter", "", "/", "", 1000, &["a", "ab", "c"], &["a/", "b/", "photos/"], false),
            ("prefix and delimiter", "a/", "/", "", 1000, &["a/1", "a/2"], &["a/b/"], false),
            ("nested prefix", "photos/", "/", "", 1000, &["photos/y.jpg"], &["photos/2024/"], false),
            ("start after a key", "", "", "a/2", 3, &["a/b/1", "ab", "b/1"], &[], true),
            ("start after equals a common prefix", "", "/", "a/", 1000, &["ab", "c"], &["b/", "photos/"], false),
            ("start after inside a common prefix", "", "/", "a/1", 1000, &["ab", "c"], &["b/", "photos/"], false),
            ("start after before the prefix", "b/", "", "a", 1000, &["b/1", "b/2"], &[], false),
            ("start after past the prefix", "a/", "", "b", 1000, &[], &[], false),
            ("prefixes count toward max", "", "/", "", 2, &["a"], &["a/"], true),
            ("exactly max is not truncated", "a/", "", "", 3, &["a/1", "a/2", "a/b/1"], &[], false),
            ("max zero", "", "", "", 0, &[], &[], false),
            ("multi-byte delimiter", "", "/2", "", 1000,
                &["a", "a/1", "a/b/1", "ab", "b/1", "c", "photos/y.jpg"], &["a/2", "b/2", "photos/2"], false),
            ("no match", "zzz", "/", "", 1000, &[], &[], false),
        ];
        for (name, prefix, delimiter, start_after, max, want_objects, want_prefixes, truncated) in cases {
            let out = list(&store, prefix, delimiter, start_after, max);
            let (objects, prefixes) = names(&out);
            assert_eq!(objects, want_objects, "{name}");
            assert_eq!(prefixes, want_prefixes, "{name}");
            assert_eq!(out.is_truncated, truncated, "{name}");
        }
        let next = list(&store, "", "/", "", 2).next_marker;
        assert_eq!(next, "a/", "the marker of a page ending in a common prefix is that prefix");
    }

    #[test]
    fn list_objects_of_a_missing_bucket_is_no_such_bucket() {
        let (_dir, store) = store();
        let req = ListObjectsRequest { bucket: "nope".into(), max_keys: 10, ..Default::default() };
        assert!(matches!(list_objects(&store, &req), Err(MetadataError::NoSuchBucket(_))));
    }

    /// Listing semantics written the slow, obvious way.
    fn reference(keys: &BTreeSet<String>, prefix: &str, delimiter: &str, start_after: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in keys.iter().filter(|k| k.starts_with(prefix)) {
            let entry = match common_prefix(key, prefix, delimiter) {
                Some(cp) => cp.to_string(),
                None => key.clone(),
            };
            if entry.as_str() > start_after && out.last() != Some(&entry) {
                out.push(entry);
            }
        }
        out
    }

    #[test]
    fn pagination_reproduces_the_full_listing() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        let mut all = BTreeSet::new();
        let parts = ["a", "b", "a/", "é", "x-", "/", "zz"];
        for i in 0..parts.len() {
            for j in 0..parts.len() {
                for k in 0..3 {
                    all.insert(format!("{}{}{}", parts[i], parts[j], parts[(i + j + k) % parts.len()]));
                }
            }
        }
        put_keys(&store, all.iter().map(String::as_str));
        for prefix in ["", "a", "a/", "é", "zzz"] {
            for delimiter in ["", "/", "-", "a/"] {
                let expected = reference(&all, prefix, delimiter, "");
                let full = list(&store, prefix, delimiter, "", MAX_PAGE);
                assert!(!full.is_truncated);
                let (objects, prefixes) = names(&full);
                let mut merged: Vec<&str> = objects.into_iter().chain(prefixes).collect();
                merged.sort_unstable();
                assert_eq!(merged, expected, "prefix {prefix:?} delimiter {delimiter:?}");

                for page_size in [1, 2, 7] {
                    let mut paged = Vec::new();
                    let mut marker = String::new();
                    loop {
                        let page = list(&store, prefix, delimiter, &marker, page_size);
                        let (objects, prefixes) = names(&page);
                        let mut entries: Vec<String> =
                            objects.into_iter().chain(prefixes).map(str::to_string).collect();
                        entries.sort_unstable();
                        assert!(entries.len() <= page_size as usize);
                        if let Some(last) = entries.last() {
                            assert_eq!(&page.next_marker, last);
                        }
                        paged.extend(entries);
                        if !page.is_truncated {
                            break;
                        }
                        marker = page.next_marker;
                    }
                    assert_eq!(paged, expected, "prefix {prefix:?} delimiter {delimiter:?} page {page_size}");
                }
                // Backwards, page by page, is the same listing reversed.
                for page_size in [1, 3, MAX_PAGE] {
                    let mut backwards = Vec::new();
                    let mut marker = String::new();
                    loop {
                        let req = ListObjectsRequest {
                            bucket: "b".into(),
                            prefix: prefix.into(),
                            delimiter: delimiter.into(),
                            start_after: marker.clone(),
                            max_keys: page_size,
                            reverse: true,
                            ..Default::default()
                        };
                        let page = list_objects(&store, &req).unwrap();
                        let (objects, prefixes) = names(&page);
                        let mut entries: Vec<String> =
                            objects.into_iter().chain(prefixes).map(str::to_string).collect();
                        entries.sort_unstable_by(|a, b| b.cmp(a));
                        backwards.extend(entries);
                        if !page.is_truncated {
                            break;
                        }
                        marker = page.next_marker;
                    }
                    let reversed: Vec<String> = expected.iter().rev().cloned().collect();
                    assert_eq!(
                        backwards, reversed,
                        "reverse prefix {prefix:?} delimiter {delimiter:?} page {page_size}"
                    );
                }
                for start_after in ["a", "a/", "a/a", "b", "é/"] {
                    let page = list(&store, prefix, delimiter, start_after, MAX_PAGE);
                    let (objects, prefixes) = names(&page);
                    let mut merged: Vec<&str> = objects.into_iter().chain(prefixes).collect();
                    merged.sort_unstable();
                    let skipped_prefix = common_prefix(start_after, prefix, delimiter);
                    let want: Vec<String> = reference(&all, prefix, delimiter, start_after)
                        .into_iter()
                        .filter(|e| Some(e.as_str()) != skipped_prefix)
                        .collect();
                    assert_eq!(merged, want, "prefix {prefix:?} delimiter {delimiter:?} after {start_after:?}");
                }
            }
        }
    }

    /// Three groups splitting bucket "b": group 0 keeps [.., "d") and ["t", ..); range group 1
    /// owns ["d", "m"), range group 2 ["m", "t"). Returns the stores (index = group) and the table
    /// a client would route by.
    fn three_groups() -> (Vec<(tempfile::TempDir, Store)>, coffer_proto::range_table::RangeTable) {
        use crate::range::{Descriptor, Range};
        use coffer_proto::pb::metadata::{RangeGroupEntry, RangeTableResponse};
        let range = |start: &str, end: &str| Range {
            start_bucket: "b".into(),
            start_key: start.into(),
            end_bucket: "b".into(),
            end_key: end.into(),
        };
        let ranges = [range("d", "m"), range("m", "t")];
        let stores: Vec<_> = (0..3).map(|_| store()).collect();
        let mut entries = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            let group = i as u64 + 1;
            let create = Command::CreateRangeGroup { group, range: r.clone(), voters: vec![(1, "http://a".into())] };
            apply(&stores[0].1, create).unwrap();
            stores[i + 1].1.set_range(Descriptor { range: r.clone(), epoch: 1 }).unwrap();
            entries.push(RangeGroupEntry { group, range: Some(r.to_pb(1)), replicas: vec![] });
        }
        for (_, store) in &stores {
            make_bucket(store, "b");
        }
        (stores, coffer_proto::range_table::RangeTable::from_pb(RangeTableResponse { groups: entries }))
    }

    /// Where a routed client sends a forward listing (see `coffer_proto::range_table::route`).
    fn owner(table: &coffer_proto::range_table::RangeTable, req: &ListObjectsRequest) -> usize {
        let request = coffer_proto::Message::encode_to_vec(req);
        let route = coffer_proto::range_table::route("/coffer.metadata.v1.Metadata/ListObjects", &request);
        table.group_of(&route) as usize
    }

    #[test]
    fn listings_stop_at_the_end_of_their_groups_part() {
        let (stores, table) = three_groups();
        put_keys(&stores[0].1, ["a", "c/1", "t", "u/1"]);
        put_keys(&stores[1].1, ["d", "e/1", "l"]);
        let req = |start_after: &str, start_at: &str| ListObjectsRequest {
            bucket: "b".into(),
            start_after: start_after.into(),
            start_at: start_at.into(),
            max_keys: 100,
            ..Default::default()
        };
        // Where a routed client sends each page below.
        let routed: Vec<usize> =
            [req("", ""), req("c/1", "d"), req("l", "m"), req("l", "t")].iter().map(|r| owner(&table, r)).collect();
        assert_eq!(routed, [0, 1, 2, 0]);
        // Group 0 stops where group 1 starts, and says so.
        let page = list_objects(&stores[0].1, &req("", "")).unwrap();
        assert_eq!(names(&page).0, ["a", "c/1"]);
        assert!(page.is_truncated);
        assert_eq!((page.next_marker.as_str(), page.resume_at.as_str()), ("c/1", "d"));
        // Group 1 lists its range and hands on to group 2 (empty here), which hands on to group 0.
        let page = list_objects(&stores[1].1, &req("c/1", "d")).unwrap();
        assert_eq!((names(&page).0, page.resume_at.as_str()), (vec!["d", "e/1", "l"], "m"));
        let page = list_objects(&stores[2].1, &req("l", "m")).unwrap();
        assert!(page.objects.is_empty() && page.is_truncated && page.next_marker.is_empty());
        assert_eq!(page.resume_at, "t");
        let page = list_objects(&stores[0].1, &req("l", "t")).unwrap();
        assert_eq!(names(&page).0, ["t", "u/1"]);
        assert!(!page.is_truncated && page.resume_at.is_empty(), "group 0 owns the rest");
        // A listing that starts outside the answering group's part: the caller's table is stale.
        for (group, start_at) in [(1, "a"), (1, "m"), (0, "e"), (2, "")] {
            let refused = list_objects(&stores[group].1, &req("", start_at)).unwrap_err();
            assert_eq!(refused.code(), coffer_proto::ErrorCode::WrongRange, "group {group} from {start_at:?}");
        }
        // A prefix that ends before the range end: no hand-on.
        let under = ListObjectsRequest { prefix: "e/".into(), ..req("", "") };
        let page = list_objects(&stores[1].1, &under).unwrap();
        assert!(!page.is_truncated && page.resume_at.is_empty());
        // A page that fills up stops for its size, not at the range end.
        let small = ListObjectsRequest { max_keys: 1, ..req("", "") };
        let page = list_objects(&stores[0].1, &small).unwrap();
        assert!(page.is_truncated && page.resume_at.is_empty());
        // Full, with the next key past the end: the end is named too (the next page starts there).
        let small = ListObjectsRequest { max_keys: 2, ..req("", "") };
        let page = list_objects(&stores[0].1, &small).unwrap();
        assert_eq!((page.next_marker.as_str(), page.resume_at.as_str()), ("c/1", "d"));
    }

    #[test]
    fn pagination_across_groups_reproduces_the_full_listing() {
        let (stores, table) = three_groups();
        let mut all = BTreeSet::new();
        // Prefixes straddling both range starts ("c/…" to "e/…" around "d", "l…"/"m…" around "m")
        // and keys on the bounds themselves.
        for stem in ["a", "c", "d", "d/", "l", "l/", "m", "m/", "s", "t", "t/", "z"] {
            for tail in ["", "/1", "/2/x", "0", "a/b"] {
                all.insert(format!("{stem}{tail}"));
            }
        }
        for (i, key) in ["c/zz", "d/0", "l/zz", "m/0"].iter().enumerate() {
            all.insert(format!("{key}{i}"));
        }
        for key in &all {
            let group = table.owner(b"b", key.as_bytes()) as usize;
            put_keys(&stores[group].1, [key.as_str()]);
        }
        for prefix in ["", "c", "d", "l", "m/", "zz"] {
            for delimiter in ["", "/", "0"] {
                let expected = reference(&all, prefix, delimiter, "");
                for page_size in [1, 2, 5, MAX_PAGE] {
                    let mut paged: Vec<String> = Vec::new();
                    let (mut marker, mut start_at) = (String::new(), String::new());
                    let mut calls = 0;
                    loop {
                        calls += 1;
                        assert!(calls < 10 * all.len(), "no progress");
                        let req = ListObjectsRequest {
                            bucket: "b".into(),
                            prefix: prefix.into(),
                            delimiter: delimiter.into(),
                            start_after: marker.clone(),
                            start_at: start_at.clone(),
                            max_keys: page_size,
                            ..Default::default()
                        };
                        let page = list_objects(&stores[owner(&table, &req)].1, &req).unwrap();
                        let (objects, prefixes) = names(&page);
                        let mut entries: Vec<String> =
                            objects.into_iter().chain(prefixes).map(str::to_string).collect();
                        entries.sort_unstable();
                        paged.extend(entries);
                        if !page.is_truncated {
                            break;
                        }
                        if !page.next_marker.is_empty() {
                            marker = page.next_marker;
                        }
                        start_at = page.resume_at;
                    }
                    assert_eq!(paged, expected, "prefix {prefix:?} delimiter {delimiter:?} page {page_size}");
                }
            }
        }
    }

    /// Pages through a listing as the gateway does — each page from the group owning its start,
    /// filled across range ends by `coffer_proto::group_router::list_across_ranges`, the next one
    /// resuming after the last entry — and returns the entries of each page.
    fn page_through<Q, P>(
        table: &coffer_proto::range_table::RangeTable,
        method: &str,
        first: Q,
        list: impl Fn(usize, &Q) -> Result<P, MetadataError>,
        entries: impl Fn(&P) -> Vec<String>,
        next: impl Fn(&Q, &P) -> Option<Q>,
    ) -> Vec<Vec<String>>
    where
        Q: coffer_proto::group_router::RangeListing<Page = P> + coffer_proto::Message,
    {
        let routed = |req: &Q| -> Result<P, tonic::Status> {
            let route = coffer_proto::range_table::route(method, &req.encode_to_vec());
            list(table.group_of(&route) as usize, req).map_err(tonic::Status::from)
        };
        let mut pages = Vec::new();
        let mut request = first;
        for _ in 0..10_000 {
            let page = routed(&request).unwrap();
            let page = futures::executor::block_on(coffer_proto::group_router::list_across_ranges(
                request.clone(),
                page,
                |next| std::future::ready(routed(&next)),
            ))
            .unwrap();
            pages.push(entries(&page));
            match next(&request, &page) {
                Some(following) => request = following,
                None => return pages,
            }
        }
        panic!("the listing never ends");
    }

    #[test]
    fn versions_and_uploads_page_across_groups() {
        let (stores, table) = three_groups();
        let mut all = BTreeSet::new();
        for stem in ["a", "c/", "d", "l/", "m", "m/", "s/", "t", "z"] {
            for tail in ["", "1", "2/x", "3"] {
                all.insert(format!("{stem}{tail}"));
            }
        }
        for key in &all {
            let group = table.owner(b"b", key.as_bytes()) as usize;
            // Two uploads per key; objects written before versioning list as "null" versions.
            put_keys(&stores[group].1, [key.as_str()]);
            start_upload(&stores[group].1, key, &format!("{key}#1"));
            start_upload(&stores[group].1, key, &format!("{key}#2"));
        }
        for delimiter in ["", "/"] {
            let folded = |key: &str| match common_prefix(key, "", delimiter) {
                Some(cp) => cp.to_string(),
                None => key.to_string(),
            };
            let mut want_versions: Vec<String> = all.iter().map(|k| folded(k)).collect();
            want_versions.dedup();
            let mut want_uploads: Vec<String> = Vec::new();
            for key in &all {
                match common_prefix(key, "", delimiter) {
                    Some(cp) if want_uploads.last().map(String::as_str) == Some(cp) => {}
                    Some(cp) => want_uploads.push(cp.to_string()),
                    None => want_uploads.extend([format!("{key}#1"), format!("{key}#2")]),
                }
            }
            for page_size in [1u32, 3, 1000] {
                let first = ListObjectVersionsRequest {
                    bucket: "b".into(),
                    delimiter: delimiter.into(),
                    max_keys: page_size,
                    ..Default::default()
                };
                let pages = page_through(
                    &table,
                    "/coffer.metadata.v1.Metadata/ListObjectVersions",
                    first,
                    |group, req| crate::versions::list(&stores[group].1, req),
                    |page: &ListObjectVersionsResponse| {
                        let mut entries: Vec<String> = page
                            .versions
                            .iter()
                            .map(|v| v.record.as_ref().map(|r| r.key.clone()).unwrap_or_default())
                            .chain(page.common_prefixes.iter().cloned())
                            .collect();
                        entries.sort();
                        entries
                    },
                    |req, page| {
                        page.is_truncated.then(|| ListObjectVersionsRequest {
                            key_marker: page.next_key_marker.clone(),
                            version_id_marker: page.next_version_id_marker.clone(),
                            ..req.clone()
                        })
                    },
                );
                for page in &pages[..pages.len() - 1] {
                    assert_eq!(page.len(), page_size as usize, "versions: truncated pages are full");
                }
                let got: Vec<String> = pages.concat();
                assert_eq!(got, want_versions, "versions, delimiter {delimiter:?}, pages of {page_size}");

                let first = ListUploadsRequest {
                    bucket: "b".into(),
                    delimiter: delimiter.into(),
                    max_uploads: page_size,
                    ..Default::default()
                };
                let pages = page_through(
                    &table,
                    "/coffer.metadata.v1.Metadata/ListUploads",
                    first,
                    |group, req| list_uploads(&stores[group].1, req),
                    |page: &ListUploadsResponse| {
                        let mut entries: Vec<String> = page
                            .uploads
                            .iter()
                            .map(|u| u.upload_id.clone())
                            .chain(page.common_prefixes.iter().cloned())
                            .collect();
                        entries.sort();
                        entries
                    },
                    |req, page| {
                        page.is_truncated.then(|| ListUploadsRequest {
                            key_marker: page.next_key_marker.clone(),
                            upload_id_marker: page.next_upload_id_marker.clone(),
                            ..req.clone()
                        })
                    },
                );
                for page in &pages[..pages.len() - 1] {
                    assert_eq!(page.len(), page_size as usize, "uploads: truncated pages are full");
                }
                let got: Vec<String> = pages.concat();
                assert_eq!(got, want_uploads, "uploads, delimiter {delimiter:?}, pages of {page_size}");
            }
        }
    }

    fn start_upload(store: &Store, key: &str, id: &str) {
        let upload = UploadRecord { upload_id: id.into(), bucket: "b".into(), key: key.into(), ..Default::default() };
        apply(store, Command::CreateUpload { upload }).unwrap();
    }

    fn uploads(
        store: &Store,
        prefix: &str,
        delimiter: &str,
        key_marker: &str,
        id_marker: &str,
        max: u32,
    ) -> ListUploadsResponse {
        let req = ListUploadsRequest {
            bucket: "b".into(),
            prefix: prefix.into(),
            delimiter: delimiter.into(),
            key_marker: key_marker.into(),
            upload_id_marker: id_marker.into(),
            max_uploads: max,
            ..Default::default()
        };
        list_uploads(store, &req).unwrap()
    }

    fn upload_names(out: &ListUploadsResponse) -> Vec<String> {
        out.uploads.iter().map(|u| format!("{}#{}", u.key, u.upload_id)).collect()
    }

    #[test]
    fn list_uploads_cases() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        for (key, id) in [("a", "1"), ("a", "2"), ("a/x", "3"), ("a/y", "4"), ("ab", "5"), ("b", "6")] {
            start_upload(&store, key, id);
        }
        let all = uploads(&store, "", "", "", "", 1000);
        assert_eq!(upload_names(&all), ["a#1", "a#2", "a/x#3", "a/y#4", "ab#5", "b#6"]);

        let folded = uploads(&store, "", "/", "", "", 1000);
        assert_eq!(upload_names(&folded), ["a#1", "a#2", "ab#5", "b#6"]);
        assert_eq!(folded.common_prefixes, ["a/"]);

        let after_key = uploads(&store, "", "", "a", "", 1000);
        assert_eq!(upload_names(&after_key), ["a/x#3", "a/y#4", "ab#5", "b#6"]);
        let after_id = uploads(&store, "", "", "a", "1", 1000);
        assert_eq!(upload_names(&after_id), ["a#2", "a/x#3", "a/y#4", "ab#5", "b#6"]);
        let inside_prefix = uploads(&store, "", "/", "a/x", "", 1000);
        assert_eq!(upload_names(&inside_prefix), ["ab#5", "b#6"]);
        assert!(inside_prefix.common_prefixes.is_empty());

        let page = uploads(&store, "", "", "", "", 2);
        assert!(page.is_truncated);
        assert_eq!((page.next_key_marker.as_str(), page.next_upload_id_marker.as_str()), ("a", "2"));
        assert!(!uploads(&store, "", "", "", "", 0).is_truncated);

        // Paging through reproduces the full listing, whatever the page size.
        for (delimiter, page_size) in [("", 1), ("/", 1), ("", 4), ("/", 3)] {
            let full = uploads(&store, "", delimiter, "", "", 1000);
            let mut entries = Vec::new();
            let (mut key_marker, mut id_marker) = (String::new(), String::new());
            loop {
                let page = uploads(&store, "", delimiter, &key_marker, &id_marker, page_size);
                entries.extend(upload_names(&page));
                entries.extend(page.common_prefixes.iter().cloned());
                if !page.is_truncated {
                    break;
                }
                (key_marker, id_marker) = (page.next_key_marker, page.next_upload_id_marker);
            }
            let mut expected = upload_names(&full);
            expected.extend(full.common_prefixes.iter().cloned());
            entries.sort();
            expected.sort();
            assert_eq!(entries, expected, "delimiter {delimiter:?} page {page_size}");
        }
    }

    #[test]
    fn list_parts_pages_in_ascending_order() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        start_upload(&store, "k", "up");
        for number in [3, 1, 10_000, 2] {
            let (segment, intent) = allocate(&store, format!("d{number}").as_bytes(), 1, 1_000_000);
            let part = PartRecord {
                upload_id: "up".into(),
                part_number: number,
                segment: Some(segment),
                ..Default::default()
            };
            let cmd =
                Command::PutPart { bucket: "b".into(), key: "k".into(), part, intents: vec![intent], stamp: stamp(1) };
            apply(&store, cmd).unwrap();
        }
        let req = |marker: u32, max: u32| ListPartsRequest {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "up".into(),
            part_number_marker: marker,
            max_parts: max,
        };
        let numbers = |out: &ListPartsResponse| out.parts.iter().map(|p| p.part_number).collect::<Vec<_>>();
        let first = list_parts(&store, &req(0, 2)).unwrap();
        assert_eq!((numbers(&first), first.is_truncated, first.next_part_number_marker), (vec![1, 2], true, 2));
        let rest = list_parts(&store, &req(2, 1000)).unwrap();
        assert_eq!((numbers(&rest), rest.is_truncated), (vec![3, 10_000], false));
        assert!(list_parts(&store, &req(u32::MAX, 10)).unwrap().parts.is_empty());
        let missing = ListPartsRequest { upload_id: "nope".into(), ..req(0, 10) };
        assert!(matches!(list_parts(&store, &missing), Err(MetadataError::NoSuchUpload(_))));
    }
}
