//! Swift listings in its three formats: plain text (one name per line), JSON and XML, chosen by
//! `format=` or the Accept header as Swift does.

use serde_json::json;

use super::response::escape_xml;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
    Xml,
}

impl Format {
    pub fn choose(format_param: Option<&str>, accept: Option<&str>) -> Format {
        match format_param.map(str::to_ascii_lowercase).as_deref() {
            Some("json") => return Format::Json,
            Some("xml") => return Format::Xml,
            Some("plain") => return Format::Plain,
            _ => {}
        }
        let accept = accept.unwrap_or_default();
        if accept.contains("application/json") {
            Format::Json
        } else if accept.contains("application/xml") || accept.contains("text/xml") {
            Format::Xml
        } else {
            Format::Plain
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Plain => "text/plain; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
        }
    }
}

/// One object in a container listing.
pub struct ObjectEntry {
    pub name: String,
    pub hash: String,
    pub bytes: u64,
    pub content_type: String,
    /// `2026-11-28T21:36:46.123456`, as Swift prints it (UTC, no zone).
    pub last_modified: String,
}

pub enum ContainerItem {
    Object(ObjectEntry),
    Subdir(String),
}

impl ContainerItem {
    pub fn name(&self) -> &str {
        match self {
            ContainerItem::Object(o) => &o.name,
            ContainerItem::Subdir(s) => s,
        }
    }
}

/// One container in an account listing (or, with `subdir`, a common prefix of several).
#[derive(Debug, Clone, Default)]
pub struct ContainerEntry {
    pub name: String,
    pub count: u64,
    pub bytes: u64,
    pub last_modified: String,
    pub subdir: bool,
}

pub fn swift_time(unix_ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

pub fn render_container(format: Format, container: &str, items: &[ContainerItem]) -> String {
    match format {
        Format::Plain => items.iter().map(|i| format!("{}\n", i.name())).collect(),
        Format::Json => {
            let list: Vec<serde_json::Value> = items
                .iter()
                .map(|item| match item {
                    ContainerItem::Object(o) => json!({
                        "name": o.name, "hash": o.hash, "bytes": o.bytes,
                        "content_type": o.content_type, "last_modified": o.last_modified,
                    }),
                    ContainerItem::Subdir(s) => json!({ "subdir": s }),
                })
                .collect();
            serde_json::Value::Array(list).to_string()
        }
        Format::Xml => {
            let mut out =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<container name=\"{}\">", escape_xml(container));
            for item in items {
                match item {
                    ContainerItem::Object(o) => out.push_str(&format!(
                        "<object><name>{}</name><hash>{}</hash><bytes>{}</bytes><content_type>{}</content_type>\
                         <last_modified>{}</last_modified></object>",
                        escape_xml(&o.name),
                        o.hash,
                        o.bytes,
                        escape_xml(&o.content_type),
                        o.last_modified
                    )),
                    ContainerItem::Subdir(s) => {
                        out.push_str(&format!("<subdir name=\"{0}\"><name>{0}</name></subdir>", escape_xml(s)))
                    }
                }
            }
            out.push_str("</container>");
            out
        }
    }
}

pub fn render_account(format: Format, account: &str, containers: &[ContainerEntry]) -> String {
    match format {
        Format::Plain => containers.iter().map(|c| format!("{}\n", c.name)).collect(),
        Format::Json => {
            let list: Vec<serde_json::Value> = containers
                .iter()
                .map(|c| {
                    if c.subdir {
                        json!({ "subdir": c.name })
                    } else {
                        json!({
                            "name": c.name, "count": c.count, "bytes": c.bytes,
                            "last_modified": c.last_modified, "storage_policy": "default",
                        })
                    }
                })
                .collect();
            serde_json::Value::Array(list).to_string()
        }
        Format::Xml => {
            let mut out =
                format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<account name=\"{}\">", escape_xml(account));
            for c in containers {
                if c.subdir {
                    out.push_str(&format!("<subdir name=\"{0}\"><name>{0}</name></subdir>", escape_xml(&c.name)));
                    continue;
                }
                out.push_str(&format!(
                    "<container><name>{}</name><count>{}</count><bytes>{}</bytes><last_modified>{}</last_modified>\
                     <storage_policy>default</storage_policy></container>",
                    escape_xml(&c.name),
                    c.count,
                    c.bytes,
                    c.last_modified
                ));
            }
            out.push_str("</account>");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_chosen_and_rendered_as_swift_does() {
        assert_eq!(Format::choose(Some("json"), None), Format::Json);
        assert_eq!(Format::choose(None, Some("application/xml")), Format::Xml);
        assert_eq!(Format::choose(None, Some("*/*")), Format::Plain);
        let items = vec![
            ContainerItem::Object(ObjectEntry {
                name: "a&b".into(),
                hash: "d41d8cd98f00b204e9800998ecf8427e".into(),
                bytes: 0,
                content_type: "text/plain".into(),
                last_modified: swift_time(1_700_000_000_123),
            }),
            ContainerItem::Subdir("dir/".into()),
        ];
        assert_eq!(render_container(Format::Plain, "c", &items), "a&b\ndir/\n");
        let json: serde_json::Value = serde_json::from_str(&render_container(Format::Json, "c", &items)).unwrap();
        assert_eq!(json[0]["last_modified"], "2023-11-14T22:13:20.123000");
        assert_eq!(json[1]["subdir"], "dir/");
        assert!(render_container(Format::Xml, "c", &items).contains("<name>a&amp;b</name>"));
    }
}
