//! The operator console's routes (docs/CONSOLE.md): the page and its assets
//! (`GET /console`, `GET /console/{asset}`, no credential: they hold no
//! data), its live stream (`GET /v1/console/stream`, Server-Sent Events)
//! and the sales report (`GET /v1/admin/report`, JSON or CSV). The stream
//! and the report are ordinary API calls with the operator's credential:
//! the page can do nothing the API does not let its token do.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::Timestamp;

use super::caller::allowed;
use super::{json, AppState};
use crate::auth::Action;
use crate::console::{assets, report, stream};
use crate::request::RequestError;

fn asset_answer(asset: &assets::Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        // Assets change with the binary: a browser checks each time (cheap,
        // and a node upgraded in place never serves a stale script).
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header(("Content-Security-Policy", assets::CONTENT_SECURITY_POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(asset.body)
}

#[utoipa::path(
    get,
    operation_id = "console_page",
    path = "/console",
    tag = "console",
    summary = "The operator console, a web page",
    description = "Needs no credential: the page asks for the admin or operator token and sends it with every API call it makes \
        (kept in the browser tab's sessionStorage only). Everything it loads is embedded in the binary.",
    responses((status = 200, description = "The page", content_type = "text/html")),
)]
pub async fn page() -> HttpResponse {
    asset_answer(&assets::PAGE)
}

#[utoipa::path(
    get,
    operation_id = "console_asset",
    path = "/console/{asset}",
    tag = "console",
    summary = "A file the console page loads (script, style sheet, icon)",
    params(("asset" = String, Path, description = "`console.js`, `console.css` or `favicon.svg`", example = "console.js")),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "`not_found`", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
)]
pub async fn asset(
    request: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, RequestError> {
    match assets::find(&name) {
        Some(asset) => Ok(asset_answer(asset)),
        None => Err(RequestError::NotFound(format!(
            "{} {} (the console serves console.js, console.css and favicon.svg)",
            request.method(),
            request.path()
        ))),
    }
}

#[utoipa::path(
    get,
    operation_id = "console_stream",
    path = "/v1/console/stream",
    tag = "console",
    summary = "The console's live stream (Server-Sent Events)",
    description = "Events: `alerts` (the active and recent alerts, with `id:` the last alert event id; sent first without `Last-Event-ID`, \
        and with `reason: missed` when the events after the id sent are no longer held), `alert` (one alert event, `id:` its number), \
        `snapshot` (the node at one moment, about once per `console_sample_interval_ms`: stock, orders per second by outcome, latency, \
        queues, the log, the cluster; a slow reader gets the latest only). Send `Last-Event-ID` to resume after an alert event. \
        At most `console_streams_max` streams at once. Operator and admin credentials.",
    params(("Last-Event-ID" = Option<u64>, Header, description = "The last alert event id received: the stream resumes after it")),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = crate::console::Snapshot),
        (status = 503, description = "`too_many_streams` (with `Retry-After`)", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::ReadOperations)?;
    let console = &state.console;
    let slot = console
        .streams
        .take()
        .ok_or(RequestError::TooManyStreams(console.streams.max()))?;
    let last_event_id = stream::parse_last_event_id(
        request
            .headers()
            .get("Last-Event-ID")
            .and_then(|value| value.to_str().ok()),
    );
    let body = stream::events(
        state.alerts.clone(),
        console.sampler.subscribe(),
        &console.streams,
        slot,
        last_event_id,
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        // Proxies that buffer answers (nginx) pass this one as it comes.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

/// What `Accept` asks of the report: JSON (also for `*/*` or no header) or
/// CSV; `None` for anything else.
fn report_format(accept: Option<&str>) -> Option<bool> {
    let Some(accept) = accept else {
        return Some(false);
    };
    let mut json_ok = false;
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        let refused = range.split(';').skip(1).any(|param| {
            matches!(
                param.trim().replace(' ', "").as_str(),
                "q=0" | "q=0.0" | "q=0.00" | "q=0.000"
            )
        });
        if refused {
            continue;
        }
        match media.to_ascii_lowercase().as_str() {
            "text/csv" => return Some(true),
            "application/json" | "application/*" | "*/*" => json_ok = true,
            _ => {}
        }
    }
    json_ok.then_some(false)
}

#[utoipa::path(
    get,
    operation_id = "sales_report",
    path = "/v1/admin/report",
    tag = "console",
    summary = "Sales per SKU: attempts, refusals by reason, reservations and how they ended, conversion, sell-out",
    description = "JSON, or CSV with `Accept: text/csv`. Stock (total, available, reserved, sold) is the shards' state and survives a restart \
        and a failover; everything else counts what this node decided or answered since it started (`node_started_at`); docs/CONSOLE.md. \
        Operator and admin credentials.",
    responses(
        (status = 200, description = "The report", body = crate::console::report::Report),
        (status = 406, description = "`not_acceptable`: `Accept` names neither `application/json` nor `text/csv`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn sales_report(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::ReadOperations)?;
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    let Some(csv) = report_format(accept) else {
        return Err(RequestError::NotAcceptable(format!(
            "Accept: {}: the report is application/json or text/csv",
            accept.unwrap_or_default()
        )));
    };
    let stock = state.node.stock().await?;
    let sales = state.node.sales().await?;
    let attempts = state.requests.ledger.read();
    let report = report::build(
        &stock,
        &sales,
        &attempts,
        state.requests.ledger.overflow(),
        state.node.cluster().role().as_str(),
        state.console.started,
        Timestamp(crate::console::now_ms()),
    );
    if csv {
        return Ok(HttpResponse::Ok()
            .insert_header((
                header::CONTENT_TYPE,
                "text/csv; charset=utf-8; header=present",
            ))
            .insert_header((
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"flashgate-report.csv\"",
            ))
            .body(report::csv(&report)));
    }
    Ok(json(StatusCode::OK, &report))
}

#[cfg(test)]
mod tests {
    use super::report_format;

    #[test]
    fn accept_picks_json_or_csv_or_nothing() {
        assert_eq!(report_format(None), Some(false));
        assert_eq!(report_format(Some("*/*")), Some(false));
        assert_eq!(report_format(Some("application/json")), Some(false));
        assert_eq!(report_format(Some("text/csv")), Some(true));
        assert_eq!(report_format(Some("text/html, text/csv;q=0.9")), Some(true));
        assert_eq!(
            report_format(Some("text/csv;q=0, application/json")),
            Some(false)
        );
        assert_eq!(report_format(Some("text/html")), None);
        assert_eq!(report_format(Some("image/png, text/plain")), None);
    }
}
