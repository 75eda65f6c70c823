//! Key layout of every column family.
//!
//! Object and upload keys start with `bucket 0x00`, so one bucket's keys are one contiguous range in
//! UTF-8 byte order (the order S3 lists in) and listing is a range scan. Names and keys never hold
//! NUL (validated on the way in), so 0x00 sorts a key before all of its extensions.

pub const SEP: u8 = 0;

pub fn bucket(name: &str) -> Vec<u8> {
    name.as_bytes().to_vec()
}

/// Every object key (and upload key) of one bucket starts with this.
pub fn bucket_prefix(bucket: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + 1);
    k.extend_from_slice(bucket.as_bytes());
    k.push(SEP);
    k
}

pub fn object(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = bucket_prefix(bucket);
    k.extend_from_slice(key.as_bytes());
    k
}

/// Every version of one object key: `bucket 0x00 key 0x00`.
pub fn version_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = object(bucket, key);
    k.push(SEP);
    k
}

/// One version of an object: `bucket 0x00 key 0x00` then the version order, big-endian. Orders
/// count down as versions are made (see `versions::order_of`), so a key's versions sort newest
/// first, and a key's versions sort before those of any longer key it is a prefix of.
pub fn version(bucket: &str, key: &str, order: u64) -> Vec<u8> {
    let mut k = version_prefix(bucket, key);
    k.extend_from_slice(&order.to_be_bytes());
    k
}

/// Splits the part of a version key after `bucket 0x00` into object key and order.
pub fn split_version(rest: &[u8]) -> Option<(&[u8], u64)> {
    let at = rest.len().checked_sub(9)?;
    let (key, tail) = rest.split_at(at);
    if tail[0] != SEP {
        return None;
    }
    Some((key, u64::from_be_bytes(tail[1..].try_into().ok()?)))
}

/// Uploads of one key sort by upload id, which starts with the initiation time (see `new_upload_id`),
/// so a key's uploads list oldest first as in S3.
pub fn upload(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = object(bucket, key);
    k.push(SEP);
    k.extend_from_slice(upload_id.as_bytes());
    k
}

/// Splits the part of an upload key after `bucket 0x00` into object key and upload id.
pub fn split_upload(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = rest.iter().position(|&b| b == SEP)?;
    Some((&rest[..at], &rest[at + 1..]))
}

pub fn part_prefix(upload_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(upload_id.len() + 5);
    k.extend_from_slice(upload_id.as_bytes());
    k.push(SEP);
    k
}

/// Big-endian so parts iterate in ascending part number.
pub fn part(upload_id: &str, part_number: u32) -> Vec<u8> {
    let mut k = part_prefix(upload_id);
    k.extend_from_slice(&part_number.to_be_bytes());
    k
}

pub fn part_number(key: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = key.get(key.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(u32::from_be_bytes(tail))
}

/// Due time first, so the collector finds due work with one scan from the start of the column family.
/// This key is also the opaque intent handle given to the gateway.
pub fn gc(not_before_unix_ms: i64, data_id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + data_id.len());
    k.extend_from_slice(&(not_before_unix_ms.max(0) as u64).to_be_bytes());
    k.extend_from_slice(data_id);
    k
}

/// `(not_before_unix_ms, data_id)` of a gc key, or `None` when it is not one.
pub fn parse_gc(key: &[u8]) -> Option<(i64, &[u8])> {
    if key.len() <= 8 {
        return None;
    }
    let (time, data_id) = key.split_at(8);
    let time = u64::from_be_bytes(time.try_into().ok()?);
    Some((i64::try_from(time).ok()?, data_id))
}

/// One report per (disk, shard): a second report of the same shard replaces the first.
pub fn damaged(disk_id: &str, data_id: &[u8], stripe: u32, index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(disk_id.len() + data_id.len() + 10);
    k.extend_from_slice(disk_id.as_bytes());
    k.push(SEP);
    k.extend_from_slice(data_id);
    k.extend_from_slice(&stripe.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

pub fn node(node_id: &str) -> Vec<u8> {
    node_id.as_bytes().to_vec()
}

/// Every report about one data on one disk starts with this.
pub fn damaged_prefix(disk_id: &str, data_id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(disk_id.len() + data_id.len() + 1);
    k.extend_from_slice(disk_id.as_bytes());
    k.push(SEP);
    k.extend_from_slice(data_id);
    k
}

/// Every data that has (or may have) shards on one disk: `node 0x00 disk 0x00` then the data id.
pub fn holding_prefix(node_id: &str, disk_id: &str) -> Vec<u8> {
    let mut k = node_holdings_prefix(node_id);
    k.extend_from_slice(disk_id.as_bytes());
    k.push(SEP);
    k
}

/// The holdings of every disk of a node: `node 0x00`.
pub fn node_holdings_prefix(node_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(node_id.len() + 1);
    k.extend_from_slice(node_id.as_bytes());
    k.push(SEP);
    k
}

pub fn holding(node_id: &str, disk_id: &str, data_id: &[u8]) -> Vec<u8> {
    let mut k = holding_prefix(node_id, disk_id);
    k.extend_from_slice(data_id);
    k
}

/// The smallest key greater than every key that starts with `prefix`; `None` when no such key
/// exists (the prefix is all 0xFF), i.e. the range is open-ended.
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut k = prefix.to_vec();
    while let Some(last) = k.pop() {
        if last < u8::MAX {
            k.push(last + 1);
            return Some(k);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_of_a_bucket_sort_before_the_next_bucket_and_by_key() {
        let mut keys = vec![object("b", "z"), object("a-", "a"), object("a", "b/c"), object("a", "b"), object("a", "")];
        keys.sort();
        let expected = vec![object("a", ""), object("a", "b"), object("a", "b/c"), object("a-", "a"), object("b", "z")];
        assert_eq!(keys, expected);
        assert!(object("a", "zzz") < bucket_prefix("a-"));
        assert!(object("a", "b") < object("a", "b\u{1}"));
    }

    #[test]
    fn version_keys_sort_by_key_then_newest_first_and_round_trip() {
        let mut keys = vec![
            version("b", "a", 7),
            version("b", "a\u{1}", 1),
            version("b", "a", 3),
            version("b", "ab", 0),
            version("b", "", 9),
            version("b-", "a", 0),
        ];
        keys.sort();
        let expected = vec![
            version("b", "", 9),
            version("b", "a", 3),
            version("b", "a", 7),
            version("b", "a\u{1}", 1),
            version("b", "ab", 0),
            version("b-", "a", 0),
        ];
        assert_eq!(keys, expected);
        assert!(version("b", "a", u64::MAX) < version_prefix("b", "a\u{1}"));
        assert!(version("b", "a", u64::MAX) < bucket_prefix("b-"));
        let k = version("b", "photos/a", 42);
        assert_eq!(split_version(&k[2..]), Some((&b"photos/a"[..], 42)));
        assert_eq!(split_version(b"short"), None);
    }

    #[test]
    fn upload_keys_sort_by_key_then_upload_id() {
        assert!(upload("b", "k", "2") < upload("b", "k", "3"));
        assert!(upload("b", "k", "z") < upload("b", "k!", "a"));
        let k = upload("b", "photos/a", "id1");
        assert_eq!(split_upload(&k[2..]), Some((&b"photos/a"[..], &b"id1"[..])));
    }

    #[test]
    fn part_keys_round_trip_and_sort_numerically() {
        assert!(part("u", 2) < part("u", 10));
        assert_eq!(part_number(&part("u", 10_000)), Some(10_000));
        assert_eq!(part_number(b"abc"), None);
    }

    #[test]
    fn gc_keys_sort_by_time_and_round_trip() {
        assert!(gc(5, b"zz") < gc(6, b"aa"));
        assert_eq!(parse_gc(&gc(42, b"id")), Some((42, &b"id"[..])));
        assert_eq!(parse_gc(&gc(-1, b"id")), Some((0, &b"id"[..])));
        assert_eq!(parse_gc(b"short"), None);
        assert_eq!(parse_gc(&[0xFF; 9]), None);
    }

    #[test]
    fn successor_bounds_every_extension() {
        assert_eq!(successor(b"a/"), Some(b"a0".to_vec()));
        assert_eq!(successor(b"a\xFF"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xFF\xFF"), None);
        assert!(successor(b"a/").is_some_and(|s| b"a/\xFF\xFF".as_slice() < s.as_slice()));
    }
}
