//! The web console's assets: plain HTML, CSS and JavaScript modules (no framework, no build
//! step), embedded in the binary. The gateway serves them on `--console-address`; everything the
//! console does is SigV4-signed S3, STS and admin API calls from the browser to the same port.

/// One embedded file: its path below `assets/` and its bytes.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(Asset { path: $path, bytes: include_bytes!(concat!("../assets/", $path)) }),*]
    };
}

static ASSETS: &[Asset] = assets![
    "index.html",
    "app.css",
    "favicon.svg",
    "js/app.js",
    "js/sigv4.js",
    "js/api.js",
    "js/ui.js",
    "js/upload.js",
    "js/login.js",
    "js/buckets.js",
    "js/api-config.js",
    "js/bucket-settings.js",
    "js/objects.js",
    "js/identity.js",
    "js/cluster.js",
];

/// The page the console starts from.
pub const INDEX: &str = "index.html";

/// The bytes and content type of the asset at `path` (relative to the assets root, e.g.
/// `js/app.js`), or `None` when there is no such asset.
pub fn asset(path: &str) -> Option<(&'static [u8], &'static str)> {
    ASSETS.iter().find(|a| a.path == path).map(|a| (a.bytes, content_type(a.path)))
}

/// Every asset path, for tests and listings.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// The content type for a file name, by its extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_with_their_content_types() {
        let (index, kind) = asset(INDEX).expect("index");
        assert_eq!(kind, "text/html; charset=utf-8");
        assert!(std::str::from_utf8(index).expect("utf-8").contains("js/app.js"));
        assert_eq!(asset("app.css").map(|a| a.1), Some("text/css; charset=utf-8"));
        assert_eq!(asset("js/app.js").map(|a| a.1), Some("text/javascript; charset=utf-8"));
        assert_eq!(asset("favicon.svg").map(|a| a.1), Some("image/svg+xml"));
    }

    #[test]
    fn unknown_paths_are_not_assets() {
        assert!(asset("").is_none());
        assert!(asset("/index.html").is_none());
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("js/").is_none());
        assert!(asset("js/nope.js").is_none());
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("x.json"), "application/json");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("a.png"), "image/png");
    }

    #[test]
    fn every_page_module_is_embedded() {
        let (app, _) = asset("js/app.js").expect("app");
        let app = std::str::from_utf8(app).expect("utf-8");
        // Every relative import of the entry module names an embedded file.
        for line in app.lines().filter(|l| l.starts_with("import ")) {
            let Some(start) = line.find("'./") else { continue };
            let rest = &line[start + 3..];
            let name = &rest[..rest.find('\'').expect("closing quote")];
            assert!(asset(&format!("js/{name}")).is_some(), "js/{name} is imported but not embedded");
        }
        assert!(paths().count() >= 10);
    }
}
