//! Two Coffer features through the Rust AWS SDK: bucket notifications POSTed to a webhook (filters
//! honoured, unknown destinations refused) and transparent compression, which clients must not be
//! able to see except in the bytes it saves on disk.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, NotificationConfiguration, NotificationConfigurationFilter, QueueConfiguration,
    S3KeyFilter,
};

use crate::common::*;

const MIB: usize = 1 << 20;

/// A webhook on 127.0.0.1 that keeps every request body it is sent. Each connection gets its own
/// thread; the notifier closes connections after one request, but a client that keeps them open is
/// served too.
struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let port = listener.local_addr().expect("webhook address").port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&bodies);
        // Detached: the thread ends with the test process.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Webhook { port, bodies }
    }

    /// The bodies received so far, once at least `count` have arrived (panics after ~20 s).
    fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let bodies = self.bodies.lock().expect("bodies").clone();
            if bodies.len() >= count {
                return bodies;
            }
            assert!(Instant::now() < deadline, "expected {count} webhook calls, got {bodies:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Answers HTTP/1.1 requests on one connection with an empty 200 until the peer closes it.
fn serve(stream: TcpStream, bodies: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        let mut saw_request_line = false;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                if saw_request_line {
                    break;
                }
                continue;
            }
            saw_request_line = true;
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        bodies.lock().expect("bodies").push(String::from_utf8_lossy(&body).into_owned());
        if writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
            return;
        }
    }
}

fn queue(arn: &str, events: &[&str], suffix: &str) -> QueueConfiguration {
    let rule = FilterRule::builder().name(FilterRuleName::Suffix).value(suffix).build();
    let filter =
        NotificationConfigurationFilter::builder().key(S3KeyFilter::builder().filter_rules(rule).build()).build();
    QueueConfiguration::builder()
        .id("q1")
        .queue_arn(arn)
        .set_events(Some(events.iter().map(|e| Event::from(*e)).collect()))
        .filter(filter)
        .build()
        .expect("queue configuration")
}

#[test]
fn notifications_reach_a_webhook() {
    let hook = Webhook::start();
    let server = Embedded::start(&["--notify-webhook", &format!("hook=http://127.0.0.1:{}/events", hook.port)]);
    let s3 = server.client();
    runtime().block_on(async {
        s3.create_bucket().bucket("pics").send().await.expect("create");
        let empty = s3.get_bucket_notification_configuration().bucket("pics").send().await.expect("get empty");
        assert!(empty.queue_configurations().is_empty());

        let configured = queue("arn:coffer:sqs::hook:webhook", &["s3:ObjectCreated:*", "s3:ObjectRemoved:*"], ".jpg");
        let config = NotificationConfiguration::builder().queue_configurations(configured.clone()).build();
        s3.put_bucket_notification_configuration()
            .bucket("pics")
            .notification_configuration(config)
            .send()
            .await
            .expect("put notification configuration");
        let got = s3.get_bucket_notification_configuration().bucket("pics").send().await.expect("get");
        assert_eq!(got.queue_configurations(), std::slice::from_ref(&configured));

        // A destination the server has no webhook for is refused, and changes nothing.
        let unknown = NotificationConfiguration::builder()
            .queue_configurations(queue("arn:coffer:sqs::nope:webhook", &["s3:ObjectCreated:*"], ".jpg"))
            .build();
        let refused =
            s3.put_bucket_notification_configuration().bucket("pics").notification_configuration(unknown).send().await;
        assert_eq!(error_code(refused), "InvalidArgument");
        let got = s3.get_bucket_notification_configuration().bucket("pics").send().await.expect("get again");
        assert_eq!(got.queue_configurations(), [configured]);

        put_bytes(&s3, "pics", "a.jpg", b"jpeg bytes".to_vec()).await;
        put_bytes(&s3, "pics", "b.txt", b"filtered out by the suffix".to_vec()).await;
        s3.delete_object().bucket("pics").key("a.jpg").send().await.expect("delete");
    });

    let records: Vec<serde_json::Value> = hook
        .wait_for(2)
        .iter()
        .flat_map(|body| {
            let message: serde_json::Value = serde_json::from_str(body).expect("event JSON");
            message["Records"].as_array().cloned().unwrap_or_default()
        })
        .collect();
    let names: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["eventName"].as_str().unwrap_or(""), r["s3"]["object"]["key"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(names[..2], [("ObjectCreated:Put", "a.jpg"), ("ObjectRemoved:Delete", "a.jpg")], "{records:?}");
    let created = &records[0];
    assert_eq!(created["eventSource"], "aws:s3");
    assert_eq!(created["s3"]["bucket"]["name"], "pics");
    assert_eq!(created["s3"]["bucket"]["arn"], "arn:aws:s3:::pics");
    assert_eq!(created["s3"]["configurationId"], "q1");
    assert_eq!(created["s3"]["object"]["size"], b"jpeg bytes".len());
    assert_eq!(records[1]["s3"]["bucket"]["name"], "pics");

    // Events go out in the order they were recorded, so a b.txt event would have come before the delete's.
    let all = hook.bodies.lock().expect("bodies").clone();
    assert!(all.iter().all(|body| !body.contains("b.txt")), "b.txt was not filtered out: {all:?}");
    assert_eq!(records.len(), 2, "{records:?}");
}

/// A SigV4-signed admin API call as the root user: (status, body). The admin API lives on the S3
/// port and checks signatures like S3 does, so it is signed for the `s3` service.
fn admin_call(server: &Embedded, method: &str, path: &str, body: &str) -> (u16, String) {
    use aws_sigv4::http_request::{PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test").into();
    let url = format!("{}/coffer/admin/v1/{path}", server.endpoint());
    let host = server.addr.to_string();
    let headers = [("host", host.as_str()), ("content-type", "application/json")];
    let signable = SignableRequest::new(method, &url, headers.into_iter(), SignableBody::Bytes(body.as_bytes()))
        .expect("signable");
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut request = ureq::request(method, &url).set("content-type", "application/json");
    for (name, value) in instructions.headers() {
        request = request.set(name, value);
    }
    match request.send_string(body) {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

/// Bytes in every file under `dir`: blobnode chunk files (whose size counts written bytes only)
/// and the metadata store, which holds objects small enough to be kept inline, as a compressed
/// 4 MiB of text may well be.
fn stored_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for entry in entries.flatten() {
        match entry.metadata() {
            Ok(m) if m.is_dir() => total += stored_bytes(&entry.path()),
            Ok(m) => total += m.len(),
            // A file the metadata store removed (compaction) between listing and looking.
            Err(_) => {}
        }
    }
    total
}

/// Compressible text of exactly `size` bytes.
fn text(size: usize, seed: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 100);
    let mut i = 0;
    while out.len() < size {
        out.extend_from_slice(format!("{seed} line {i}: the quick brown fox jumps over the lazy dog\n").as_bytes());
        i += 1;
    }
    out.truncate(size);
    out
}

#[test]
fn compression_is_invisible_to_clients() {
    let server = Embedded::start(&[]);
    let s3 = server.client();
    let data = server.dir.path().join("data");
    let rt = runtime();
    rt.block_on(async {
        s3.create_bucket().bucket("squeeze").send().await.expect("create");
    });
    let (status, answer) = admin_call(&server, "GET", "buckets/squeeze/compression", "");
    assert_eq!(status, 200, "{answer}");
    let config: serde_json::Value = serde_json::from_str(&answer).expect("compression JSON");
    assert_eq!(config["enabled"], false);
    let (status, answer) = admin_call(&server, "PUT", "buckets/squeeze/compression", r#"{"enabled": true}"#);
    assert_eq!(status, 200, "{answer}");
    let (_, answer) = admin_call(&server, "GET", "buckets/squeeze/compression", "");
    let config: serde_json::Value = serde_json::from_str(&answer).expect("compression JSON");
    assert_eq!(config["enabled"], true);

    rt.block_on(async {
        let body = text(4 * MIB + 321, "plain");
        let before = stored_bytes(&data);
        let put = s3
            .put_object()
            .bucket("squeeze")
            .key("t.txt")
            .content_type("text/plain")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .expect("put text");
        let grown = stored_bytes(&data).saturating_sub(before);
        assert!(grown < body.len() as u64 / 2, "{} bytes of text took {grown} bytes on disk", body.len());
        let etag = format!("\"{}\"", md5_hex(&body));
        assert_eq!(put.e_tag(), Some(etag.as_str()));

        assert_eq!(get_bytes(&s3, "squeeze", "t.txt").await, body);
        // Across the first 64 KiB package boundary, across a MiB, and the tail.
        let last = body.len() as u64 - 1;
        for (first, end) in [(65_000u64, 70_000u64), (MIB as u64 - 10, MIB as u64 + 10), (last - 500, last)] {
            assert_eq!(
                get_range(&s3, "squeeze", "t.txt", first, end).await,
                &body[first as usize..=end as usize],
                "{first}-{end}"
            );
        }
        let head = s3.head_object().bucket("squeeze").key("t.txt").send().await.expect("head");
        assert_eq!(head.content_length(), Some(body.len() as i64));
        assert_eq!(head.e_tag(), Some(etag.as_str()));
        assert_eq!(head.content_type(), Some("text/plain"));
        let listed = s3.list_objects_v2().bucket("squeeze").prefix("t.txt").send().await.expect("list");
        assert_eq!(listed.contents()[0].size(), Some(body.len() as i64));

        // Not a compressible type: stored and read back as is.
        let binary = pattern(2 * MIB + 5, 77);
        let before = stored_bytes(&data);
        s3.put_object()
            .bucket("squeeze")
            .key("b.bin")
            .content_type("application/octet-stream")
            .body(ByteStream::from(binary.clone()))
            .send()
            .await
            .expect("put binary");
        assert!(stored_bytes(&data).saturating_sub(before) >= binary.len() as u64);
        assert_eq!(get_bytes(&s3, "squeeze", "b.bin").await, binary);
        let head = s3.head_object().bucket("squeeze").key("b.bin").send().await.expect("head binary");
        assert_eq!(head.content_length(), Some(binary.len() as i64));
        assert_eq!(head.e_tag(), Some(format!("\"{}\"", md5_hex(&binary)).as_str()));
    });
}
