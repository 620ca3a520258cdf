//! The published contract (`GET /openapi.json`) against the real binary: it is
//! an OpenAPI 3.1 document, it names exactly the routes `configure` mounts
//! (gateway/src/http/mod.rs), and every operation it names is served. A route
//! added without its `#[utoipa::path]`, or a documented one removed, fails here.

mod common;

use std::collections::BTreeSet;

use common::Server;
use serde_json::Value;

/// The methods OpenAPI can name on a path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, path)` of every route `configure` mounts, read from its source:
/// each `web::resource("PATH")` and the `web::METHOD()` routes that follow it
/// up to the next resource. actix offers no list of its routes at run time;
/// the source is the one place they are written.
fn mounted_routes() -> BTreeSet<(String, String)> {
    let source = include_str!("../gateway/src/http/mod.rs");
    let start = source
        .find("pub fn configure(")
        .expect("gateway/src/http/mod.rs has `pub fn configure(`");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("configure ends");
    let body = &body[..end];
    let mut routes = BTreeSet::new();
    for resource in body.split("web::resource(\"").skip(1) {
        let (path, rest) = resource
            .split_once('"')
            .expect("a resource path is a string literal");
        let mut methods = 0;
        for method in rest.split(".route(web::").skip(1) {
            let name = method
                .split_once("()")
                .map(|(name, _)| name)
                .unwrap_or_else(|| panic!("unreadable route on {path}: {method:.40}"));
            routes.insert((name.to_ascii_uppercase(), path.to_owned()));
            methods += 1;
        }
        assert!(methods > 0, "no route read on {path}");
    }
    assert!(
        routes.len() > 10,
        "read only {} routes from configure: {routes:?}",
        routes.len()
    );
    routes
}

/// `(METHOD, path)` of every operation the document names.
fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has `paths`");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// The document is valid JSON, OpenAPI 3.1, and lists exactly the routes the
/// node mounts, each answered by its handler rather than by the 404/405
/// fallbacks; it needs no credential.
#[test]
fn openapi_document_lists_every_route_the_node_serves() {
    let server = Server::start();
    let client = server.client();
    let answer = client.send(client.request("GET", "/openapi.json"), None);
    assert_eq!(answer.status, 200, "GET /openapi.json: {}", answer.text);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json")),
        "content type {:?}",
        answer.header("content-type")
    );
    let document = answer.json();
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(
        version.starts_with("3.1."),
        "openapi is {version:?}, not 3.1.x"
    );
    assert!(document["info"]["title"].is_string());

    let mounted = mounted_routes();
    let documented = documented_routes(&document);
    let undocumented: Vec<_> = mounted.difference(&documented).collect();
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        undocumented.is_empty() && unmounted.is_empty(),
        "served but not in /openapi.json: {undocumented:?}; in /openapi.json but not served: {unmounted:?}"
    );

    // Each documented operation reaches its handler: the fallbacks answer an
    // unknown path 404 `not_found` and an unknown method 405.
    for (method, path) in &documented {
        let concrete = path
            .replace("{order_id}", "1-0-1")
            .replace("{sku}", "contract-sku")
            .replace("{asset}", "console.js");
        let request = client
            .request(method, &concrete)
            .set("Authorization", &format!("Bearer {}", server.admin_token()))
            .set("Content-Type", "application/json");
        let body = (method != "GET").then_some("{}");
        if path == "/v1/console/stream" {
            // An event stream does not end: its status and type are read, its
            // body is not.
            let answer = request.call().expect("the console stream answers");
            assert_eq!(answer.status(), 200);
            assert_eq!(answer.content_type(), "text/event-stream");
            continue;
        }
        let answer = client.send(request, body);
        let code = serde_json::from_str::<Value>(&answer.text)
            .ok()
            .and_then(|body| body["code"].as_str().map(str::to_owned));
        assert!(
            answer.status != 405 && code.as_deref() != Some("not_found"),
            "{method} {concrete} is documented but not served: {} {}",
            answer.status,
            answer.text
        );
        let statuses = &document["paths"][path][method.to_ascii_lowercase()]["responses"];
        assert!(
            statuses.get(answer.status.to_string()).is_some(),
            "{method} {concrete} answered {} which the document does not list: {}",
            answer.status,
            answer.text
        );
    }
}
