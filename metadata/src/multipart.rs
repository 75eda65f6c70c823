//! Multipart uploads: the apply side of CreateUpload, PutPart, CompleteUpload and AbortUpload.

use std::collections::BTreeMap;

use coffer_proto::Message;
use coffer_proto::pb::metadata::{
    CompletedPart, DataOwner, ObjectRecord, PartRecord, Segment, UploadRecord, WriteCondition,
};
use md5::{Digest, Md5};
use rocksdb::WriteBatch;

use crate::command::{Applied, Stamp, check_condition, validate_bucket_name, validate_key};
use crate::data;
use crate::error::MetadataError;
use crate::keys;
use crate::store::{Cf, Store};

pub const MAX_PART_NUMBER: u32 = 10_000;
/// Every part but the last must be at least this big (S3's rule).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Hex of the initiation time, then 128 random bits: unguessable, URL-safe, and ordered by
/// initiation time, which is the order S3 lists the uploads of one key in.
pub fn new_upload_id(now_unix_ms: i64) -> String {
    let mut bytes = (now_unix_ms.max(0) as u64).to_be_bytes().to_vec();
    bytes.extend_from_slice(&rand::random::<[u8; 16]>());
    hex::encode(bytes)
}

/// The ETag of a multipart object: MD5 over the binary MD5s of its parts, then `-N`.
pub fn multipart_etag<'a>(part_etags: impl IntoIterator<Item = &'a str>) -> Result<String, MetadataError> {
    let mut md5 = Md5::new();
    let mut count = 0usize;
    for etag in part_etags {
        let binary = hex::decode(etag).map_err(|e| MetadataError::corrupt(format!("part ETag {etag:?}"), e))?;
        md5.update(&binary);
        count += 1;
    }
    Ok(format!("{}-{count}", hex::encode(md5.finalize())))
}

fn unquote(etag: &str) -> &str {
    etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag)
}

pub fn create_upload(
    store: &Store,
    batch: &mut WriteBatch,
    mut upload: UploadRecord,
) -> Result<Applied, MetadataError> {
    validate_bucket_name(&upload.bucket)?;
    validate_key(&upload.key)?;
    if upload.upload_id.is_empty() || upload.upload_id.contains('\0') {
        return Err(MetadataError::Internal(format!("bad upload id {:?}", upload.upload_id)));
    }
    store.bucket(&upload.bucket)?;
    let key = keys::upload(&upload.bucket, &upload.key, &upload.upload_id);
    if store.get::<UploadRecord>(Cf::Uploads, &key)?.is_some() {
        return Err(MetadataError::Internal(format!("upload id {} is taken", upload.upload_id)));
    }
    let template = upload.template.get_or_insert_with(ObjectRecord::default);
    template.bucket.clone_from(&upload.bucket);
    template.key.clone_from(&upload.key);
    template.segments.clear();
    template.size = 0;
    batch.put_cf(store.cf(Cf::Uploads)?, key, upload.encode_to_vec());
    Ok(Applied::Upload(upload))
}

pub fn put_part(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    mut part: PartRecord,
    intents: &[Vec<u8>],
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    if !(1..=MAX_PART_NUMBER).contains(&part.part_number) {
        return Err(MetadataError::InvalidArgument(format!(
            "part number {} is outside 1..={MAX_PART_NUMBER}",
            part.part_number
        )));
    }
    store.upload(bucket, key, &part.upload_id)?;
    let segment = part.segment.as_mut().ok_or_else(|| MetadataError::InvalidArgument("part without data".into()))?;
    let etag = unquote(&segment.etag).to_ascii_lowercase();
    if etag.len() != 32 || hex::decode(&etag).is_err() {
        return Err(MetadataError::InvalidArgument(format!("part ETag {:?} is not a hex MD5", segment.etag)));
    }
    segment.etag = etag;
    segment.part_number = part.part_number;
    data::validate_segments(std::slice::from_ref(segment), segment.size)?;
    part.last_modified_unix_ms = stamp.now_unix_ms;

    let replaced = store.find_part(&part.upload_id, part.part_number)?;
    let replaced_segments: Vec<Segment> = replaced.and_then(|p| p.segment).into_iter().collect();
    // Nobody reads a part's bytes before completion, so a replaced part's data can go at once.
    let owner = DataOwner {
        bucket: bucket.to_string(),
        key: key.to_string(),
        upload_id: part.upload_id.clone(),
        part_number: part.part_number,
        version_order: None,
    };
    data::commit(
        store,
        batch,
        intents,
        std::slice::from_mut(segment),
        &replaced_segments,
        stamp,
        stamp.now_unix_ms,
        &owner,
    )?;
    batch.put_cf(store.cf(Cf::Parts)?, keys::part(&part.upload_id, part.part_number), part.encode_to_vec());
    Ok(Applied::Part(part))
}

/// `condition` is checked against the object the completion would replace, in this same apply.
#[allow(clippy::too_many_arguments)]
pub fn complete_upload(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    upload_id: &str,
    listed: &[CompletedPart],
    condition: &WriteCondition,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    let upload = store.upload(bucket, key, upload_id)?;
    let replaced = store.find_object(bucket, key)?;
    // Refused before anything is planned: the upload and its parts stay for a retry or an abort.
    check_condition(condition, bucket, key, replaced.as_ref())?;
    if listed.is_empty() {
        return Err(MetadataError::InvalidArgument("a multipart upload needs at least one part".into()));
    }
    if let Some(w) = listed.windows(2).find(|w| w[1].part_number <= w[0].part_number) {
        return Err(MetadataError::InvalidPartOrder(format!(
            "part {} follows part {}; part numbers must ascend",
            w[1].part_number, w[0].part_number
        )));
    }
    let mut stored: BTreeMap<u32, (Vec<u8>, PartRecord)> = BTreeMap::new();
    for (part_key, part) in store.all_parts(upload_id)? {
        let number = keys::part_number(&part_key).ok_or_else(|| MetadataError::corrupt("part key", "too short"))?;
        stored.insert(number, (part_key, part));
    }

    let mut segments = Vec::with_capacity(listed.len());
    for wanted in listed {
        let Some((_, part)) = stored.get(&wanted.part_number) else {
            return Err(MetadataError::InvalidPart(format!("part {} was not uploaded", wanted.part_number)));
        };
        let segment = part.segment.as_ref().ok_or_else(|| {
            MetadataError::corrupt(format!("part {} of upload {upload_id}", wanted.part_number), "no segment")
        })?;
        if !unquote(&wanted.etag).eq_ignore_ascii_case(&segment.etag) {
            return Err(MetadataError::InvalidPart(format!(
                "part {} has ETag {}, not {}",
                wanted.part_number, segment.etag, wanted.etag
            )));
        }
        segments.push(segment.clone());
    }
    if let Some(small) = segments[..segments.len() - 1].iter().find(|s| s.size < MIN_PART_SIZE) {
        return Err(MetadataError::EntityTooSmall(format!(
            "part {} has {} bytes; all parts but the last need at least {MIN_PART_SIZE}",
            small.part_number, small.size
        )));
    }

    let mut record = upload.template.clone().unwrap_or_default();
    record.bucket.clone_from(&upload.bucket);
    record.key.clone_from(&upload.key);
    record.size = segments
        .iter()
        .try_fold(0u64, |sum, s| sum.checked_add(s.size))
        .ok_or_else(|| MetadataError::InvalidArgument("the parts' sizes overflow".into()))?;
    record.etag = multipart_etag(segments.iter().map(|s| s.etag.as_str()))?;
    record.last_modified_unix_ms = stamp.now_unix_ms;
    record.segments = segments;

    // In a versioned bucket the replaced version stays (with its data) unless it is the null version
    // a Suspended bucket overwrites; otherwise its data goes to the collector.
    let bucket_record = store.bucket(bucket)?;
    crate::object_lock::on_write(&bucket_record, &mut record, stamp)?;
    let retired = if crate::versions::is_versioned(&bucket_record) {
        crate::versions::place(store, batch, &bucket_record, &mut record, replaced.as_ref(), stamp)?
    } else {
        record.version_id.clear();
        record.version_order = 0;
        replaced.as_ref().map(|r| r.segments.clone()).unwrap_or_default()
    };
    record.delete_marker = false;
    crate::usage::account(store, batch, bucket, replaced.as_ref(), Some(&record))?;
    data::retire(store, batch, &record.segments, &retired, stamp.replaced_gc_unix_ms)?;
    let parts_cf = store.cf(Cf::Parts)?;
    for (number, (part_key, part)) in &stored {
        if listed.binary_search_by_key(number, |p| p.part_number).is_err() {
            let unused: Vec<Segment> = part.segment.iter().cloned().collect();
            data::schedule_all(store, batch, stamp.now_unix_ms, &unused)?;
        }
        batch.delete_cf(parts_cf, part_key);
    }
    batch.delete_cf(store.cf(Cf::Uploads)?, keys::upload(bucket, key, upload_id));
    data::own(store, batch, &record.segments, &crate::versions::owner_of(&record))?;
    crate::versions::write_current(store, batch, &record)?;
    Ok(Applied::Object(record))
}

pub fn abort_upload(
    store: &Store,
    batch: &mut WriteBatch,
    bucket: &str,
    key: &str,
    upload_id: &str,
    stamp: &Stamp,
) -> Result<Applied, MetadataError> {
    store.upload(bucket, key, upload_id)?;
    drop_upload(store, batch, &keys::upload(bucket, key, upload_id), upload_id, stamp.now_unix_ms)?;
    Ok(Applied::Done)
}

/// Removes an upload and its parts, handing the parts' data to the collector at `gc_unix_ms`.
pub fn drop_upload(
    store: &Store,
    batch: &mut WriteBatch,
    upload_key: &[u8],
    upload_id: &str,
    gc_unix_ms: i64,
) -> Result<(), MetadataError> {
    let parts_cf = store.cf(Cf::Parts)?;
    for (part_key, part) in store.all_parts(upload_id)? {
        let segments: Vec<Segment> = part.segment.into_iter().collect();
        data::schedule_all(store, batch, gc_unix_ms, &segments)?;
        batch.delete_cf(parts_cf, part_key);
    }
    batch.delete_cf(store.cf(Cf::Uploads)?, upload_key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::tests::{GRACE_MS, allocate, gc_entries, make_bucket, object, stamp, store};
    use crate::command::{Command, apply};

    const MIB: u64 = 1024 * 1024;

    fn start_upload(store: &Store, id: &str) {
        let template = ObjectRecord { content_type: "image/png".into(), ..Default::default() };
        let upload = UploadRecord {
            upload_id: id.into(),
            bucket: "b".into(),
            key: "k".into(),
            initiated_unix_ms: 1,
            template: Some(template),
        };
        apply(store, Command::CreateUpload { upload }).unwrap();
    }

    /// Uploads part `number` of `size` bytes; its ETag is the hex of `size` (distinct per size).
    fn put(store: &Store, number: u32, size: u64, data_id: &str) -> Result<PartRecord, MetadataError> {
        let (segment, intent) = allocate(store, data_id.as_bytes(), size, 1_000_000);
        let part =
            PartRecord { upload_id: "up".into(), part_number: number, segment: Some(segment), ..Default::default() };
        let cmd =
            Command::PutPart { bucket: "b".into(), key: "k".into(), part, intents: vec![intent], stamp: stamp(10) };
        apply(store, cmd).and_then(Applied::into_part)
    }

    fn listed(parts: &[(u32, u64)]) -> Vec<CompletedPart> {
        parts.iter().map(|&(n, size)| CompletedPart { part_number: n, etag: format!("\"{size:032x}\"") }).collect()
    }

    fn complete(store: &Store, parts: Vec<CompletedPart>) -> Result<ObjectRecord, MetadataError> {
        complete_if(store, parts, WriteCondition::default())
    }

    fn complete_if(
        store: &Store,
        parts: Vec<CompletedPart>,
        condition: WriteCondition,
    ) -> Result<ObjectRecord, MetadataError> {
        let cmd = Command::CompleteUpload {
            bucket: "b".into(),
            key: "k".into(),
            upload_id: "up".into(),
            parts,
            condition,
            stamp: stamp(100),
        };
        apply(store, cmd).and_then(Applied::into_object)
    }

    fn setup() -> (tempfile::TempDir, Store) {
        let (dir, store) = store();
        make_bucket(&store, "b");
        start_upload(&store, "up");
        put(&store, 1, 5 * MIB, "p1").unwrap();
        put(&store, 2, 6 * MIB, "p2").unwrap();
        put(&store, 3, 1, "p3").unwrap();
        put(&store, 4, 1, "p4").unwrap();
        (dir, store)
    }

    #[test]
    fn complete_upload_validation() {
        type Check = fn(&MetadataError) -> bool;
        let wrong_etag = vec![CompletedPart { part_number: 1, etag: format!("\"{:032x}\"", 0) }];
        let unquoted = vec![CompletedPart { part_number: 3, etag: format!("{:032X}", 1) }];
        let cases: Vec<(&str, Vec<CompletedPart>, Check)> = vec![
            ("empty list", vec![], |e| matches!(e, MetadataError::InvalidArgument(_))),
            ("descending", listed(&[(2, 6 * MIB), (1, 5 * MIB)]), |e| matches!(e, MetadataError::InvalidPartOrder(_))),
            ("repeated", listed(&[(1, 5 * MIB), (1, 5 * MIB)]), |e| matches!(e, MetadataError::InvalidPartOrder(_))),
            ("missing part", listed(&[(1, 5 * MIB), (5, 1)]), |e| matches!(e, MetadataError::InvalidPart(_))),
            ("wrong etag", wrong_etag, |e| matches!(e, MetadataError::InvalidPart(_))),
            ("small non-last part", listed(&[(3, 1), (4, 1)]), |e| matches!(e, MetadataError::EntityTooSmall(_))),
        ];
        for (name, parts, check) in cases {
            let (_dir, store) = setup();
            let err = complete(&store, parts).expect_err(name);
            assert!(check(&err), "{name}: {err}");
            assert!(store.upload("b", "k", "up").is_ok(), "{name}: a failed completion changes nothing");
            assert_eq!(store.all_parts("up").unwrap().len(), 4, "{name}");
        }

        // A small last part is fine; ETags match without quotes and in any case.
        let (_dir, store) = setup();
        assert_eq!(complete(&store, unquoted).unwrap().size, 1);

        let (_dir, store) = setup();
        let other = Command::CompleteUpload {
            bucket: "b".into(),
            key: "other".into(),
            upload_id: "up".into(),
            parts: listed(&[(3, 1)]),
            condition: Default::default(),
            stamp: stamp(1),
        };
        assert!(matches!(apply(&store, other), Err(MetadataError::NoSuchUpload(_))));
    }

    #[test]
    fn complete_upload_builds_the_object_and_collects_the_rest() {
        let (_dir, store) = setup();
        // An older version of the key, replaced by the completion.
        let (old, intent) = allocate(&store, b"old", 3, 1_000_000);
        let cmd = Command::PutObject {
            record: object("b", "k", old),
            intents: vec![intent],
            condition: Default::default(),
            stamp: stamp(5),
        };
        apply(&store, cmd).unwrap();

        let record = complete(&store, listed(&[(1, 5 * MIB), (3, 1)])).unwrap();
        assert_eq!(record.size, 5 * MIB + 1);
        assert_eq!(record.content_type, "image/png");
        assert_eq!(record.last_modified_unix_ms, 100);
        assert_eq!(record.segments.iter().map(|s| s.part_number).collect::<Vec<_>>(), vec![1, 3]);
        let expected_etag =
            multipart_etag([format!("{:032x}", 5 * MIB).as_str(), format!("{:032x}", 1).as_str()]).unwrap();
        assert_eq!(record.etag, expected_etag);
        assert!(record.etag.ends_with("-2"));
        assert_eq!(store.object("b", "k").unwrap(), record);

        assert!(matches!(store.upload("b", "k", "up"), Err(MetadataError::NoSuchUpload(_))));
        assert!(store.all_parts("up").unwrap().is_empty());
        let entries = gc_entries(&store);
        assert_eq!(entries, vec![(100, b"p2".to_vec()), (100, b"p4".to_vec()), (100 + GRACE_MS, b"old".to_vec())]);
    }

    #[test]
    fn conditional_completion_is_refused_without_touching_the_upload() {
        let (_dir, store) = setup();
        let parts = || listed(&[(3, 1)]);
        // If-Match on a key without an object: NoSuchKey; the upload stays.
        let if_match = WriteCondition { if_match: "abc".into(), ..Default::default() };
        assert!(matches!(complete_if(&store, parts(), if_match), Err(MetadataError::NoSuchKey { .. })));
        let inline = Segment { size: 1, inline_data: b"x".to_vec(), ..Default::default() };
        let mut existing = object("b", "k", inline);
        existing.etag = "abc".into();
        let put =
            Command::PutObject { record: existing, intents: vec![], condition: Default::default(), stamp: stamp(5) };
        apply(&store, put).unwrap();

        let none_match = WriteCondition { if_none_match: true, ..Default::default() };
        assert!(matches!(complete_if(&store, parts(), none_match), Err(MetadataError::PreconditionFailed(_))));
        let wrong = WriteCondition { if_match: "def".into(), ..Default::default() };
        assert!(matches!(complete_if(&store, parts(), wrong), Err(MetadataError::PreconditionFailed(_))));
        assert!(store.upload("b", "k", "up").is_ok());
        assert_eq!(store.all_parts("up").unwrap().len(), 4);
        assert_eq!(store.object("b", "k").unwrap().etag, "abc");

        let right = WriteCondition { if_match: "\"abc\"".into(), ..Default::default() };
        assert_eq!(complete_if(&store, parts(), right).unwrap().size, 1);
    }

    #[test]
    fn multipart_etag_matches_s3() {
        // Two parts whose MD5s are those of "a" and "b"; S3 reports md5(md5(a) ++ md5(b)) + "-2".
        let a = "0cc175b9c0f1b6a831c399e269772661";
        let b = "92eb5ffee6ae2fec3ad71c777531578f";
        let mut concat = hex::decode(a).unwrap();
        concat.extend(hex::decode(b).unwrap());
        let expected = format!("{}-2", hex::encode(Md5::digest(&concat)));
        assert_eq!(multipart_etag([a, b]).unwrap(), expected);
    }

    #[test]
    fn put_part_checks_number_and_replacing_collects_the_old_part() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        start_upload(&store, "up");
        for bad in [0, MAX_PART_NUMBER + 1] {
            assert!(matches!(put(&store, bad, 1, "x"), Err(MetadataError::InvalidArgument(_))), "{bad}");
        }
        put(&store, 7, 1, "first").unwrap();
        let part = put(&store, 7, 2, "second").unwrap();
        assert_eq!(part.last_modified_unix_ms, 10);
        // The two rejected allocations' intents remain (due later); the replaced part's data is due now.
        let entries = gc_entries(&store);
        assert!(entries.contains(&(10, b"first".to_vec())), "{entries:?}");
        assert_eq!(store.all_parts("up").unwrap().len(), 1);
    }

    #[test]
    fn put_part_to_an_unknown_upload_is_no_such_upload() {
        let (_dir, store) = store();
        make_bucket(&store, "b");
        assert!(matches!(put(&store, 1, 1, "x"), Err(MetadataError::NoSuchUpload(_))));
    }

    #[test]
    fn abort_collects_every_part() {
        let (_dir, store) = setup();
        let abort =
            Command::AbortUpload { bucket: "b".into(), key: "k".into(), upload_id: "up".into(), stamp: stamp(50) };
        apply(&store, abort.clone()).unwrap();
        let mut ids: Vec<Vec<u8>> = gc_entries(&store)
            .into_iter()
            .map(|(t, id)| {
                assert_eq!(t, 50);
                id
            })
            .collect();
        ids.sort();
        assert_eq!(ids, vec![b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec(), b"p4".to_vec()]);
        assert!(matches!(apply(&store, abort), Err(MetadataError::NoSuchUpload(_))));
    }

    #[test]
    fn upload_ids_are_url_safe_and_ordered_by_time() {
        let a = new_upload_id(1_000);
        let b = new_upload_id(2_000);
        assert!(a < b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(new_upload_id(1_000), a);
    }
}
