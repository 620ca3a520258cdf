//! `GET /openapi.json`: the published contract of this HTTP API (OpenAPI 3.1).
//!
//! Generated from the code: each handler's `#[utoipa::path]` attribute names
//! its route, parameters and answers, and the wire types (`crate::wire`,
//! `crate::problem::Problem`) carry the schemas. `ApiDoc::paths` lists every
//! handler `configure` mounts; `tests/openapi.rs` compares the document with
//! the routes the binary serves, so the two cannot drift apart.

use std::sync::OnceLock;

use actix_web::http::Method;
use actix_web::HttpResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::rate_limit::RouteClass;

/// The name of the security scheme every guarded operation requires.
pub const BEARER_SCHEME: &str = "bearer";

/// The OpenAPI document of the whole HTTP API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flashgate",
        description = "An order gateway for flash sales. Every error is an RFC 9457 problem \
            (`application/problem+json`) with a machine-readable `code`. Reads carry \
            `Flashgate-Node-Role`: only a primary's reads carry the replication promise. \
            A method a route does not take is answered 405 with `Allow`; an unknown path 404 \
            `not_found`.",
    ),
    paths(
        super::orders::place,
        super::orders::get,
        super::orders_read::read,
        super::customer_orders::list,
        super::orders::confirm,
        super::orders::ship,
        super::orders::change,
        super::orders::cancel,
        super::skus::list,
        super::skus::get,
        super::skus::put,
        super::skus::restock,
        super::queue::join,
        super::queue::poll,
        super::queue::put_room,
        super::cluster::status,
        super::cluster::promote,
        super::cluster::handover,
        super::cluster::resume,
        super::cluster::switchover_check,
        super::backup::backup,
        super::alerts::list,
        super::console::page,
        super::console::asset,
        super::console::stream,
        super::console::sales_report,
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        document,
    ),
    modifiers(&CredentialAnswers),
    tags(
        (name = "orders", description = "Reserve, read, confirm and cancel orders"),
        (name = "skus", description = "SKUs: stock and sale settings"),
        (name = "cluster", description = "Replication status and role changes"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "console", description = "The operator console: its page, its live stream, the sales report"),
    )
)]
pub struct ApiDoc;

/// Declares the `bearer` scheme, and gives every operation that takes it
/// (required, or optional as for the catalogue) the 401 and 403 answers, and
/// every operation a rate limit covers (`RouteClass::of`: all but the health
/// probes) the 429 `rate_limited` answer, joined by `too_many_auth_failures`
/// where a credential is taken; in one place rather than on each handler.
struct CredentialAnswers;

impl Modify for CredentialAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            BEARER_SCHEME.into(),
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`; the scheme name is case-insensitive",
                    ))
                    .build(),
            ),
        );
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build()
        };
        components.responses.insert(
            "Unauthorized".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("`unauthorized`: no credential where one is needed, not a Bearer one, or one this node does not know (the detail says which: an expired buyer token, a bad signature, …)")
                    .header(
                        "WWW-Authenticate",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::String))
                            .description(Some("`Bearer`"))
                            .build(),
                    )
                    .content("application/problem+json", problem())
                    .build(),
            ),
        );
        components.responses.insert(
            "Forbidden".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("`forbidden`: the credential's role may not do this; `customer_mismatch`: a buyer token ordering for another customer (docs/SECURITY.md has the rules)")
                    .content("application/problem+json", problem())
                    .build(),
            ),
        );
        components.responses.insert(
            "TooManyAuthFailures".into(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("`too_many_auth_failures`: too many refused credentials from this address; every call with a credential is refused until `Retry-After` has passed")
                    .header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::Integer))
                            .description(Some("Seconds until the address's window ends"))
                            .build(),
                    )
                    .content("application/problem+json", problem())
                    .build(),
            ),
        );
        let rate_limit_headers = |response: ResponseBuilder| {
            response
                .header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds until a request may pass again"))
                        .build(),
                )
                .header(
                    "RateLimit",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("With `rate_limited`: `\"<policy>\";r=<remaining>;t=<seconds until the quota is whole>`"))
                        .build(),
                )
                .header(
                    "RateLimit-Policy",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("With `rate_limited`: `\"<policy>\";q=<burst>;w=<seconds to refill it>`"))
                        .build(),
                )
                .content("application/problem+json", problem())
        };
        const RATE_LIMITED: &str = "`rate_limited`: over a rate limit (per client address by class of route: orders, reads, admin; per customer for orders); `Retry-After` says when to try again, `RateLimit` and `RateLimit-Policy` which quota refused it";
        components.responses.insert(
            "RateLimited".into(),
            RefOr::T(rate_limit_headers(ResponseBuilder::new().description(RATE_LIMITED)).build()),
        );
        components.responses.insert(
            "RateLimitedOrTooManyAuthFailures".into(),
            RefOr::T(
                rate_limit_headers(ResponseBuilder::new().description(format!(
                    "{RATE_LIMITED}. Or `too_many_auth_failures`: too many refused credentials from this address; every call with a credential is refused until `Retry-After` has passed"
                )))
                .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let bearer = requires_bearer(operation);
                let rate_limited = RouteClass::of(&method, path).is_some();
                let too_many = match (bearer, rate_limited) {
                    (true, true) => Some("RateLimitedOrTooManyAuthFailures"),
                    (true, false) => Some("TooManyAuthFailures"),
                    (false, true) => Some("RateLimited"),
                    (false, false) => None,
                };
                if let Some(name) = too_many {
                    operation
                        .responses
                        .responses
                        .insert("429".into(), RefOr::Ref(Ref::from_response_name(name)));
                }
                if bearer {
                    let responses = &mut operation.responses.responses;
                    responses.insert(
                        "401".into(),
                        RefOr::Ref(Ref::from_response_name("Unauthorized")),
                    );
                    // An operation with 403s of its own (the waiting room's)
                    // names the credential's in its description.
                    responses
                        .entry("403".into())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name("Forbidden")));
                }
            }
        }
    }
}

fn requires_bearer(operation: &Operation) -> bool {
    // A requirement is private data in utoipa; its serialised form names the scheme.
    operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement)
            .ok()
            .and_then(|value| value.get(BEARER_SCHEME).cloned())
            .is_some()
    })
}

/// The document as served, rendered once.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document =
            serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serialises");
        spell_links(&mut document);
        document.to_string()
    })
}

/// utoipa 5 writes a Link object's members in snake case (`operation_id`);
/// OpenAPI spells them `operationId`, `operationRef` and `requestBody`, and
/// tools ignore a link spelled otherwise.
fn spell_links(document: &mut serde_json::Value) {
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let responses = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let Some(links) = response
            .get_mut("links")
            .and_then(serde_json::Value::as_object_mut)
        else {
            continue;
        };
        for link in links
            .values_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(snake) {
                    link.insert(camel.to_owned(), value);
                }
            }
        }
    }
}

#[utoipa::path(
    get,
    operation_id = "openapi_document",
    path = "/openapi.json",
    tag = "operations",
    summary = "This document: the HTTP API's contract (OpenAPI 3.1)",
    description = "Needs no credential.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document is OpenAPI 3.1, every operation that takes a credential
    /// answers 401, 403 and 429, the ones that need none are exactly
    /// healthz, readyz and this document, and the catalogue takes one
    /// optionally.
    #[test]
    fn guarded_operations_answer_401_and_403() {
        let document: serde_json::Value =
            serde_json::from_str(document_json()).expect("valid JSON");
        assert!(document["openapi"].as_str().unwrap().starts_with("3.1."));
        let mut open = Vec::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let guarded = operation["security"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|r| r.get(BEARER_SCHEME).is_some()));
                if guarded {
                    assert!(operation["responses"]["401"].is_object(), "{method} {path}");
                    assert!(operation["responses"]["403"].is_object(), "{method} {path}");
                    assert!(operation["responses"]["429"].is_object(), "{method} {path}");
                    let optional = operation["security"].as_array().is_some_and(|list| {
                        list.iter()
                            .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
                    });
                    assert_eq!(
                        optional,
                        path.starts_with("/v1/skus")
                            && method == "get"
                            && !path.contains("/queue/"),
                        "{method} {path}"
                    );
                } else {
                    open.push(format!("{method} {path}"));
                }
            }
        }
        open.sort();
        assert_eq!(
            open,
            [
                "get /console",
                "get /console/{asset}",
                "get /healthz",
                "get /openapi.json",
                "get /readyz"
            ],
            "only these need no credential (the console's page and assets hold no data)"
        );
    }

    /// Every operation a rate limit covers lists 429 with the `rate_limited`
    /// answer and its headers; the health probes, which no limit covers, do
    /// not.
    #[test]
    fn rate_limited_operations_answer_429_with_its_headers() {
        let document: serde_json::Value =
            serde_json::from_str(document_json()).expect("valid JSON");
        let responses = &document["components"]["responses"];
        for name in ["RateLimited", "RateLimitedOrTooManyAuthFailures"] {
            let response = &responses[name];
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|text| text.contains("rate_limited")),
                "{name}"
            );
            for header in ["Retry-After", "RateLimit", "RateLimit-Policy"] {
                assert!(response["headers"][header].is_object(), "{name} {header}");
            }
        }
        let mut limited = 0;
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let answer = operation["responses"]["429"]["$ref"].as_str();
                if path == "/healthz" || path == "/readyz" {
                    assert_eq!(answer, None, "{method} {path}");
                    continue;
                }
                let answer = answer.unwrap_or_else(|| panic!("{method} {path} lists no 429"));
                assert!(answer.contains("RateLimited"), "{method} {path}: {answer}");
                limited += 1;
            }
        }
        assert!(limited > 10, "{limited} rate-limited operations");
    }

    /// Links name their target operation as OpenAPI spells it, and that
    /// operation exists.
    #[test]
    fn links_name_existing_operations() {
        let document: serde_json::Value =
            serde_json::from_str(document_json()).expect("valid JSON");
        let mut operation_ids = Vec::new();
        let mut targets = Vec::new();
        for item in document["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                operation_ids.push(operation["operationId"].as_str().unwrap().to_owned());
                for response in operation["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flatten() {
                        assert!(link.1.get("operation_id").is_none(), "{link:?}");
                        targets.push(link.1["operationId"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
        assert!(!targets.is_empty(), "the document has links");
        for target in targets {
            assert!(operation_ids.contains(&target), "no operation {target}");
        }
    }
}
