//! Bulk upload (`PUT /v1/AUTH_acct[/container[/prefix]]?extract-archive=tar|tar.gz|tar.bz2`, as
//! Swift's bulk middleware): every regular file of the archive becomes the object
//! `container[/prefix]/member path` (at the account, the member path's first component is the
//! container, created when missing), written with the caller's own rights; the answer is the bulk
//! report (`bulk.rs`).
//!
//! Nothing is held whole: a blocking thread reads the request body (through gzip or bzip2) as a
//! tar stream and hands each member to the async side with its data in a bounded channel, which
//! the member's object PUT consumes as its body.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, Read};
use std::rc::Rc;

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use s3s::S3;
use s3s::dto::{CreateBucketInput, StreamingBlob};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::bulk::{self, Report};
use super::listing::Format;
use super::response::{self, SwiftResponse};
use super::{Access, SwiftApi, Target, header, query_pairs, query_value, upload};

/// Swift's defaults, advertised in `/info`.
pub const MAX_CONTAINERS_PER_EXTRACTION: usize = 10_000;
pub const MAX_FAILED_EXTRACTIONS: usize = 1_000;
/// A member's data travels in chunks of this size, at most `MEMBER_CHUNKS` of them in flight.
const CHUNK_BYTES: usize = 64 * 1024;
const MEMBER_CHUNKS: usize = 4;
/// What the tar reader may read on its own between two members: headers, GNU long names and pax
/// records, which it keeps in memory whole.
const MAX_METADATA_BYTES: u64 = 1 << 20;
/// After the archive ends (or the extraction stops), at most this much more of the body is read
/// and dropped, so that a client still sending gets its answer; beyond it the connection closes.
const DRAIN_LIMIT: u64 = 64 << 20;
/// Swift's name for the error of a path that is not UTF-8.
const NOT_UTF8: StatusCode = StatusCode::PRECONDITION_FAILED;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
}

impl Compression {
    /// The `extract-archive` value as Swift reads it (case and surrounding dots ignored).
    pub fn from_query(value: &str) -> Option<Compression> {
        match value.trim_matches('.').to_ascii_lowercase().as_str() {
            "tar" => Some(Compression::None),
            "tar.gz" => Some(Compression::Gzip),
            "tar.bz2" => Some(Compression::Bzip2),
            _ => None,
        }
    }
}

pub async fn extract(
    api: &SwiftApi,
    req: Request<Incoming>,
    target: Target,
    compression: Compression,
) -> SwiftResponse {
    let format =
        Format::choose(query_value(&query_pairs(req.uri().query()), "format"), header(req.headers(), "accept"));
    let chunked =
        header(req.headers(), "transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    if !req.headers().contains_key("content-length") && !chunked {
        let mut report = Report::new("extract", StatusCode::LENGTH_REQUIRED);
        report.count("Number Files Created", 0);
        return bulk::streamed(format, async { report });
    }
    let base = match (&target.container, &target.object) {
        (Some(c), Some(o)) => format!("{c}/{o}"),
        (Some(c), None) => c.clone(),
        _ => String::new(),
    };
    let (parts, mut body) = req.into_parts();
    // Read before answering: a client that sent `Expect: 100-continue` is told to go on by this
    // first read, which must come before the answer's head.
    let first = body.frame().await;
    let reader = BodyReader::new(body, first, Handle::current());
    let (events, members) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || read_archive(reader, compression, events));
    let extraction = Extraction::new(api.clone(), target, base.trim_end_matches('/').to_string(), &parts.headers);
    bulk::streamed(format, extraction.run(members))
}

/// What the archive reader hands over.
enum Event {
    Member(Member),
    /// The archive is malformed (Swift's `Invalid Tar File: …`).
    Invalid(String),
}

/// A regular file of the archive; its data follows in `data`, which the reader stops filling when
/// it is dropped.
struct Member {
    path: Vec<u8>,
    size: u64,
    /// Object headers from its pax records (`Content-Type`, `X-Object-Meta-*`).
    headers: Vec<(HeaderName, HeaderValue)>,
    data: mpsc::Receiver<io::Result<Bytes>>,
}

/// The async side: one member after the other, as Swift's `handle_extract_iter`.
struct Extraction {
    api: SwiftApi,
    target: Target,
    /// `container[/prefix]` of the request path, or empty at the account.
    base: String,
    /// The request's headers that every object gets (Swift's whitelist).
    copied: HeaderMap,
    report: Report,
    created: u64,
    containers_created: usize,
    /// Containers already checked (and created if missing).
    accessed: HashSet<String>,
    /// 400, or 502 once a write failed on the server's side.
    failure: StatusCode,
}

/// How one member ends the extraction early, as Swift's raised errors do.
struct Stop(StatusCode, String);

impl Extraction {
    fn new(api: SwiftApi, target: Target, base: String, request: &HeaderMap) -> Extraction {
        let copied = request
            .iter()
            .filter(|(name, _)| {
                let name = name.as_str();
                name == "x-delete-at" || name == "x-delete-after" || name.starts_with("x-object-meta-")
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        // Member writes are the caller's own: never a TempURL's (its signature names one path).
        let target = Target { tempurl: None, method: Method::PUT.to_string(), ..target };
        Extraction {
            api,
            target,
            base,
            copied,
            report: Report::new("extract", StatusCode::CREATED),
            created: 0,
            containers_created: 0,
            accessed: HashSet::new(),
            failure: StatusCode::BAD_REQUEST,
        }
    }

    async fn run(mut self, mut members: mpsc::Receiver<Event>) -> Report {
        while let Some(event) = members.recv().await {
            let member = match event {
                Event::Member(member) => member,
                Event::Invalid(why) => {
                    self.report.count("Number Files Created", self.created);
                    self.report.fail(StatusCode::BAD_REQUEST, &format!("Invalid Tar File: {why}"));
                    return self.report;
                }
            };
            if self.report.error_count() >= MAX_FAILED_EXTRACTIONS {
                break;
            }
            if let Err(Stop(status, body)) = self.member(member).await {
                self.report.count("Number Files Created", self.created);
                self.report.fail(status, &body);
                return self.report;
            }
        }
        self.report.count("Number Files Created", self.created);
        if self.report.error_count() > 0 {
            self.report.fail(self.failure, "");
        } else if self.created == 0 {
            self.report.fail(StatusCode::BAD_REQUEST, "Invalid Tar File: No Valid Files");
        }
        self.report
    }

    async fn member(&mut self, member: Member) -> Result<(), Stop> {
        let Some(path) = object_path(&self.base, &member.path) else { return Ok(()) };
        let Some(text) = std::str::from_utf8(&path).ok().filter(|p| !p.contains('\0')) else {
            self.report.error(&path, NOT_UTF8);
            return Ok(());
        };
        if member.size > crate::s3::convert::MAX_PUT_BYTES {
            self.report.error(&path, StatusCode::PAYLOAD_TOO_LARGE);
            return Ok(());
        }
        let (container, name) = text.split_once('/').unwrap_or((text, ""));
        let mut container_failure = None;
        if !self.accessed.contains(container) {
            match self.ensure_container(container).await {
                Ok(true) => {
                    self.containers_created += 1;
                    if self.containers_created > MAX_CONTAINERS_PER_EXTRACTION {
                        let why = format!("More than {MAX_CONTAINERS_PER_EXTRACTION} containers to create from tar.");
                        return Err(Stop(StatusCode::BAD_REQUEST, why));
                    }
                }
                Ok(false) => {}
                // The object's write may still be allowed (by an ACL): report this only if it is not.
                Err(StatusCode::UNAUTHORIZED) => return Err(Stop(StatusCode::UNAUTHORIZED, String::new())),
                Err(status) => container_failure = Some((format!("/v1/{}/{container}", self.target.account), status)),
            }
        }
        let status = self.write(container, name, member).await;
        if self.accessed.len() >= MAX_CONTAINERS_PER_EXTRACTION {
            self.accessed.clear();
        }
        self.accessed.insert(container.to_string());
        if status.is_success() {
            self.created += 1;
            return Ok(());
        }
        if let Some((container_path, status)) = container_failure {
            self.report.error(container_path.as_bytes(), status);
        }
        if status == StatusCode::UNAUTHORIZED {
            self.report.error(&path, status);
            return Err(Stop(StatusCode::UNAUTHORIZED, String::new()));
        }
        if status.is_server_error() {
            self.failure = StatusCode::BAD_GATEWAY;
        }
        self.report.error(&path, status);
        Ok(())
    }

    /// The member's object PUT, with the caller's rights; its status.
    async fn write(&self, container: &str, name: &str, member: Member) -> StatusCode {
        let target = Target {
            container: Some(container.to_string()),
            object: Some(name.to_string()),
            path: format!("/v1/{}/{container}/{name}", self.target.account),
            ..self.target.clone()
        };
        if let Err(denied) = self.api.allowed(&target, Access::ObjectWrite).await {
            return denied.status();
        }
        let mut headers = self.copied.clone();
        headers.extend(member.headers.into_iter().map(|(n, v)| (Some(n), v)));
        let body = StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(member.data));
        match upload::put(&self.api, &target, &headers, body, member.size).await {
            Ok(status) => status,
            Err(answer) => answer.status(),
        }
    }

    /// Swift's `create_container`: `Ok(true)` when the container was created, `Ok(false)` when it
    /// exists, else the status of the refusal.
    async fn ensure_container(&self, name: &str) -> Result<bool, StatusCode> {
        let owners = &self.api.authorizer.owners;
        match owners.owner(name).await {
            Ok(Some(owner)) if owner == self.target.account => return Ok(false),
            Ok(_) => {}
            Err(e) => return Err(response::from_s3(&e.into()).status()),
        }
        if name.len() > super::MAX_CONTAINER_NAME {
            return Err(StatusCode::BAD_REQUEST);
        }
        let target = Target { container: Some(name.to_string()), object: None, ..self.target.clone() };
        self.api.allowed(&target, Access::ContainerAdmin).await.map_err(|refused| refused.status())?;
        let input =
            CreateBucketInput::builder().bucket(name.to_string()).build().map_err(|_| StatusCode::BAD_REQUEST)?;
        let created = match self.api.s3.create_bucket(self.api.s3_request(&target, input, HeaderMap::new())).await {
            Ok(_) => Ok(true),
            Err(e) if *e.code() == s3s::S3ErrorCode::BucketAlreadyOwnedByYou => Ok(false),
            Err(e) => Err(response::from_s3(&e).status()),
        };
        owners.forget(name);
        created
    }
}

/// The path (`container/object…`) a member is written to, as Swift builds it: a leading `./` and
/// `/`s dropped, under `base`; `None` for a file at the account's top level, which Swift ignores.
fn object_path(base: &str, member: &[u8]) -> Option<Vec<u8>> {
    let mut path = member.strip_prefix(b"./").unwrap_or(member);
    while let Some(rest) = path.strip_prefix(b"/") {
        path = rest;
    }
    let full = if base.is_empty() { path.to_vec() } else { [base.as_bytes(), b"/", path].concat() };
    full.contains(&b'/').then_some(full)
}

/// Object headers from a member's pax records, as Swift maps them: the `user.mime_type` extended
/// attribute is the content type, `user.meta.*` attributes are object metadata (GNU tar and
/// libarchive spellings).
fn pax_headers<'a>(records: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    for (key, value) in records {
        let Some(attribute) = key.strip_prefix("SCHILY.xattr.").or_else(|| key.strip_prefix("LIBARCHIVE.xattr."))
        else {
            continue;
        };
        let name = match attribute {
            "user.mime_type" => Some("content-type".to_string()),
            other => other.strip_prefix("user.meta.").map(|m| format!("x-object-meta-{}", m.to_ascii_lowercase())),
        };
        if let Some(name) = name
            && let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_bytes(value))
        {
            headers.push((name, value));
        }
    }
    headers
}

/// The blocking side: reads the archive, sends its regular files, then drains the body.
fn read_archive(reader: BodyReader, compression: Compression, events: mpsc::Sender<Event>) {
    let meter = Rc::new(Meter::default());
    let decoded = match compression {
        Compression::None => Decoded::Plain(reader),
        Compression::Gzip => Decoded::Gzip(flate2::read::GzDecoder::new(reader)),
        Compression::Bzip2 => Decoded::Bzip2(bzip2::read::BzDecoder::new(reader)),
    };
    let mut archive = tar::Archive::new(Metered { inner: decoded, meter: meter.clone() });
    if let Err(e) = send_members(&mut archive, &meter, &events) {
        let _ = events.blocking_send(Event::Invalid(readable(&e.to_string())));
    }
    drop(events);
    let mut rest = archive.into_inner().inner.into_body();
    let _ = io::copy(&mut (&mut rest).take(DRAIN_LIMIT), &mut io::sink());
}

/// A reader's error for the report: the tar reader quotes the bytes it could not read, which are
/// the client's and need not be text; the message stops before them.
fn readable(message: &str) -> String {
    let end = message.find(|c: char| !(' '..='~').contains(&c)).unwrap_or(message.len());
    message[..end].trim_end_matches([':', ' ']).chars().take(200).collect()
}

/// Sends every regular file; `Ok` also when the async side stopped listening.
fn send_members<R: Read>(archive: &mut tar::Archive<R>, meter: &Meter, events: &mpsc::Sender<Event>) -> io::Result<()> {
    let mut seen = false;
    for entry in archive.entries()? {
        let mut entry = entry?;
        seen = true;
        meter.metadata.set(0);
        let data = if is_regular_file(&entry) {
            let headers = match entry.pax_extensions()? {
                Some(records) => {
                    let records: Vec<_> = records.filter_map(Result::ok).collect();
                    pax_headers(records.iter().filter_map(|r| Some((r.key().ok()?, r.value_bytes()))))
                }
                None => Vec::new(),
            };
            let (sender, data) = mpsc::channel(MEMBER_CHUNKS);
            let member = Member { path: entry.path_bytes().into_owned(), size: entry.size(), headers, data };
            if events.blocking_send(Event::Member(member)).is_err() {
                return Ok(());
            }
            Some(sender)
        } else {
            None
        };
        meter.in_data.set(true);
        let copied = copy_data(&mut entry, data.as_ref());
        meter.in_data.set(false);
        copied?;
    }
    if !seen {
        // Python's tarfile, which Swift's messages come from.
        let why = if meter.total.get() == 0 { "empty file" } else { "end of file header" };
        return Err(io::Error::new(io::ErrorKind::InvalidData, why));
    }
    Ok(())
}

/// Python's `TarInfo.isfile()`: regular (also old-style and contiguous) and sparse files; an
/// old-style entry whose name ends in `/` is a directory.
fn is_regular_file<R: Read>(entry: &tar::Entry<'_, R>) -> bool {
    let header = entry.header();
    match header.entry_type() {
        tar::EntryType::Regular => !(header.as_bytes()[156] == 0 && entry.path_bytes().ends_with(b"/")),
        tar::EntryType::Continuous | tar::EntryType::GNUSparse => true,
        _ => false,
    }
}

/// Reads an entry's data to its end, sending it while someone listens (a write refused or failed
/// stops listening) and dropping it otherwise, so the reader itself skips nothing.
fn copy_data(entry: &mut impl Read, data: Option<&mpsc::Sender<io::Result<Bytes>>>) -> io::Result<()> {
    let mut listener = data;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match entry.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if let Some(sender) = listener {
                    let _ = sender.blocking_send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                return Err(e);
            }
        };
        if let Some(sender) = listener
            && sender.blocking_send(Ok(Bytes::copy_from_slice(&buffer[..n]))).is_err()
        {
            listener = None;
        }
    }
}

/// What the tar reader has read: in all, and on its own since the last member.
#[derive(Default)]
struct Meter {
    total: Cell<u64>,
    metadata: Cell<u64>,
    in_data: Cell<bool>,
}

/// The decompressed archive, metered (see [`MAX_METADATA_BYTES`]).
struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let meter = &self.meter;
        meter.total.set(meter.total.get() + n as u64);
        if !meter.in_data.get() {
            let read_alone = meter.metadata.get() + n as u64;
            if read_alone > MAX_METADATA_BYTES {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "the archive's headers are too large"));
            }
            meter.metadata.set(read_alone);
        }
        Ok(n)
    }
}

/// The request body, decompressed as the query says.
enum Decoded {
    Plain(BodyReader),
    Gzip(flate2::read::GzDecoder<BodyReader>),
    Bzip2(bzip2::read::BzDecoder<BodyReader>),
}

impl Decoded {
    fn into_body(self) -> BodyReader {
        match self {
            Decoded::Plain(body) => body,
            Decoded::Gzip(decoder) => decoder.into_inner(),
            Decoded::Bzip2(decoder) => decoder.into_inner(),
        }
    }
}

impl Read for Decoded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Plain(body) => body.read(buf),
            Decoded::Gzip(decoder) => decoder.read(buf),
            Decoded::Bzip2(decoder) => decoder.read(buf),
        }
    }
}

/// The request body as a blocking reader (for a `spawn_blocking` thread): one frame at a time.
struct BodyReader {
    body: Incoming,
    pending: Bytes,
    ended: bool,
    handle: Handle,
}

impl BodyReader {
    /// `first` is the body's first frame, already read.
    fn new(body: Incoming, first: Option<Result<Frame<Bytes>, hyper::Error>>, handle: Handle) -> BodyReader {
        let mut reader = BodyReader { body, pending: Bytes::new(), ended: false, handle };
        reader.accept(first).unwrap_or_else(|e| {
            // Reported by the first read.
            reader.pending = Bytes::new();
            reader.ended = true;
            tracing::debug!(error = %e, "the bulk upload's body failed");
        });
        reader
    }

    fn accept(&mut self, frame: Option<Result<Frame<Bytes>, hyper::Error>>) -> io::Result<()> {
        match frame {
            None => self.ended = true,
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    self.pending = data;
                }
            }
        }
        Ok(())
    }
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() {
            if self.ended {
                return Ok(0);
            }
            let frame = self.handle.block_on(self.body.frame());
            self.accept(frame)?;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_land_under_the_request_path_as_swift_places_them() {
        let path =
            |base: &str, member: &str| object_path(base, member.as_bytes()).map(|p| String::from_utf8(p).unwrap());
        assert_eq!(path("", "c/a.txt").as_deref(), Some("c/a.txt"));
        assert_eq!(path("", "./c/d/a.txt").as_deref(), Some("c/d/a.txt"));
        assert_eq!(path("", "//c/a").as_deref(), Some("c/a"));
        assert_eq!(path("", "top.txt"), None, "files at the account's top level are ignored");
        assert_eq!(path("c", "a.txt").as_deref(), Some("c/a.txt"));
        assert_eq!(path("c/pre", "./x/a.txt").as_deref(), Some("c/pre/x/a.txt"));
    }

    #[test]
    fn reader_errors_stop_before_the_clients_bytes() {
        assert_eq!(
            readable("numeric field did not have utf-8 text: \u{7f}\u{1}abc"),
            "numeric field did not have utf-8 text"
        );
        assert_eq!(readable("invalid gzip header"), "invalid gzip header");
    }

    #[test]
    fn archive_names_read_as_swift_reads_them() {
        assert_eq!(Compression::from_query("tar"), Some(Compression::None));
        assert_eq!(Compression::from_query(".TAR.GZ"), Some(Compression::Gzip));
        assert_eq!(Compression::from_query("tar.bz2"), Some(Compression::Bzip2));
        assert_eq!(Compression::from_query("zip"), None);
    }

    #[test]
    fn pax_attributes_become_content_type_and_metadata() {
        let records: Vec<(&str, &[u8])> = vec![
            ("SCHILY.xattr.user.mime_type", b"application/x-test"),
            ("LIBARCHIVE.xattr.user.meta.Lunch", b"burger"),
            ("SCHILY.xattr.user.stuff", b"ignored"),
            ("mtime", b"1.5"),
        ];
        let headers = pax_headers(records.into_iter());
        let shown: Vec<(String, String)> =
            headers.iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string())).collect();
        assert_eq!(
            shown,
            [
                ("content-type".to_string(), "application/x-test".to_string()),
                ("x-object-meta-lunch".to_string(), "burger".to_string())
            ]
        );
    }

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    /// The members the blocking side hands over, with their data.
    fn members_of(bytes: Vec<u8>) -> Result<Vec<(String, Vec<u8>)>, String> {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let (events, mut members) = mpsc::channel(1);
            let reader = std::thread::spawn(move || {
                let meter = Rc::new(Meter::default());
                let mut archive = tar::Archive::new(Metered { inner: &bytes[..], meter: meter.clone() });
                if let Err(e) = send_members(&mut archive, &meter, &events) {
                    let _ = events.blocking_send(Event::Invalid(e.to_string()));
                }
            });
            let mut found = Vec::new();
            while let Some(event) = members.recv().await {
                match event {
                    Event::Member(mut member) => {
                        let mut data = Vec::new();
                        while let Some(chunk) = member.data.recv().await {
                            data.extend_from_slice(&chunk.unwrap());
                        }
                        assert_eq!(data.len() as u64, member.size);
                        found.push((String::from_utf8(member.path).unwrap(), data));
                    }
                    Event::Invalid(why) => return Err(why),
                }
            }
            reader.join().unwrap();
            Ok(found)
        })
    }

    #[test]
    fn regular_files_are_sent_whole_and_directories_skipped() {
        let big = vec![7u8; 3 * CHUNK_BYTES + 5];
        let mut bytes = archive(&[("c/a.txt", b"hello"), ("c/big.bin", &big)]);
        // An old-style (type NUL) entry whose name ends in `/` is a directory, and skipped.
        let mut dir = tar::Header::new_old();
        dir.as_old_mut().name[..6].copy_from_slice(b"c/dir/");
        dir.set_size(0);
        dir.as_mut_bytes()[156] = 0;
        dir.set_cksum();
        bytes.splice(0..0, dir.as_bytes().iter().copied());
        let found = members_of(bytes).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0], ("c/a.txt".to_string(), b"hello".to_vec()));
        assert_eq!(found[1].1, big);
    }

    #[test]
    fn malformed_archives_are_invalid() {
        assert_eq!(members_of(Vec::new()).unwrap_err(), "empty file");
        assert_eq!(members_of(vec![0u8; 1024]).unwrap_err(), "end of file header");
        assert!(members_of(vec![b'x'; 1024]).is_err());
    }
}
