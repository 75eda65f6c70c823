//! Bulk delete (`?bulk-delete`, as Swift's bulk middleware): a text body of newline-separated
//! `/container/object` (or `/container`, which must be empty) paths, each deleted with the
//! caller's own rights; and the report every bulk operation answers with (bulk delete, bulk upload
//! in `bulk_upload.rs`, an SLO's delete), streamed as Swift streams it.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::StreamingBlob;
use serde_json::json;

use super::listing::Format;
use super::response::{self, SwiftResponse};
use super::{Access, SwiftApi, Target, container, header, object, query_pairs, query_value};

/// Swift's default `max_deletes_per_request`.
pub const MAX_DELETES: usize = 10_000;
/// Swift's default `max_failed_deletes`: the delete stops after this many failures.
pub const MAX_FAILED_DELETES: usize = 1_000;
/// Paths are at most 1024 + 256 bytes; this bounds the body the request may send.
const MAX_BODY_BYTES: usize = MAX_DELETES * 1400;
/// Swift's `yield_frequency`: while a bulk operation runs, a space goes out this often so that
/// no client or proxy times the request out.
const YIELD_FREQUENCY: Duration = Duration::from_secs(10);
/// What Python's `urllib.parse.quote` leaves alone: Swift quotes the paths of its error list.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~').remove(b'/');

pub async fn delete(api: &SwiftApi, req: Request<Incoming>, target: Target) -> SwiftResponse {
    let format =
        Format::choose(query_value(&query_pairs(req.uri().query()), "format"), header(req.headers(), "accept"));
    let mut report = Summary::default().report();
    let too_many = format!("Maximum Bulk Deletes: {MAX_DELETES} per request");
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            report.fail(StatusCode::PAYLOAD_TOO_LARGE, &too_many);
            return answer(format, report);
        }
    };
    let text = String::from_utf8_lossy(&body);
    let paths: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| percent_encoding::percent_decode_str(l).decode_utf8_lossy().into_owned())
        .collect();
    if paths.len() > MAX_DELETES {
        report.fail(StatusCode::PAYLOAD_TOO_LARGE, &too_many);
        return answer(format, report);
    }
    let api = api.clone();
    streamed(format, async move { delete_all(&api, &target, paths).await })
}

/// Deletes objects first, then containers (which must be empty by then), as Swift orders them.
async fn delete_all(api: &SwiftApi, target: &Target, paths: Vec<String>) -> Report {
    let (objects, containers): (Vec<String>, Vec<String>) =
        paths.into_iter().partition(|p| p.trim_matches('/').contains('/'));
    let mut summary = Summary::default();
    for path in objects.iter().chain(&containers) {
        let trimmed = path.trim_start_matches('/');
        let (name, object_name) = match trimmed.split_once('/') {
            Some((c, o)) if !o.is_empty() => (c.to_string(), Some(o.to_string())),
            _ => (trimmed.trim_end_matches('/').to_string(), None),
        };
        if name.is_empty() {
            summary.count(path, StatusCode::BAD_REQUEST);
            continue;
        }
        let item = Target { container: Some(name.clone()), object: object_name.clone(), ..target.clone() };
        let access = if object_name.is_some() { Access::ObjectWrite } else { Access::ContainerAdmin };
        let answer = match api.allowed(&item, access).await {
            Err(denied) => denied,
            Ok(()) => match &object_name {
                Some(o) => object::delete(api, &item, &name, o).await.unwrap_or_else(|r| r),
                None => container::delete(api, &item, &name).await,
            },
        };
        summary.count(path, answer.status());
        if summary.errors.len() >= MAX_FAILED_DELETES {
            let mut report = summary.report();
            report.fail(StatusCode::BAD_REQUEST, "Max delete failures exceeded");
            return report;
        }
    }
    summary.report()
}

/// The outcome of deleting many paths (bulk delete, and an SLO's segments), reported as Swift's
/// bulk middleware does.
#[derive(Default)]
pub struct Summary {
    deleted: u64,
    not_found: u64,
    /// Swift answers 502 instead of 400 when a failure was the server's.
    server_failed: bool,
    errors: Vec<(String, StatusCode)>,
}

impl Summary {
    pub fn count(&mut self, path: &str, status: StatusCode) {
        match status {
            s if s.is_success() => self.deleted += 1,
            StatusCode::NOT_FOUND => self.not_found += 1,
            s => {
                self.server_failed |= s.is_server_error();
                self.errors.push((path.to_string(), s));
            }
        }
    }

    /// In the format the request asks for (`?format=` or `Accept`).
    pub fn render(&self, headers: &http::HeaderMap, query: &[(String, String)]) -> SwiftResponse {
        answer(Format::choose(query_value(query, "format"), header(headers, "accept")), self.report())
    }

    fn report(&self) -> Report {
        let mut report = Report::new("delete", StatusCode::OK);
        report.count("Number Deleted", self.deleted);
        report.count("Number Not Found", self.not_found);
        for (path, status) in &self.errors {
            report.error(path.as_bytes(), *status);
        }
        if !self.errors.is_empty() {
            report.fail(if self.server_failed { StatusCode::BAD_GATEWAY } else { StatusCode::BAD_REQUEST }, "");
        } else if self.deleted + self.not_found == 0 {
            report.fail(StatusCode::BAD_REQUEST, "Invalid bulk delete.");
        }
        report
    }
}

/// What a bulk operation answers, in Swift's keys: its counts, a `Response Status` and `Response
/// Body` (the status the operation as a whole would have had), and the paths that failed.
pub struct Report {
    /// The XML root element: `delete` or `extract`.
    root: &'static str,
    counts: Vec<(&'static str, u64)>,
    status: StatusCode,
    body: String,
    /// Quoted paths and Swift status lines.
    errors: Vec<(String, String)>,
}

impl Report {
    pub fn new(root: &'static str, status: StatusCode) -> Report {
        Report { root, counts: Vec::new(), status, body: String::new(), errors: Vec::new() }
    }

    /// Sets the count called `name` (e.g. `Number Files Created`).
    pub fn count(&mut self, name: &'static str, value: u64) {
        match self.counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.counts.push((name, value)),
        }
    }

    /// The operation as a whole ends with `status` (and Swift's short explanation, if any).
    pub fn fail(&mut self, status: StatusCode, body: &str) {
        self.status = status;
        self.body = body.to_string();
    }

    /// One path that failed; raw bytes, since an archive's names need not be UTF-8. Swift lists
    /// them percent-quoted and cut to its longest path.
    pub fn error(&mut self, path: &[u8], status: StatusCode) {
        const MAX_PATH_BYTES: usize = super::MAX_OBJECT_NAME + super::MAX_CONTAINER_NAME + 3;
        let path = &path[..path.len().min(MAX_PATH_BYTES)];
        self.errors.push((percent_encoding::percent_encode(path, QUOTE).to_string(), status_line(status)));
    }

    pub fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// The report as Swift's `get_heartbeat_response_body` writes it: keys sorted, errors last.
    fn render(&self, format: Format) -> String {
        let status = status_line(self.status);
        let mut facts: Vec<(&str, serde_json::Value)> = self.counts.iter().map(|(n, v)| (*n, json!(v))).collect();
        facts.push(("Response Status", json!(status)));
        facts.push(("Response Body", json!(self.body)));
        facts.sort_by(|a, b| a.0.cmp(b.0));
        let text_of = |value: &serde_json::Value| match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match format {
            Format::Json => {
                let mut map = serde_json::Map::new();
                for (name, value) in facts {
                    map.insert(name.to_string(), value);
                }
                let errors: Vec<serde_json::Value> = self.errors.iter().map(|(p, s)| json!([p, s])).collect();
                map.insert("Errors".to_string(), json!(errors));
                serde_json::Value::Object(map).to_string()
            }
            Format::Xml => {
                let mut xml = format!("<{}>\n", self.root);
                for (name, value) in &facts {
                    let tag = name.replace(' ', "_").to_lowercase();
                    xml.push_str(&format!("<{tag}>{}</{tag}>\n", escape(&text_of(value))));
                }
                xml.push_str("<errors>\n");
                for (path, status) in &self.errors {
                    xml.push_str(&format!(
                        "<object><name>{}</name><status>{}</status></object>\n",
                        escape(path),
                        escape(status)
                    ));
                }
                xml.push_str(&format!("</errors>\n</{}>\n", self.root));
                xml
            }
            Format::Plain => {
                let mut text: String =
                    facts.iter().map(|(name, value)| format!("{name}: {}\n", text_of(value))).collect();
                text.push_str("Errors:\n");
                for (path, status) in &self.errors {
                    text.push_str(&format!("{path}, {status}\n"));
                }
                text
            }
        }
    }
}

/// Python's `xml.sax.saxutils.escape`, which Swift uses for these reports.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A status as Swift writes it (`413 Request Entity Too Large`, not `413 Payload Too Large`).
pub fn status_line(status: StatusCode) -> String {
    let reason = match status.as_u16() {
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        416 => "Requested Range Not Satisfiable",
        499 => "Client Disconnect",
        500 => "Internal Error",
        _ => status.canonical_reason().unwrap_or(""),
    };
    format!("{} {reason}", status.as_u16())
}

/// A report answered at once (200, as every bulk answer is: the outcome is in the body).
fn answer(format: Format, report: Report) -> SwiftResponse {
    response::body(StatusCode::OK, format.content_type(), report.render(format))
}

/// A bulk answer for `work`, as Swift streams it: 200 at once, then a space every
/// [`YIELD_FREQUENCY`] while the work runs (the XML declaration first, for XML), then the report.
/// A client that goes away drops the work.
pub fn streamed(format: Format, work: impl Future<Output = Report> + Send + 'static) -> SwiftResponse {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        tokio::pin!(work);
        let mut heartbeat: &'static str =
            if format == Format::Xml { "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" } else { " " };
        let mut separator = "";
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + YIELD_FREQUENCY, YIELD_FREQUENCY);
        let report = loop {
            tokio::select! {
                report = &mut work => break report,
                _ = ticker.tick() => {
                    if tx.send(Ok(Bytes::from_static(heartbeat.as_bytes()))).await.is_err() {
                        return;
                    }
                    (heartbeat, separator) = (" ", "\r\n\r\n");
                }
            }
        };
        let _ = tx.send(Ok(Bytes::from(format!("{separator}{}", report.render(format))))).await;
    });
    let body = s3s::Body::from(StreamingBlob::wrap(tokio_stream::wrappers::ReceiverStream::new(rx)));
    let mut answer = http::Response::new(body);
    response::set(&mut answer, "content-type", format.content_type());
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(report: &Report, format: Format) -> Vec<String> {
        report.render(format).lines().map(str::to_string).collect()
    }

    #[test]
    fn plain_summaries_have_one_line_per_fact() {
        let mut summary = Summary::default();
        summary.count("/c/a", StatusCode::NO_CONTENT);
        summary.count("/c/b", StatusCode::NOT_FOUND);
        summary.count("/c/x y", StatusCode::FORBIDDEN);
        let lines = lines(&summary.report(), Format::Plain);
        assert_eq!(
            lines,
            [
                "Number Deleted: 1",
                "Number Not Found: 1",
                "Response Body: ",
                "Response Status: 400 Bad Request",
                "Errors:",
                "/c/x%20y, 403 Forbidden"
            ]
        );
    }

    #[test]
    fn deletes_of_nothing_are_invalid_and_server_failures_are_bad_gateways() {
        let report = Summary::default().report();
        assert_eq!((report.status, report.body.as_str()), (StatusCode::BAD_REQUEST, "Invalid bulk delete."));
        let mut summary = Summary::default();
        summary.count("/c/a", StatusCode::SERVICE_UNAVAILABLE);
        summary.count("/c/b", StatusCode::CONFLICT);
        assert_eq!(summary.report().status, StatusCode::BAD_GATEWAY);
    }

    #[test]
    fn extract_reports_render_as_json_and_xml() {
        let mut report = Report::new("extract", StatusCode::CREATED);
        report.count("Number Files Created", 2);
        report.error(b"c/big <1>", StatusCode::PAYLOAD_TOO_LARGE);
        report.error(b"c/\xff", StatusCode::PRECONDITION_FAILED);
        let parsed: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
        assert_eq!(
            parsed,
            json!({
                "Number Files Created": 2, "Response Status": "201 Created", "Response Body": "",
                "Errors": [["c/big%20%3C1%3E", "413 Request Entity Too Large"], ["c/%FF", "412 Precondition Failed"]],
            })
        );
        report.fail(StatusCode::BAD_REQUEST, "Invalid Tar File: <x>");
        assert_eq!(
            lines(&report, Format::Xml),
            [
                "<extract>",
                "<number_files_created>2</number_files_created>",
                "<response_body>Invalid Tar File: &lt;x&gt;</response_body>",
                "<response_status>400 Bad Request</response_status>",
                "<errors>",
                "<object><name>c/big%20%3C1%3E</name><status>413 Request Entity Too Large</status></object>",
                "<object><name>c/%FF</name><status>412 Precondition Failed</status></object>",
                "</errors>",
                "</extract>",
            ]
        );
    }

    #[test]
    fn statuses_read_as_swift_writes_them() {
        assert_eq!(status_line(StatusCode::CREATED), "201 Created");
        assert_eq!(status_line(StatusCode::PAYLOAD_TOO_LARGE), "413 Request Entity Too Large");
        assert_eq!(status_line(StatusCode::from_u16(499).unwrap()), "499 Client Disconnect");
    }

    #[tokio::test]
    async fn streamed_answers_end_with_the_report() {
        let answer = streamed(Format::Json, async {
            let mut report = Report::new("extract", StatusCode::CREATED);
            report.count("Number Files Created", 1);
            report
        });
        assert_eq!(answer.status(), StatusCode::OK);
        let bytes = answer.into_body().collect().await.unwrap().to_bytes();
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed["Number Files Created"], 1);
    }
}
