//! AWS's element order in S3 result documents. s3s writes every element's children in
//! alphabetical order (`<Contents><ETag>…<Key>…`), which order-sensitive parsers (the AWS SDK for
//! Java v1's, boto 2's, several XML-to-struct mappers) misread. The documents of the listing and
//! multipart operations are put back into the order AWS sends; the bytes of every element are kept
//! as written (text, escapes, attributes), only siblings move. The orders are AWS's wire order,
//! as also encoded in the RELAX NG schemas of Swift's s3api.

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use quick_xml::Reader;
use quick_xml::events::Event;
use s3s::Body;

/// Larger answers are passed through as they are (a 1000-entry ListObjectVersions page is ~0.5 MiB).
const MAX_REORDERED_BYTES: u64 = 16 << 20;
/// Deeper documents are not S3 result documents.
const MAX_DEPTH: usize = 16;

/// The operations whose answers are reordered (their `op` metric names).
pub fn applies(op: &str) -> bool {
    matches!(
        op,
        "ListBuckets"
            | "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "ListParts"
            | "ListMultipartUploads"
            | "CreateMultipartUpload"
            | "CompleteMultipartUpload"
            | "CopyObject"
            | "UploadPartCopy"
            | "DeleteObjects"
            | "GetObjectAttributes"
    )
}

/// AWS's order of an element's children; names not listed keep their place after the listed ones.
fn order_of(element: &str) -> Option<&'static [&'static str]> {
    Some(match element {
        "ListBucketResult" => &[
            "Name",
            "Prefix",
            "Marker",
            "NextMarker",
            "NextContinuationToken",
            "ContinuationToken",
            "StartAfter",
            "KeyCount",
            "MaxKeys",
            "Delimiter",
            "EncodingType",
            "IsTruncated",
            "Contents",
            "CommonPrefixes",
        ],
        "Contents" | "Version" => &[
            "Key",
            "VersionId",
            "IsLatest",
            "LastModified",
            "ETag",
            "ChecksumAlgorithm",
            "ChecksumType",
            "Size",
            "Owner",
            "StorageClass",
            "RestoreStatus",
        ],
        "DeleteMarker" => &["Key", "VersionId", "IsLatest", "LastModified", "Owner"],
        "Owner" | "Initiator" => &["ID", "DisplayName"],
        "ListVersionsResult" => &[
            "Name",
            "Prefix",
            "KeyMarker",
            "VersionIdMarker",
            "NextKeyMarker",
            "NextVersionIdMarker",
            "MaxKeys",
            "EncodingType",
            "Delimiter",
            "IsTruncated",
            // Versions and delete markers share one rank: they stay interleaved in key order.
            "Version|DeleteMarker",
            "CommonPrefixes",
        ],
        "ListAllMyBucketsResult" => &["Owner", "Buckets", "ContinuationToken", "Prefix"],
        "Bucket" => &["Name", "CreationDate", "BucketRegion"],
        "ListPartsResult" => &[
            "Bucket",
            "Key",
            "UploadId",
            "Initiator",
            "Owner",
            "StorageClass",
            "PartNumberMarker",
            "NextPartNumberMarker",
            "MaxParts",
            "EncodingType",
            "IsTruncated",
            "Part",
            "ChecksumAlgorithm",
            "ChecksumType",
        ],
        "Part" => &[
            "PartNumber",
            "LastModified",
            "ETag",
            "Size",
            "ChecksumCRC32",
            "ChecksumCRC32C",
            "ChecksumCRC64NVME",
            "ChecksumSHA1",
            "ChecksumSHA256",
        ],
        "ListMultipartUploadsResult" => &[
            "Bucket",
            "KeyMarker",
            "UploadIdMarker",
            "NextKeyMarker",
            "NextUploadIdMarker",
            "Delimiter",
            "Prefix",
            "MaxUploads",
            "EncodingType",
            "IsTruncated",
            "Upload",
            "CommonPrefixes",
        ],
        "Upload" => {
            &["Key", "UploadId", "Initiator", "Owner", "StorageClass", "Initiated", "ChecksumAlgorithm", "ChecksumType"]
        }
        "InitiateMultipartUploadResult" => &["Bucket", "Key", "UploadId"],
        "CompleteMultipartUploadResult" => &[
            "Location",
            "Bucket",
            "Key",
            "ETag",
            "ChecksumCRC32",
            "ChecksumCRC32C",
            "ChecksumCRC64NVME",
            "ChecksumSHA1",
            "ChecksumSHA256",
            "ChecksumType",
        ],
        // AWS sends LastModified first here (its documentation lists ETag first).
        "CopyObjectResult" | "CopyPartResult" => &[
            "LastModified",
            "ETag",
            "ChecksumType",
            "ChecksumCRC32",
            "ChecksumCRC32C",
            "ChecksumCRC64NVME",
            "ChecksumSHA1",
            "ChecksumSHA256",
        ],
        "DeleteResult" => &["Deleted|Error"],
        "Deleted" => &["Key", "VersionId", "DeleteMarker", "DeleteMarkerVersionId"],
        "GetObjectAttributesResponse" => &["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"],
        _ => return None,
    })
}

fn rank(order: &[&str], name: &str) -> usize {
    order.iter().position(|entry| entry.split('|').any(|n| n == name)).unwrap_or(order.len())
}

/// One element as written: its start tag, its children and its end tag, as slices of the input.
struct Element<'a> {
    name: String,
    start: &'a str,
    children: Vec<Node<'a>>,
    end: &'a str,
}

enum Node<'a> {
    Element(Element<'a>),
    /// Text, references, comments: kept byte for byte.
    Raw(&'a str),
}

/// The next event and the input bytes it was read from.
fn next_event<'a>(reader: &mut Reader<&'a [u8]>, input: &'a str) -> Option<(Event<'a>, &'a str)> {
    let before = reader.buffer_position() as usize;
    let event = reader.read_event().ok()?;
    Some((event, input.get(before..reader.buffer_position() as usize)?))
}

fn tag_name(tag: &quick_xml::events::BytesStart<'_>) -> Option<String> {
    String::from_utf8(tag.name().as_ref().to_vec()).ok()
}

/// Reads the element whose start tag was just read, up to its end tag.
fn read_element<'a>(
    reader: &mut Reader<&'a [u8]>,
    input: &'a str,
    name: String,
    start: &'a str,
    depth: usize,
) -> Option<Element<'a>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let mut children = Vec::new();
    loop {
        let (event, raw) = next_event(reader, input)?;
        match event {
            Event::Start(tag) => {
                children.push(Node::Element(read_element(reader, input, tag_name(&tag)?, raw, depth + 1)?));
            }
            Event::Empty(tag) => {
                let name = tag_name(&tag)?;
                children.push(Node::Element(Element { name, start: raw, children: Vec::new(), end: "" }));
            }
            Event::End(_) => return Some(Element { name, start, children, end: raw }),
            Event::Eof => return None,
            _ => children.push(Node::Raw(raw)),
        }
    }
}

fn reorder(element: &mut Element<'_>) {
    for child in &mut element.children {
        if let Node::Element(e) = child {
            reorder(e);
        }
    }
    let Some(order) = order_of(&element.name) else { return };
    // Only element-only content moves; mixed content (text between elements) stays as written.
    if element.children.iter().any(|c| matches!(c, Node::Raw(text) if !text.trim().is_empty())) {
        return;
    }
    element.children.retain(|c| matches!(c, Node::Element(_)));
    element.children.sort_by_key(|c| match c {
        Node::Element(e) => rank(order, &e.name),
        Node::Raw(_) => usize::MAX,
    });
}

fn write(element: &Element<'_>, out: &mut String) {
    out.push_str(element.start);
    for child in &element.children {
        match child {
            Node::Element(e) => write(e, out),
            Node::Raw(text) => out.push_str(text),
        }
    }
    out.push_str(element.end);
}

/// The document in AWS's order, or `None` when it is not one well-formed XML document.
pub fn reorder_document(input: &str) -> Option<String> {
    let mut reader = Reader::from_reader(input.as_bytes());
    let mut out = String::with_capacity(input.len());
    loop {
        let (event, raw) = next_event(&mut reader, input)?;
        match event {
            Event::Start(tag) => {
                let mut root = read_element(&mut reader, input, tag_name(&tag)?, raw, 0)?;
                reorder(&mut root);
                write(&root, &mut out);
            }
            Event::Eof => return Some(out),
            _ => out.push_str(raw),
        }
    }
}

/// A successful XML answer of one of the [`applies`] operations, reordered.
pub async fn reorder_response(response: Response<Body>) -> Response<Body> {
    let is_xml = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("xml"));
    let bounded = http_body::Body::size_hint(response.body()).upper().is_some_and(|n| n <= MAX_REORDERED_BYTES);
    if !response.status().is_success() || !is_xml || !bounded {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let reordered = std::str::from_utf8(&bytes).ok().and_then(reorder_document).map(Bytes::from).unwrap_or(bytes);
    parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(reordered.len()));
    Response::from_parts(parts, Body::from(reordered))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_come_back_in_aws_order_with_their_bytes_intact() {
        let input = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Contents><ETag>&quot;e1&quot;</ETag><Key>a&amp;b</Key><LastModified>t</LastModified><Size>1</Size></Contents>\
            <Contents><ETag>&quot;e2&quot;</ETag><Key>c</Key><Size>2</Size></Contents>\
            <IsTruncated>false</IsTruncated><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Name>b</Name><Prefix/>\
            </ListBucketResult>";
        let out = reorder_document(input).expect("reordered");
        assert_eq!(
            out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Name>b</Name><Prefix/><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>\
            <Contents><Key>a&amp;b</Key><LastModified>t</LastModified><ETag>&quot;e1&quot;</ETag><Size>1</Size></Contents>\
            <Contents><Key>c</Key><ETag>&quot;e2&quot;</ETag><Size>2</Size></Contents>\
            </ListBucketResult>"
        );
    }

    #[test]
    fn versions_and_delete_markers_stay_interleaved() {
        let input = "<ListVersionsResult><Version><Key>a</Key></Version><DeleteMarker><Key>b</Key></DeleteMarker>\
            <Version><Key>c</Key></Version><Name>n</Name></ListVersionsResult>";
        let out = reorder_document(input).expect("reordered");
        assert_eq!(
            out,
            "<ListVersionsResult><Name>n</Name><Version><Key>a</Key></Version><DeleteMarker><Key>b</Key></DeleteMarker>\
            <Version><Key>c</Key></Version></ListVersionsResult>"
        );
    }

    #[test]
    fn unknown_documents_and_broken_xml_are_left_alone() {
        assert_eq!(reorder_document("<Other><B/><A/></Other>").as_deref(), Some("<Other><B/><A/></Other>"));
        assert_eq!(reorder_document("<ListBucketResult><Name>x</Name>"), None);
        let mixed = "<Contents>text<Size>1</Size><Key>k</Key></Contents>";
        assert_eq!(reorder_document(mixed).as_deref(), Some(mixed));
    }
}
