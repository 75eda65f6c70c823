//! The null S3 endpoint: answers the requests the load generator makes as cheaply as possible, storing nothing and
//! checking no signature, so that a run against it measures the ceiling of the client, HTTP and this machine.
//!
//! PUTs and parts are drained and acknowledged; a GET returns the bytes the key names (see [`crate::data`]), taken
//! from the same pattern the client writes, so verification passes; HEAD and DELETE succeed; a listing of the list
//! workload's directory returns as many synthetic keys as the directory names, in pages, and any other listing is
//! empty.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LAST_MODIFIED};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::data::{self, ObjRef};
use crate::s3::escape_xml;

const LAST_MODIFIED_VALUE: &str = "Thu, 01 Jan 2026 00:00:00 GMT";
const ETAG_VALUE: &str = "\"00000000000000000000000000000000\"";
const XML: &str = "application/xml";

struct State {
    buffer: Bytes,
    uploads: AtomicU64,
}

/// A running null server; dropping the handle does not stop it, [`NullServer::stop`] does.
pub struct NullServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl NullServer {
    /// Binds `listen` and serves GETs from `buffer` (which must be the client's pattern, or a prefix of it).
    pub async fn start(listen: SocketAddr, buffer: Bytes) -> anyhow::Result<NullServer> {
        let listener =
            TcpListener::bind(listen).await.with_context(|| format!("binding the null server to {listen}"))?;
        let addr = listener.local_addr().context("null server address")?;
        let state = Arc::new(State { buffer, uploads: AtomicU64::new(0) });
        let task = tokio::spawn(accept_loop(listener, state));
        Ok(NullServer { addr, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(self) {
        self.task.abort();
    }

    /// Serves until the task ends (it does not, short of an accept error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("null server task")
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                eprintln!("null server: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        // Connection tasks live in the set, so aborting the accept loop also closes every connection.
        connections.spawn(async move {
            let service = service_fn(move |request| handle(request, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

fn xml(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = response(status, Bytes::from(body));
    response.headers_mut().insert(CONTENT_TYPE, http::HeaderValue::from_static(XML));
    response
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
            escape_xml(message)
        ),
    )
}

fn with_object_headers(mut response: Response<Full<Bytes>>, size: u64) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(ETAG, http::HeaderValue::from_static(ETAG_VALUE));
    headers.insert(LAST_MODIFIED, http::HeaderValue::from_static(LAST_MODIFIED_VALUE));
    headers.insert(CONTENT_LENGTH, http::HeaderValue::from(size));
    response
}

/// The query's parameters, percent-decoded.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
            (decode(name), decode(value))
        })
        .collect()
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = percent_decode_str(request.uri().path()).decode_utf8_lossy().into_owned();
    let params = query_params(request.uri().query().unwrap_or(""));
    let has = |name: &str| params.iter().any(|(n, _)| n == name);
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

    // Drain the body (PUT data, XML documents); an aborted upload just ends here.
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Ok(response(StatusCode::BAD_REQUEST, Bytes::new()));
        }
    }

    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((bucket, key)) => (bucket, key),
        None => (trimmed, ""),
    };
    let answer = match (bucket.is_empty(), key.is_empty(), &method) {
        (true, _, &Method::GET) => xml(
            StatusCode::OK,
            "<ListAllMyBucketsResult><Owner><ID>null</ID></Owner><Buckets></Buckets></ListAllMyBucketsResult>".into(),
        ),
        (true, _, _) => s3_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "not on the service"),
        (false, true, &Method::GET) if param("list-type") == Some("2") => list_v2(bucket, &param),
        (false, true, &Method::GET) if has("location") => {
            xml(StatusCode::OK, "<LocationConstraint>us-east-1</LocationConstraint>".into())
        }
        (false, true, &Method::GET) => list_v2(bucket, &param),
        (false, true, &Method::POST) if has("delete") => xml(StatusCode::OK, "<DeleteResult></DeleteResult>".into()),
        (false, true, &Method::PUT) | (false, true, &Method::HEAD) => response(StatusCode::OK, Bytes::new()),
        (false, true, &Method::DELETE) => response(StatusCode::NO_CONTENT, Bytes::new()),
        (false, false, &Method::PUT) => with_object_headers(response(StatusCode::OK, Bytes::new()), 0),
        (false, false, &Method::GET) | (false, false, &Method::HEAD) => match data::parse_key(key) {
            Some((off, size)) => {
                let object = ObjRef { key: String::new(), off, size };
                match object.body(&state.buffer) {
                    Some(bytes) if method == Method::GET => with_object_headers(response(StatusCode::OK, bytes), size),
                    Some(_) => with_object_headers(response(StatusCode::OK, Bytes::new()), size),
                    None => s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "object larger than the null server's buffer"),
                }
            }
            None if method == Method::HEAD => response(StatusCode::NOT_FOUND, Bytes::new()),
            None => s3_error(StatusCode::NOT_FOUND, "NoSuchKey", "the null server only knows keys ending -OFF-SIZE"),
        },
        (false, false, &Method::POST) if has("uploads") => {
            let id = state.uploads.fetch_add(1, Ordering::Relaxed);
            xml(
                StatusCode::OK,
                format!(
                    "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>null-{id}</UploadId>\
                     </InitiateMultipartUploadResult>",
                    escape_xml(bucket),
                    escape_xml(key)
                ),
            )
        }
        (false, false, &Method::POST) if has("uploadId") => xml(
            StatusCode::OK,
            format!(
                "<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag>\
                 </CompleteMultipartUploadResult>",
                escape_xml(bucket),
                escape_xml(key),
                escape_xml(ETAG_VALUE)
            ),
        ),
        (false, false, &Method::DELETE) => response(StatusCode::NO_CONTENT, Bytes::new()),
        _ => s3_error(StatusCode::NOT_IMPLEMENTED, "NotImplemented", "the null server does not do this"),
    };
    Ok(answer)
}

/// ListObjectsV2 (and v1, answered the same way): synthetic keys when the prefix names a list directory.
fn list_v2<'a>(bucket: &str, param: &impl Fn(&str) -> Option<&'a str>) -> Response<Full<Bytes>> {
    let prefix = param("prefix").unwrap_or("");
    let total = data::parse_list_dir(prefix).unwrap_or(0);
    let max_keys: u64 = param("max-keys").and_then(|v| v.parse().ok()).unwrap_or(1000).min(1000);
    let start: u64 = param("continuation-token").and_then(|v| v.parse().ok()).unwrap_or(0);
    let end = start.saturating_add(max_keys).min(total);
    let truncated = end < total;
    let mut body = String::with_capacity(256 + (end.saturating_sub(start) as usize) * 160);
    body.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult>");
    body.push_str(&format!(
        "<Name>{}</Name><Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max_keys}</MaxKeys>\
         <IsTruncated>{truncated}</IsTruncated>",
        escape_xml(bucket),
        escape_xml(prefix),
        end.saturating_sub(start)
    ));
    for i in start..end {
        body.push_str(&format!(
            "<Contents><Key>{}{i:08}-0-0</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>\
             <ETag>{}</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>",
            escape_xml(prefix),
            escape_xml(ETAG_VALUE)
        ));
    }
    if truncated {
        body.push_str(&format!("<NextContinuationToken>{end}</NextContinuationToken>"));
    }
    body.push_str("</ListBucketResult>");
    xml(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::{Endpoint, S3Conn, TargetConfig};
    use std::time::Duration;

    async fn started() -> (NullServer, Bytes, S3Conn) {
        let buffer = data::pattern(1 << 20);
        let server = NullServer::start("127.0.0.1:0".parse().expect("addr"), buffer.clone()).await.expect("start");
        let endpoint = Endpoint::parse(&server.url()).expect("endpoint");
        let cfg = TargetConfig::new(endpoint, "k", "s", "us-east-1", Duration::from_secs(5));
        (server, buffer, S3Conn::new(Arc::new(cfg)))
    }

    #[tokio::test]
    async fn answers_the_client() {
        let (server, buffer, mut conn) = started().await;
        assert!(conn.head_bucket("b").await.expect("head bucket"));
        assert!(conn.create_bucket("b").await.expect("create"));
        let object = ObjRef::new("p/", 1, 123, 4096);
        let body = object.body(&buffer).expect("body");
        conn.put_object("b", &object.key, body).await.expect("put");
        let content = object.content(&buffer).expect("content");
        assert_eq!(conn.get_object("b", &object.key, 4096, Some(content)).await.expect("get"), 4096);
        conn.head_object("b", &object.key, 4096).await.expect("head");
        // A GET whose bytes differ is BadContent.
        let wrong = ObjRef::new("p/", 2, 124, 4096);
        let error = conn.get_object("b", &wrong.key, 4096, Some(content)).await.expect_err("mismatch");
        assert_eq!(error.code, "BadContent");
        let error = conn.get_object("b", "unknown", 1, None).await.expect_err("unknown key");
        assert_eq!(error.code, "NoSuchKey");
        conn.delete_object("b", &object.key).await.expect("delete");
        let id = conn.create_multipart("b", &object.key).await.expect("create upload");
        let etag = conn.upload_part("b", &object.key, &id, 1, Bytes::from_static(b"x")).await.expect("part");
        conn.complete_multipart("b", &object.key, &id, &[(1, etag)]).await.expect("complete");
        assert_eq!(conn.delete_objects("b", std::slice::from_ref(&object.key)).await.expect("delete objects"), 0);
        server.stop();
    }

    #[tokio::test]
    async fn lists_list_directories_in_pages() {
        let (server, _, mut conn) = started().await;
        let dir = data::list_dir("run/", 250);
        let mut token = None;
        let mut seen = 0;
        let mut pages = 0;
        loop {
            let page = conn.list_page("b", &dir, token.as_deref(), 100).await.expect("page");
            seen += page.keys.len();
            pages += 1;
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!((seen, pages), (250, 3));
        assert!(conn.list_page("b", "run/", None, 100).await.expect("page").keys.is_empty());
        server.stop();
    }

    #[tokio::test]
    async fn receives_signed_requests() {
        // The null server checks no signature; here a raw server checks the shape of what the client sends.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            let (tx, rx) = tokio::sync::oneshot::channel();
            let tx = std::sync::Mutex::new(Some(tx));
            let service = service_fn(move |request: Request<Incoming>| {
                if let Some(tx) = tx.lock().expect("lock").take() {
                    let _ = tx.send(request.headers().clone());
                }
                async { Ok::<_, Infallible>(response(StatusCode::OK, Bytes::new())) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            rx.await.expect("headers")
        });
        let endpoint = Endpoint::parse(&format!("http://{addr}")).expect("endpoint");
        let cfg = TargetConfig::new(endpoint, "AKID", "SECRET", "eu-west-3", Duration::from_secs(5));
        let mut conn = S3Conn::new(Arc::new(cfg));
        conn.put_object("bucket", "key", Bytes::from_static(b"hello")).await.expect("put");
        drop(conn);
        let headers = seen.await.expect("server task");
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).expect("authorization").to_string();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"), "{auth}");
        assert!(auth.contains("/eu-west-3/s3/aws4_request, SignedHeaders="), "{auth}");
        let signature = auth.rsplit("Signature=").next().expect("signature");
        assert_eq!(signature.len(), 64);
        assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(headers.get("x-amz-content-sha256").map(|v| v.as_bytes()), Some(&b"UNSIGNED-PAYLOAD"[..]));
        assert_eq!(headers.get("content-length").map(|v| v.as_bytes()), Some(&b"5"[..]));
        assert_eq!(headers.get("host").and_then(|v| v.to_str().ok()), Some(addr.to_string().as_str()));
    }
}
