//! A lean S3 client: HTTP/1.1 over hyper's connection API, one keep-alive connection per worker, SigV4 signing
//! with `aws-sigv4` (path-style addressing, `UNSIGNED-PAYLOAD`), bodies sent as `Bytes` slices of the shared
//! buffer and responses streamed (and verified when asked) without being collected.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, ETAG, HOST};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::net::TcpStream;

/// Characters SigV4 leaves unencoded in query values.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// The same in paths, where `/` separates segments.
const PATH: &AsciiSet = &QUERY.remove(b'/');

/// Error bodies are read up to this many bytes (the rest is drained and dropped).
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A failed operation, classified: the S3 error code from the response's `<Code>`, `HTTP<status>` when a response
/// carries no code (HEAD), or a client-side class: `Connection`, `Timeout`, `BadContent`, `BadResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub code: Cow<'static, str>,
    pub detail: String,
}

impl OpError {
    pub fn new(code: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> OpError {
        OpError { code: code.into(), detail: detail.into() }
    }

    fn connection(e: impl fmt::Display) -> OpError {
        OpError::new("Connection", e.to_string())
    }

    pub fn bad_content(detail: impl Into<String>) -> OpError {
        OpError::new("BadContent", detail)
    }

    fn bad_response(detail: impl Into<String>) -> OpError {
        OpError::new("BadResponse", detail)
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() { write!(f, "{}", self.code) } else { write!(f, "{}: {}", self.code, self.detail) }
    }
}

impl std::error::Error for OpError {}

pub type OpResult<T> = Result<T, OpError>;

/// An `http://host:port` endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `http://authority`, no trailing slash.
    pub url: String,
    /// The `Host` header value.
    pub authority: String,
    /// What to connect to.
    pub connect: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let uri: http::Uri = url.trim_end_matches('/').parse().with_context(|| format!("bad endpoint URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => bail!("{url}: https endpoints are not supported (the load generator speaks plain HTTP)"),
            _ => bail!("{url}: the endpoint must be an http:// URL"),
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            bail!("{url}: the endpoint must have no path (buckets are addressed path-style)");
        }
        let authority = uri.authority().context("the endpoint URL has no host")?;
        let port = authority.port_u16().unwrap_or(80);
        let host = authority.host();
        Ok(Endpoint {
            url: format!("http://{authority}"),
            authority: authority.to_string(),
            connect: format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']')),
        })
    }
}

/// Everything a connection needs to reach and sign for one endpoint.
pub struct TargetConfig {
    pub endpoint: Endpoint,
    identity: Identity,
    region: String,
    settings: SigningSettings,
    pub timeout: Duration,
}

impl TargetConfig {
    pub fn new(
        endpoint: Endpoint,
        access_key: &str,
        secret_key: &str,
        region: &str,
        timeout: Duration,
    ) -> TargetConfig {
        let identity = Credentials::new(access_key, secret_key, None, None, "coffer-loadtest").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        TargetConfig { endpoint, identity, region: region.to_string(), settings, timeout }
    }

    /// Builds and signs a request; `path_and_query` is already percent-encoded.
    fn signed_request(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> OpResult<Request<Full<Bytes>>> {
        let url = format!("{}{}", self.endpoint.url, path_and_query);
        let to_sign = std::iter::once(("host", self.endpoint.authority.as_str()))
            .chain(headers.iter().map(|(name, value)| (*name, value.as_str())));
        let signable = SignableRequest::new(method.as_str(), url, to_sign, SignableBody::UnsignedPayload)
            .map_err(|e| OpError::new("Signing", e.to_string()))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(self.settings.clone())
            .build()
            .map_err(|e| OpError::new("Signing", e.to_string()))?
            .into();
        let (instructions, _signature) =
            sign(signable, &params).map_err(|e| OpError::new("Signing", e.to_string()))?.into_parts();
        let mut builder =
            Request::builder().method(method.clone()).uri(path_and_query).header(HOST, &self.endpoint.authority);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        for (name, value) in instructions.headers() {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(body)).map_err(|e| OpError::new("Signing", e.to_string()))
    }
}

/// One keep-alive connection to an endpoint, reconnected when the server closes it or a request fails.
pub struct S3Conn {
    cfg: Arc<TargetConfig>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub next_token: Option<String>,
}

/// A whole object as a GET returned it.
#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// The ETag header, without its quotes.
    pub etag: Option<String>,
}

/// Runs an operation under the target's timeout; a timed-out connection is dropped.
macro_rules! timed {
    ($self:ident, $fut:expr) => {{
        let timeout = $self.cfg.timeout;
        match tokio::time::timeout(timeout, $fut).await {
            Ok(result) => {
                if result.as_ref().is_err_and(|e: &OpError| e.code == "Connection") {
                    $self.sender = None;
                }
                result
            }
            Err(_) => {
                $self.sender = None;
                Err(OpError::new(
                    "Timeout",
                    format!("no complete answer within {}", humantime::format_duration(timeout)),
                ))
            }
        }
    }};
}

impl S3Conn {
    pub fn new(cfg: Arc<TargetConfig>) -> S3Conn {
        S3Conn { cfg, sender: None }
    }

    async fn connect(&self) -> OpResult<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(&self.cfg.endpoint.connect).await.map_err(OpError::connection)?;
        stream.set_nodelay(true).map_err(OpError::connection)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(OpError::connection)?;
        tokio::spawn(async move {
            // Errors surface on the requests; the connection task just ends.
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// Sends a signed request on the connection, reconnecting when it is gone. A request that fails on a reused
    /// connection before any answer (the server closed it while idle) is retried once on a new one.
    async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> OpResult<Response<Incoming>> {
        for attempt in 0..2 {
            let reused = match self.sender.as_mut() {
                Some(sender) => sender.ready().await.is_ok(),
                None => false,
            };
            if !reused {
                self.sender = Some(self.connect().await?);
            }
            let request = self.cfg.signed_request(&method, path_and_query, headers, body.clone())?;
            let sender = self.sender.as_mut().ok_or_else(|| OpError::connection("no connection"))?;
            match sender.send_request(request).await {
                Ok(response) => return Ok(response),
                Err(e) => {
                    self.sender = None;
                    let retry = reused && attempt == 0 && (e.is_canceled() || e.is_incomplete_message());
                    if !retry {
                        return Err(OpError::connection(e));
                    }
                }
            }
        }
        Err(OpError::connection("connection closed twice"))
    }

    /// Turns a non-success response into its error (reading and dropping the body).
    async fn error_from(response: Response<Incoming>) -> OpError {
        let status = response.status();
        let body = match read_limited(response.into_body(), ERROR_BODY_LIMIT).await {
            Ok(body) => body,
            Err(e) => return OpError::connection(e),
        };
        error_from_body(status, &body)
    }

    async fn expect_success(&mut self, response: Response<Incoming>) -> OpResult<Response<Incoming>> {
        if response.status().is_success() { Ok(response) } else { Err(Self::error_from(response).await) }
    }

    /// A request whose answer carries nothing but success or an S3 error; the body is read to the end so the
    /// connection can be reused.
    async fn exchange(&mut self, method: Method, path_and_query: &str, body: Bytes) -> OpResult<()> {
        let response = self.send(method, path_and_query, &[], body).await?;
        let response = self.expect_success(response).await?;
        drain(response.into_body()).await.map_err(OpError::connection)?;
        Ok(())
    }

    pub async fn head_bucket(&mut self, bucket: &str) -> OpResult<bool> {
        timed!(self, async {
            let response = self.send(Method::HEAD, &bucket_path(bucket), &[], Bytes::new()).await?;
            let status = response.status();
            drain(response.into_body()).await.map_err(OpError::connection)?;
            match status {
                s if s.is_success() => Ok(true),
                StatusCode::NOT_FOUND => Ok(false),
                s => Err(OpError::new(format!("HTTP{}", s.as_u16()), "HEAD bucket")),
            }
        })
    }

    /// Creates the bucket; `Ok(false)` when it was already ours.
    pub async fn create_bucket(&mut self, bucket: &str) -> OpResult<bool> {
        timed!(self, async {
            let response = self.send(Method::PUT, &bucket_path(bucket), &[], Bytes::new()).await?;
            if response.status().is_success() {
                drain(response.into_body()).await.map_err(OpError::connection)?;
                return Ok(true);
            }
            let error = Self::error_from(response).await;
            if error.code == "BucketAlreadyOwnedByYou" { Ok(false) } else { Err(error) }
        })
    }

    pub async fn delete_bucket(&mut self, bucket: &str) -> OpResult<()> {
        timed!(self, async { self.exchange(Method::DELETE, &bucket_path(bucket), Bytes::new()).await })
    }

    pub async fn put_object(&mut self, bucket: &str, key: &str, body: Bytes) -> OpResult<()> {
        timed!(self, async { self.exchange(Method::PUT, &object_path(bucket, key), body).await })
    }

    /// GETs an object of `expected_len` bytes; with `verify`, compares every byte against it as it streams.
    pub async fn get_object(
        &mut self,
        bucket: &str,
        key: &str,
        expected_len: u64,
        verify: Option<&[u8]>,
    ) -> OpResult<u64> {
        timed!(self, async {
            let response = self.send(Method::GET, &object_path(bucket, key), &[], Bytes::new()).await?;
            let response = self.expect_success(response).await?;
            let (received, matches) = match verify {
                Some(expected) => drain_verify(response.into_body(), expected).await,
                None => drain(response.into_body()).await.map(|n| (n, true)),
            }
            .map_err(OpError::connection)?;
            if received != expected_len {
                return Err(OpError::bad_content(format!("{key}: {received} bytes, expected {expected_len}")));
            }
            if !matches {
                return Err(OpError::bad_content(format!("{key}: the bytes differ from what was written")));
            }
            Ok(received)
        })
    }

    /// HEADs an object and checks its Content-Length.
    pub async fn head_object(&mut self, bucket: &str, key: &str, expected_len: u64) -> OpResult<()> {
        timed!(self, async {
            let response = self.send(Method::HEAD, &object_path(bucket, key), &[], Bytes::new()).await?;
            let status = response.status();
            let length = header_u64(&response, CONTENT_LENGTH);
            drain(response.into_body()).await.map_err(OpError::connection)?;
            if !status.is_success() {
                let code = if status == StatusCode::NOT_FOUND { "NoSuchKey".into() } else { status_code(status) };
                return Err(OpError::new(code, format!("HEAD {key}")));
            }
            match length {
                Some(n) if n == expected_len => Ok(()),
                other => Err(OpError::bad_content(format!("{key}: Content-Length {other:?}, expected {expected_len}"))),
            }
        })
    }

    /// GETs a whole object into memory with its ETag (quotes removed); `Ok(None)` for NoSuchKey.
    pub async fn get_object_full(&mut self, bucket: &str, key: &str) -> OpResult<Option<Fetched>> {
        timed!(self, async {
            let response = self.send(Method::GET, &object_path(bucket, key), &[], Bytes::new()).await?;
            if !response.status().is_success() {
                let error = Self::error_from(response).await;
                return if error.code == "NoSuchKey" { Ok(None) } else { Err(error) };
            }
            let etag = header_etag(&response);
            let body = read_limited(response.into_body(), usize::MAX).await.map_err(OpError::connection)?;
            Ok(Some(Fetched { body, etag }))
        })
    }

    /// HEADs an object: `Ok(Some((Content-Length, ETag)))`, or `Ok(None)` for 404.
    pub async fn head_object_meta(&mut self, bucket: &str, key: &str) -> OpResult<Option<(u64, Option<String>)>> {
        timed!(self, async {
            let response = self.send(Method::HEAD, &object_path(bucket, key), &[], Bytes::new()).await?;
            let status = response.status();
            let length = header_u64(&response, CONTENT_LENGTH);
            let etag = header_etag(&response);
            drain(response.into_body()).await.map_err(OpError::connection)?;
            match (status, length) {
                (StatusCode::NOT_FOUND, _) => Ok(None),
                (s, Some(length)) if s.is_success() => Ok(Some((length, etag))),
                (s, None) if s.is_success() => Err(OpError::bad_response(format!("HEAD {key}: no Content-Length"))),
                (s, _) => Err(OpError::new(status_code(s), format!("HEAD {key}"))),
            }
        })
    }

    pub async fn delete_object(&mut self, bucket: &str, key: &str) -> OpResult<()> {
        timed!(self, async { self.exchange(Method::DELETE, &object_path(bucket, key), Bytes::new()).await })
    }

    /// One ListObjectsV2 page.
    pub async fn list_page(
        &mut self,
        bucket: &str,
        prefix: &str,
        token: Option<&str>,
        max_keys: u32,
    ) -> OpResult<ListPage> {
        timed!(self, async {
            let mut query = format!("list-type=2&max-keys={max_keys}&prefix={}", encode_query(prefix));
            if let Some(token) = token {
                query.push_str("&continuation-token=");
                query.push_str(&encode_query(token));
            }
            let path = format!("{}?{query}", bucket_path(bucket));
            let response = self.send(Method::GET, &path, &[], Bytes::new()).await?;
            let response = self.expect_success(response).await?;
            let body = read_limited(response.into_body(), usize::MAX).await.map_err(OpError::connection)?;
            parse_list_page(&body)
        })
    }

    pub async fn create_multipart(&mut self, bucket: &str, key: &str) -> OpResult<String> {
        timed!(self, async {
            let path = format!("{}?uploads", object_path(bucket, key));
            let response = self.send(Method::POST, &path, &[], Bytes::new()).await?;
            let response = self.expect_success(response).await?;
            let body = read_limited(response.into_body(), ERROR_BODY_LIMIT).await.map_err(OpError::connection)?;
            let xml = String::from_utf8_lossy(&body);
            xml_tags(&xml, "UploadId")
                .next()
                .map(unescape_xml)
                .ok_or_else(|| OpError::bad_response("CreateMultipartUpload answer without UploadId"))
        })
    }

    /// Uploads a part; returns its ETag.
    pub async fn upload_part(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> OpResult<String> {
        timed!(self, async {
            let path =
                format!("{}?partNumber={part_number}&uploadId={}", object_path(bucket, key), encode_query(upload_id));
            let response = self.send(Method::PUT, &path, &[], body).await?;
            let response = self.expect_success(response).await?;
            let etag = response.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_string);
            drain(response.into_body()).await.map_err(OpError::connection)?;
            etag.ok_or_else(|| OpError::bad_response("UploadPart answer without ETag"))
        })
    }

    pub async fn complete_multipart(
        &mut self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> OpResult<()> {
        timed!(self, async {
            let mut xml = String::with_capacity(64 + parts.len() * 96);
            xml.push_str("<CompleteMultipartUpload>");
            for (number, etag) in parts {
                xml.push_str(&format!(
                    "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                    escape_xml(etag)
                ));
            }
            xml.push_str("</CompleteMultipartUpload>");
            let path = format!("{}?uploadId={}", object_path(bucket, key), encode_query(upload_id));
            let response = self.send(Method::POST, &path, &[], Bytes::from(xml)).await?;
            let status = response.status();
            let body = read_limited(response.into_body(), ERROR_BODY_LIMIT).await.map_err(OpError::connection)?;
            // CompleteMultipartUpload can fail with 200 and an <Error> body.
            if !status.is_success() || body.windows(7).any(|w| w == b"<Error>") {
                return Err(error_from_body(status, &body));
            }
            Ok(())
        })
    }

    pub async fn abort_multipart(&mut self, bucket: &str, key: &str, upload_id: &str) -> OpResult<()> {
        timed!(self, async {
            let path = format!("{}?uploadId={}", object_path(bucket, key), encode_query(upload_id));
            self.exchange(Method::DELETE, &path, Bytes::new()).await
        })
    }

    /// DeleteObjects (quiet); returns how many keys the server reported as not deleted.
    pub async fn delete_objects(&mut self, bucket: &str, keys: &[String]) -> OpResult<usize> {
        timed!(self, async {
            let mut xml = String::with_capacity(64 + keys.iter().map(|k| k.len() + 32).sum::<usize>());
            xml.push_str("<Delete><Quiet>true</Quiet>");
            for key in keys {
                xml.push_str("<Object><Key>");
                xml.push_str(&escape_xml(key));
                xml.push_str("</Key></Object>");
            }
            xml.push_str("</Delete>");
            let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(xml.as_bytes()));
            let headers = [("content-md5", md5)];
            let path = format!("{}?delete", bucket_path(bucket));
            let response = self.send(Method::POST, &path, &headers, Bytes::from(xml)).await?;
            let response = self.expect_success(response).await?;
            let body = read_limited(response.into_body(), usize::MAX).await.map_err(OpError::connection)?;
            Ok(xml_tags(&String::from_utf8_lossy(&body), "Error").count())
        })
    }
}

fn status_code(status: StatusCode) -> Cow<'static, str> {
    format!("HTTP{}", status.as_u16()).into()
}

/// The error an S3 error body describes: its `<Code>` and `<Message>`, or `HTTP<status>`.
pub fn error_from_body(status: StatusCode, body: &[u8]) -> OpError {
    let xml = String::from_utf8_lossy(body);
    let message = xml_tags(&xml, "Message").next().map(unescape_xml).unwrap_or_default();
    match xml_tags(&xml, "Code").next() {
        Some(code) if !code.trim().is_empty() => OpError::new(unescape_xml(code.trim()), message),
        _ => OpError::new(status_code(status), message),
    }
}

/// The ETag header without its quotes.
fn header_etag(response: &Response<Incoming>) -> Option<String> {
    let value = response.headers().get(ETAG)?.to_str().ok()?;
    Some(value.trim().trim_matches('"').to_string())
}

fn header_u64(response: &Response<Incoming>, name: http::header::HeaderName) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

pub fn encode_query(value: &str) -> String {
    utf8_percent_encode(value, QUERY).to_string()
}

pub fn bucket_path(bucket: &str) -> String {
    format!("/{}", utf8_percent_encode(bucket, QUERY))
}

pub fn object_path(bucket: &str, key: &str) -> String {
    format!("/{}/{}", utf8_percent_encode(bucket, QUERY), utf8_percent_encode(key, PATH))
}

/// Reads a body to its end, counting the bytes and keeping none.
pub async fn drain(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}

/// Reads a body to its end, comparing it with `expected` chunk by chunk; returns the byte count and whether every
/// byte matched (a longer body does not match).
pub async fn drain_verify(mut body: Incoming, expected: &[u8]) -> Result<(u64, bool), hyper::Error> {
    let mut n = 0usize;
    let mut matches = true;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if matches {
                matches = expected.get(n..n + data.len()).is_some_and(|slice| slice == &data[..]);
            }
            n += data.len();
        }
    }
    Ok((n as u64, matches))
}

/// Reads a body, keeping at most `limit` bytes (the rest is read and dropped).
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(out)
}

/// The text of every `<tag>…</tag>` element (not nested, no attributes), in order.
pub fn xml_tags<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let len = rest[start..].find(&close)?;
        let text = &rest[start..start + len];
        rest = &rest[start + len + close.len()..];
        Some(text)
    })
}

pub fn unescape_xml(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

pub fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

pub fn parse_list_page(body: &[u8]) -> OpResult<ListPage> {
    let xml = String::from_utf8_lossy(body);
    if !xml.contains("<ListBucketResult") {
        return Err(OpError::bad_response("ListObjectsV2 answer without ListBucketResult"));
    }
    let truncated = xml_tags(&xml, "IsTruncated").next().is_some_and(|v| v.trim() == "true");
    let keys = xml_tags(&xml, "Key").map(unescape_xml).collect();
    let next_token = xml_tags(&xml, "NextContinuationToken").next().map(unescape_xml);
    if truncated && next_token.is_none() {
        return Err(OpError::bad_response("truncated listing without NextContinuationToken"));
    }
    Ok(ListPage { keys, next_token: if truncated { next_token } else { None } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:9000/").expect("endpoint");
        assert_eq!(
            (e.url.as_str(), e.authority.as_str(), e.connect.as_str()),
            ("http://127.0.0.1:9000", "127.0.0.1:9000", "127.0.0.1:9000")
        );
        let e = Endpoint::parse("http://localhost").expect("endpoint");
        assert_eq!(e.connect, "localhost:80");
        let e = Endpoint::parse("http://[::1]:9000").expect("endpoint");
        assert_eq!(e.connect, "::1:9000");
        assert!(Endpoint::parse("https://example.com").is_err());
        assert!(Endpoint::parse("http://h:1/bucket").is_err());
    }

    #[test]
    fn encodes_paths_and_queries() {
        assert_eq!(object_path("b", "a b/c+d~e"), "/b/a%20b/c%2Bd~e");
        assert_eq!(encode_query("a/b=c"), "a%2Fb%3Dc");
    }

    #[test]
    fn parses_error_bodies() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>a &amp; b</Message></Error>";
        let e = error_from_body(StatusCode::NOT_FOUND, body);
        assert_eq!(e.code, "NoSuchKey");
        assert_eq!(e.detail, "a & b");
        assert_eq!(error_from_body(StatusCode::SERVICE_UNAVAILABLE, b"").code, "HTTP503");
    }

    #[test]
    fn parses_list_pages() {
        let body = b"<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a&amp;1</Key></Contents>\
<Contents><Key>b</Key></Contents><NextContinuationToken>t+/=</NextContinuationToken></ListBucketResult>";
        let page = parse_list_page(body).expect("page");
        assert_eq!(page.keys, vec!["a&1".to_string(), "b".to_string()]);
        assert_eq!(page.next_token.as_deref(), Some("t+/="));
        let last =
            parse_list_page(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").expect("page");
        assert!(last.keys.is_empty() && last.next_token.is_none());
        assert!(parse_list_page(b"<Error/>").is_err());
    }

    #[test]
    fn signs_requests() {
        let endpoint = Endpoint::parse("http://127.0.0.1:9000").expect("endpoint");
        let cfg = TargetConfig::new(endpoint, "AKID", "SECRET", "us-east-1", Duration::from_secs(1));
        let request = cfg
            .signed_request(&Method::PUT, "/b/k?partNumber=1&uploadId=x", &[], Bytes::from_static(b"hi"))
            .expect("signed");
        let headers = request.headers();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).expect("authorization");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"), "{auth}");
        assert!(auth.contains("/us-east-1/s3/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"), "{auth}");
        assert_eq!(headers.get("x-amz-content-sha256").map(|v| v.as_bytes()), Some(&b"UNSIGNED-PAYLOAD"[..]));
        assert_eq!(headers.get("host").map(|v| v.as_bytes()), Some(&b"127.0.0.1:9000"[..]));
        assert!(headers.contains_key("x-amz-date"));
        assert_eq!(request.uri(), "/b/k?partNumber=1&uploadId=x");
    }
}
