//! Byte-exact round trips at every size boundary of the data path, and ranges at stripe and
//! shard boundaries, against `coffer server` (4+2, 4 MiB stripes, 128 KiB inline threshold).

mod common;

use common::*;

const INLINE: usize = 128 * 1024;
const STRIPE: usize = 4 * 1024 * 1024;
const SHARD: usize = STRIPE / 4;

#[test]
fn sizes_round_trip_byte_exact() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let sizes =
        [0, 1, INLINE - 1, INLINE, INLINE + 1, STRIPE - 1, STRIPE, STRIPE + 1, 3 * STRIPE + 1, 100 * 1024 * 1024];
    runtime().block_on(async {
        s3.create_bucket().bucket("sizes").send().await.expect("create");
        for (i, size) in sizes.into_iter().enumerate() {
            let data = pattern(size, i as u64);
            let key = format!("object-{size}");
            eprintln!("round trip of {size} bytes");
            let etag = put_bytes(&s3, "sizes", &key, data.clone()).await;
            assert_eq!(etag, format!("\"{}\"", md5_hex(&data)), "etag of {size} bytes");
            let head = s3.head_object().bucket("sizes").key(&key).send().await.expect("head");
            assert_eq!(head.content_length(), Some(size as i64));
            let back = get_bytes(&s3, "sizes", &key).await;
            assert_eq!(back.len(), size);
            assert!(back == data, "{size} bytes differ after a round trip");
        }
    });
}

#[test]
fn ranges_at_stripe_and_shard_boundaries() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let size = 3 * STRIPE + 1;
    let data = pattern(size, 42);
    runtime().block_on(async {
        s3.create_bucket().bucket("ranges").send().await.expect("create");
        put_bytes(&s3, "ranges", "r", data.clone()).await;
        let mut cases: Vec<(usize, usize)> = vec![(0, 0), (size - 1, size - 1), (0, size - 1)];
        for boundary in [SHARD, 2 * SHARD, 3 * SHARD, STRIPE, STRIPE + SHARD, 2 * STRIPE, 3 * STRIPE] {
            cases.push((boundary - 1, boundary));
            cases.push((boundary - 1, boundary - 1));
            cases.push((boundary, boundary));
            cases.push((boundary - 100, boundary + 100));
        }
        cases.push((SHARD - 7, 2 * STRIPE + SHARD + 7));
        for (first, last) in cases {
            let last = last.min(size - 1);
            let got = get_range(&s3, "ranges", "r", first as u64, last as u64).await;
            assert!(got == data[first..=last], "range {first}-{last}");
        }
    });
}
