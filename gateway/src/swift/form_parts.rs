//! A streaming reader of `multipart/form-data` bodies, as Swift's formpost reads them
//! (`iter_multipart_mime_documents`, `parse_mime_headers`, `parse_content_disposition`): the
//! parts one after the other, each one's data as it arrives. Only a bounded window of the body is
//! ever held: a part's headers (at most [`MAX_HEADER_BYTES`]) or about one chunk of its data.

use bytes::{Buf, Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// The most a part's header block may take.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Data is handed out in chunks of at most this size.
const MAX_CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// The body does not start with the boundary (Swift's `MimeInvalid`).
    InvalidBoundary,
    HeadersTooLarge,
    /// The request body itself failed (the client went away).
    Read(String),
}

/// One part's headers (names lower-cased).
#[derive(Debug, Default)]
pub struct Part {
    headers: Vec<(String, String)>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Content-Disposition` type and its attributes (`name`, `filename`).
    pub fn disposition(&self) -> (String, Vec<(String, String)>) {
        parse_attributes(self.header("content-disposition").unwrap_or_default())
    }
}

/// Swift's `parse_content_disposition` (also used on a form's Content-Type): the value before the
/// first `;`, then `key=value` or `key="value"` attributes while they parse.
pub fn parse_attributes(value: &str) -> (String, Vec<(String, String)>) {
    let Some((kind, mut rest)) = value.split_once(';') else { return (value.trim().to_string(), Vec::new()) };
    rest = rest.trim();
    let mut attributes = Vec::new();
    while let Some((key, after)) = rest.split_once('=') {
        if key.is_empty() || !key.chars().all(|c| c.is_alphanumeric() || c == '_') {
            break;
        }
        let (value, after) = if let Some(quoted) = after.strip_prefix('"') {
            let Some(end) = quoted.find('"') else { break };
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find([';', '"']).unwrap_or(after.len());
            if end == 0 {
                break;
            }
            (&after[..end], &after[end..])
        };
        // Each attribute ends with `; `, `;` or the end of the value.
        let after = match after.strip_prefix(';') {
            Some(next) => next.strip_prefix(' ').unwrap_or(next),
            None if after.is_empty() => after,
            None => break,
        };
        attributes.push((key.to_string(), value.to_string()));
        rest = after;
    }
    (kind.trim().to_string(), attributes)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first boundary line.
    Start,
    /// At a part's header block.
    Headers,
    /// In a part's data.
    Data,
    End,
}

pub struct FormParts<S> {
    body: S,
    buffer: BytesMut,
    /// `--boundary`, and `\r\n--boundary`, which ends every part.
    boundary_line: Vec<u8>,
    delimiter: Vec<u8>,
    body_ended: bool,
    stage: Stage,
}

impl<S, E> FormParts<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    pub fn new(body: S, boundary: &str) -> FormParts<S> {
        let boundary_line = [b"--", boundary.as_bytes()].concat();
        let delimiter = [b"\r\n", boundary_line.as_slice()].concat();
        FormParts { body, buffer: BytesMut::new(), boundary_line, delimiter, body_ended: false, stage: Stage::Start }
    }

    /// Reads one more piece of the body; `false` at its end.
    async fn fill(&mut self) -> Result<bool, FormError> {
        if self.body_ended {
            return Ok(false);
        }
        match self.body.next().await {
            None => {
                self.body_ended = true;
                Ok(false)
            }
            Some(Err(e)) => Err(FormError::Read(e.to_string())),
            Some(Ok(bytes)) => {
                self.buffer.extend_from_slice(&bytes);
                Ok(true)
            }
        }
    }

    /// Python's `readline(limit)`: through the next `\n`, at most `limit` bytes.
    async fn read_line(&mut self, limit: usize) -> Result<Bytes, FormError> {
        loop {
            if let Some(end) = self.buffer.iter().take(limit).position(|b| *b == b'\n') {
                return Ok(self.buffer.split_to(end + 1).freeze());
            }
            if self.buffer.len() >= limit || !self.fill().await? {
                let n = self.buffer.len().min(limit);
                return Ok(self.buffer.split_to(n).freeze());
            }
        }
    }

    /// The next part, after skipping what is left of the current one; `None` after the last.
    pub async fn next_part(&mut self) -> Result<Option<Part>, FormError> {
        loop {
            match self.stage {
                Stage::End => return Ok(None),
                Stage::Data => while self.chunk().await?.is_some() {},
                Stage::Start => {
                    let limit = self.boundary_line.len() + 2;
                    let mut line = self.read_line(limit).await?;
                    while &line[..] == b"\r\n" {
                        line = self.read_line(limit).await?;
                    }
                    if line.trim_ascii() != self.boundary_line.as_slice() {
                        return Err(FormError::InvalidBoundary);
                    }
                    self.stage = Stage::Headers;
                }
                Stage::Headers => {
                    let headers = self.read_headers().await?;
                    self.stage = Stage::Data;
                    return Ok(Some(Part { headers }));
                }
            }
        }
    }

    /// A part's header block, up to its empty line (or up to the next delimiter, which leaves
    /// the part without data).
    async fn read_headers(&mut self) -> Result<Vec<(String, String)>, FormError> {
        let block = loop {
            if self.buffer.starts_with(b"\r\n") {
                self.buffer.advance(2);
                break Bytes::new();
            }
            let end_of_block = memchr::memmem::find(&self.buffer, b"\r\n\r\n");
            let delimiter = memchr::memmem::find(&self.buffer, &self.delimiter);
            match (end_of_block, delimiter) {
                (Some(end), d) if d.is_none_or(|d| end < d) => {
                    let block = self.buffer.split_to(end).freeze();
                    self.buffer.advance(4);
                    break block;
                }
                (_, Some(d)) => break self.buffer.split_to(d).freeze(),
                (None, None) if self.buffer.len() > MAX_HEADER_BYTES => return Err(FormError::HeadersTooLarge),
                (None, None) => {
                    if !self.fill().await? {
                        break self.buffer.split().freeze();
                    }
                }
                (Some(_), None) => unreachable!("matched by the first arm"),
            }
        };
        if block.len() > MAX_HEADER_BYTES {
            return Err(FormError::HeadersTooLarge);
        }
        let text = String::from_utf8_lossy(&block);
        Ok(text
            .split("\r\n")
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
            .collect())
    }

    /// Reads and drops whatever is left of the body.
    pub async fn drain(&mut self) {
        self.stage = Stage::End;
        self.buffer.clear();
        while let Ok(true) = self.fill().await {
            self.buffer.clear();
        }
    }

    /// The next piece of the current part's data; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, FormError> {
        if self.stage != Stage::Data {
            return Ok(None);
        }
        loop {
            if let Some(at) = memchr::memmem::find(&self.buffer, &self.delimiter) {
                if at > 0 {
                    return Ok(Some(self.buffer.split_to(at.min(MAX_CHUNK)).freeze()));
                }
                // Swift drops the two bytes after the delimiter: `--` after the last part, else
                // the line end before the next part's headers.
                while self.buffer.len() < self.delimiter.len() + 2 && self.fill().await? {}
                self.buffer.advance(self.delimiter.len());
                let last = self.buffer.starts_with(b"--");
                self.buffer.advance(self.buffer.len().min(2));
                self.stage = if last { Stage::End } else { Stage::Headers };
                return Ok(None);
            }
            // Data for sure: all but a tail that could be the start of a delimiter.
            let certain = self.buffer.len().saturating_sub(self.delimiter.len() - 1);
            if certain > 0 {
                return Ok(Some(self.buffer.split_to(certain.min(MAX_CHUNK)).freeze()));
            }
            if !self.fill().await? {
                // The body ended without its closing boundary: as in Swift, the part ends there.
                self.stage = Stage::End;
                return Ok((!self.buffer.is_empty()).then(|| self.buffer.split().freeze()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each part's headers and data.
    type Parts = Vec<(Vec<(String, String)>, Vec<u8>)>;

    fn parts_of(body: &[u8], piece: usize) -> Result<Parts, FormError> {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            body.chunks(piece).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let mut form = FormParts::new(futures::stream::iter(pieces), "XyZ");
        futures::executor::block_on(async {
            let mut found = Vec::new();
            while let Some(part) = form.next_part().await? {
                let mut data = Vec::new();
                while let Some(chunk) = form.chunk().await? {
                    data.extend_from_slice(&chunk);
                }
                found.push((part.headers, data));
            }
            Ok(found)
        })
    }

    const FORM: &[u8] = b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\nhttp://x/\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file1\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\n\
line one\r\n-XyZ not a boundary\r\n--XyZ--\r\nepilogue";

    #[test]
    fn parts_and_their_data_come_out_whatever_the_body_pieces() {
        for piece in [1, 2, 3, 7, 64, 4096] {
            let parts = parts_of(FORM, piece).unwrap();
            assert_eq!(parts.len(), 2, "pieces of {piece}");
            assert_eq!(parts[0].0, [("content-disposition".to_string(), "form-data; name=\"redirect\"".to_string())]);
            assert_eq!(parts[0].1, b"http://x/");
            assert_eq!(parts[1].0[1], ("content-type".to_string(), "text/plain".to_string()));
            assert_eq!(parts[1].1, b"line one\r\n-XyZ not a boundary");
        }
    }

    #[test]
    fn bodies_without_the_starting_boundary_are_invalid() {
        assert_eq!(parts_of(b"garbage\r\n--XyZ\r\n\r\nx\r\n--XyZ--", 5).unwrap_err(), FormError::InvalidBoundary);
        assert_eq!(parts_of(b"", 5).unwrap_err(), FormError::InvalidBoundary);
        let endless_headers = [b"--XyZ\r\n".as_slice(), &vec![b'h'; MAX_HEADER_BYTES + 10]].concat();
        assert_eq!(parts_of(&endless_headers, 1000).unwrap_err(), FormError::HeadersTooLarge);
    }

    #[test]
    fn a_body_cut_short_ends_its_last_part() {
        let parts = parts_of(b"--XyZ\r\nA: b\r\n\r\npartial", 3).unwrap();
        assert_eq!(parts, [(vec![("a".to_string(), "b".to_string())], b"partial".to_vec())]);
    }

    #[test]
    fn dispositions_parse_as_swift_parses_them() {
        let (kind, attributes) = parse_attributes("form-data; name=\"file1\"; filename=\"my file.txt\"");
        assert_eq!(kind, "form-data");
        assert_eq!(
            attributes,
            [("name".to_string(), "file1".to_string()), ("filename".to_string(), "my file.txt".to_string())]
        );
        let (kind, attributes) = parse_attributes("multipart/form-data; boundary=----abc123");
        assert_eq!(
            (kind.as_str(), attributes),
            ("multipart/form-data", vec![("boundary".into(), "----abc123".into())])
        );
        assert_eq!(parse_attributes("text/plain").1, []);
    }
}
