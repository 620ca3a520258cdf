//! The console page and its assets, embedded in the binary (no CDN: a node
//! may have no internet; nothing to deploy beside the binary). Plain HTML,
//! CSS and JavaScript written for flashgate, charts drawn as SVG by the
//! script (ARCHITECTURE.md says why).

/// One embedded file: its name under `/console/`, media type and bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page itself, served at `/console`.
pub const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../assets/console/index.html"),
};

/// The files the page loads, served at `/console/{name}`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/console/console.js"),
    },
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/console/console.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../assets/console/favicon.svg"),
    },
];

/// The page's Content-Security-Policy: its own files only, no inline
/// script, calls to this node only.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The asset named `name`, if embedded.
pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}
