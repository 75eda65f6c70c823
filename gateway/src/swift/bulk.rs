//! Bulk delete (`?bulk-delete` on the account, as Swift's bulk middleware): a text body of
//! newline-separated `/container/object` (or `/container`, which must be empty) paths, each
//! deleted with the caller's own rights, and a summary in the requested format.

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::listing::Format;
use super::response::{self, SwiftResponse};
use super::{Access, SwiftApi, Target, container, header, object, query_pairs, query_value};

/// Swift's default `max_deletes_per_request`.
pub const MAX_DELETES: usize = 10_000;
/// Paths are at most 1024 + 256 bytes; this bounds the body the request may send.
const MAX_BODY_BYTES: usize = MAX_DELETES * 1400;

pub async fn delete(api: &SwiftApi, req: Request<Incoming>, target: Target) -> SwiftResponse {
    let format =
        Format::choose(query_value(&query_pairs(req.uri().query()), "format"), header(req.headers(), "accept"));
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return response::error(StatusCode::PAYLOAD_TOO_LARGE, "the list of paths is too large"),
    };
    let text = String::from_utf8_lossy(&body);
    let paths: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| percent_encoding::percent_decode_str(l).decode_utf8_lossy().into_owned())
        .collect();
    if paths.len() > MAX_DELETES {
        return response::error(StatusCode::PAYLOAD_TOO_LARGE, &format!("at most {MAX_DELETES} paths per request"));
    }
    let mut summary = Summary::default();
    for path in &paths {
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
    }
    summary.render_as(format)
}

/// The outcome of deleting many paths (bulk delete, and an SLO's segments), reported as Swift's
/// bulk middleware does.
#[derive(Default)]
pub struct Summary {
    deleted: u64,
    not_found: u64,
    errors: Vec<(String, String)>,
}

impl Summary {
    pub fn count(&mut self, path: &str, status: StatusCode) {
        match status {
            s if s.is_success() => self.deleted += 1,
            StatusCode::NOT_FOUND => self.not_found += 1,
            s => self.errors.push((path.to_string(), format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("")))),
        }
    }

    /// In the format the request asks for (`?format=` or `Accept`).
    pub fn render(&self, headers: &http::HeaderMap, query: &[(String, String)]) -> SwiftResponse {
        self.render_as(Format::choose(query_value(query, "format"), header(headers, "accept")))
    }

    fn render_as(&self, format: Format) -> SwiftResponse {
        let (deleted, not_found) = (self.deleted, self.not_found);
        let status = if self.errors.is_empty() { "200 OK" } else { "400 Bad Request" };
        match format {
            Format::Json => {
                let errors: Vec<serde_json::Value> = self.errors.iter().map(|(p, s)| json!([p, s])).collect();
                let summary = json!({
                    "Number Deleted": deleted, "Number Not Found": not_found,
                    "Response Status": status, "Response Body": "", "Errors": errors,
                });
                response::body(StatusCode::OK, format.content_type(), summary.to_string())
            }
            _ => {
                let mut text = format!(
                    "Number Deleted: {deleted}\nNumber Not Found: {not_found}\nResponse Body: \nResponse Status: {status}\nErrors:\n"
                );
                for (path, status) in &self.errors {
                    text.push_str(&format!("{path}, {status}\n"));
                }
                response::body(StatusCode::OK, "text/plain; charset=utf-8", text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_summaries_have_one_line_per_fact() {
        let mut summary = Summary::default();
        summary.count("/c/a", StatusCode::NO_CONTENT);
        summary.count("/c/b", StatusCode::NOT_FOUND);
        summary.count("/c/x", StatusCode::FORBIDDEN);
        let answer = summary.render_as(Format::Plain);
        let (_, body) = answer.into_parts();
        let bytes = futures::executor::block_on(http_body_util::BodyExt::collect(body)).unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Number Deleted: 1");
        assert_eq!(lines[1], "Number Not Found: 1");
        assert!(lines.contains(&"Response Status: 400 Bad Request"));
        assert_eq!(lines.last(), Some(&"/c/x, 403 Forbidden"));
    }
}
