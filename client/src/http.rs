//! `HttpClient`: the HTTP JSON API over reqwest, with the same calls, types and
//! error codes as `QuicClient`. JSON bodies and RFC 3339 times convert to the
//! protocol crate's types in `json`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use flashgate_protocol::{code, Order, Sku, SkuSettings};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::api::{missing_admin_token, OrderGateway, PlaceOrder, Placed};
use crate::error::{ClientError, TransportError};
use crate::json;

/// Most base URLs a config may list.
pub const BASE_URLS_MAX: usize = 16;
/// The highest `response_bytes_max` a config may set.
pub const RESPONSE_BYTES_MAX_LIMIT: usize = 64 << 20;
/// The highest `batch_concurrency_max` a config may set.
pub const BATCH_CONCURRENCY_MAX_LIMIT: usize = 1024;

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Where the server is and the client's limits. Build it with `HttpConfig::new`
/// and change the fields you need.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `http://host:port` (optionally with a path prefix). A request goes to
    /// the URL that last answered; when it cannot be connected to (nothing was
    /// sent), the next one is tried. 1 to `BASE_URLS_MAX`. This build has no
    /// TLS for HTTP: `https` URLs are refused.
    pub base_urls: Vec<String>,
    /// Sent as `Authorization: Bearer` with the admin calls; without it they
    /// fail with `ClientError::Config` and send nothing.
    pub admin_token: Option<String>,
    /// The longest one request may take, connect to last body byte. Default 10 s.
    pub request_timeout: Duration,
    /// The longest a TCP connect may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The largest response body read; a larger one is a
    /// `ClientError::Protocol`. Up to `RESPONSE_BYTES_MAX_LIMIT`. Default 1 MiB.
    pub response_bytes_max: usize,
    /// Requests `place_batch` has in flight at once (over all batches on this
    /// client), 1 to `BATCH_CONCURRENCY_MAX_LIMIT`. Default 16.
    pub batch_concurrency_max: usize,
}

impl HttpConfig {
    /// Defaults for everything but the server's URL.
    pub fn new(base_url: impl Into<String>) -> HttpConfig {
        HttpConfig {
            base_urls: vec![base_url.into()],
            admin_token: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            response_bytes_max: 1 << 20,
            batch_concurrency_max: 16,
        }
    }
}

/// A client of the HTTP API. Cheap to clone: clones share the connection pool
/// and limits.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_urls: Vec<Url>,
    /// The index of the base URL that last answered.
    current: AtomicUsize,
    authorization: Option<HeaderValue>,
    request_timeout: Duration,
    response_bytes_max: usize,
    batch_slots: Semaphore,
}

/// A request's extra headers.
#[derive(Default)]
struct Headers {
    admin: bool,
    idempotency_key: Option<HeaderValue>,
}

/// A success answer: whether it was 201 Created, and its body.
struct Answer {
    created: bool,
    body: Vec<u8>,
}

fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let url = Url::parse(text)
        .map_err(|error| ClientError::Config(format!("base URL {text:?}: {error}")))?;
    if url.scheme() != "http" {
        return Err(ClientError::Config(format!(
            "base URL {text:?}: only http:// is supported (this build has no TLS for HTTP; \
             use QuicClient or a TLS-terminating proxy on localhost)"
        )));
    }
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "base URL {text:?}: must be http://host[:port][/prefix] without query or fragment"
        )));
    }
    Ok(url)
}

/// An error and its sources, one line: reqwest's own message alone rarely says
/// what went wrong.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl HttpClient {
    /// Checks the config and builds the client; connects on the first request.
    pub fn new(config: HttpConfig) -> Result<HttpClient, ClientError> {
        if config.base_urls.is_empty() || config.base_urls.len() > BASE_URLS_MAX {
            return Err(ClientError::Config(format!(
                "base_urls: give 1 to {BASE_URLS_MAX} URLs, not {}",
                config.base_urls.len()
            )));
        }
        let base_urls = config
            .base_urls
            .iter()
            .map(|text| parse_base_url(text))
            .collect::<Result<Vec<_>, _>>()?;
        if !(1..=RESPONSE_BYTES_MAX_LIMIT).contains(&config.response_bytes_max) {
            return Err(ClientError::Config(format!(
                "response_bytes_max: must be 1 to {RESPONSE_BYTES_MAX_LIMIT}"
            )));
        }
        if !(1..=BATCH_CONCURRENCY_MAX_LIMIT).contains(&config.batch_concurrency_max) {
            return Err(ClientError::Config(format!(
                "batch_concurrency_max: must be 1 to {BATCH_CONCURRENCY_MAX_LIMIT}"
            )));
        }
        if config.request_timeout.is_zero() || config.connect_timeout.is_zero() {
            return Err(ClientError::Config(
                "request_timeout and connect_timeout: must be more than 0".into(),
            ));
        }
        let authorization = match &config.admin_token {
            None => None,
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        ClientError::Config("admin_token: must be printable ASCII".into())
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .no_proxy()
            .user_agent(concat!("flashgate-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::Config(format!("HTTP client: {}", describe(&error))))?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                http,
                base_urls,
                current: AtomicUsize::new(0),
                authorization,
                request_timeout: config.request_timeout,
                response_bytes_max: config.response_bytes_max,
                batch_slots: Semaphore::new(config.batch_concurrency_max),
            }),
        })
    }

    /// Every SKU (`GET /v1/skus`); HTTP only, the binary protocol has no list.
    pub async fn skus(&self) -> Result<Vec<Sku>, ClientError> {
        let answer = self
            .inner
            .send(Method::GET, &["v1", "skus"], None, Headers::default())
            .await?;
        json::skus_from_json(&answer.body)
    }

    async fn order_call(&self, method: Method, segments: &[&str]) -> Result<Order, ClientError> {
        let answer = self
            .inner
            .send(method, segments, None, Headers::default())
            .await?;
        json::order_from_json(&answer.body)
    }

    fn admin(&self) -> Result<Headers, ClientError> {
        if self.inner.authorization.is_none() {
            return Err(missing_admin_token());
        }
        Ok(Headers {
            admin: true,
            idempotency_key: None,
        })
    }
}

impl Inner {
    /// `base/segments...`, each segment percent-encoded (so an id holding `/`
    /// or `?` stays one segment).
    fn url(&self, index: usize, segments: &[&str]) -> Result<Url, ClientError> {
        let mut url = self.base_urls[index].clone();
        url.path_segments_mut()
            // `parse_base_url` refused URLs that cannot be a base.
            .map_err(|_| ClientError::Config("a base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends one request, failing over to the next base URL only when a
    /// connection could not be made, and returns a 200 or 201 answer's body.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        headers: Headers,
    ) -> Result<Answer, ClientError> {
        let start = self.current.load(Ordering::Relaxed);
        let count = self.base_urls.len();
        let mut failures = Vec::new();
        for offset in 0..count {
            let index = (start + offset) % count;
            let mut request = self
                .http
                .request(method.clone(), self.url(index, segments)?)
                .header(ACCEPT, "application/json, application/problem+json");
            if let Some(body) = body {
                request = request.json(body);
            }
            if let (true, Some(authorization)) = (headers.admin, &self.authorization) {
                request = request.header(AUTHORIZATION, authorization.clone());
            }
            if let Some(key) = &headers.idempotency_key {
                request = request.header(IDEMPOTENCY_KEY, key.clone());
            }
            match request.send().await {
                Ok(response) => {
                    if offset > 0 {
                        self.current.store(index, Ordering::Relaxed);
                    }
                    return self.answer(response).await;
                }
                Err(error) if error.is_connect() => {
                    tracing::warn!(url = %self.base_urls[index], error = %describe(&error), "HTTP connect failed");
                    failures.push(format!("{}: {}", self.base_urls[index], describe(&error)));
                }
                Err(error) => return Err(self.transport(&error)),
            }
        }
        Err(TransportError::Connect(failures.join("; ")).into())
    }

    fn transport(&self, error: &reqwest::Error) -> ClientError {
        if error.is_timeout() {
            TransportError::Timeout {
                after: self.request_timeout,
            }
            .into()
        } else {
            TransportError::Http(describe(error)).into()
        }
    }

    /// Reads the body (up to the limit) and sorts success from refusal.
    async fn answer(&self, mut response: reqwest::Response) -> Result<Answer, ClientError> {
        let status = response.status();
        let too_large = || {
            ClientError::Protocol(format!(
                "HTTP {status} body is over the client's limit of {} bytes",
                self.response_bytes_max
            ))
        };
        if response
            .content_length()
            .is_some_and(|length| length > self.response_bytes_max as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport(&error))?
        {
            if body.len() + chunk.len() > self.response_bytes_max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        match status {
            StatusCode::OK => Ok(Answer {
                created: false,
                body,
            }),
            StatusCode::CREATED => Ok(Answer {
                created: true,
                body,
            }),
            status if status.is_success() => Err(ClientError::Protocol(format!(
                "unexpected HTTP {status}; the API answers 200 or 201"
            ))),
            status => Err(json::error_from_response(status.as_u16(), &body)),
        }
    }
}

/// The `Idempotency-Key` header, refused here with the server's code when HTTP
/// cannot carry it.
fn idempotency_header(key: &str) -> Result<HeaderValue, ClientError> {
    HeaderValue::from_str(key).map_err(|_| {
        ClientError::server(
            code::INVALID_FIELD,
            "Idempotency-Key: must be printable ASCII (refused by the client: \
             an HTTP header cannot carry it)",
        )
    })
}

impl OrderGateway for HttpClient {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        let headers = Headers {
            admin: false,
            idempotency_key: order
                .idempotency_key
                .as_deref()
                .map(idempotency_header)
                .transpose()?,
        };
        let body = json::place_order_body(&order);
        let answer = self
            .inner
            .send(Method::POST, &["v1", "orders"], Some(&body), headers)
            .await?;
        Ok(Placed {
            order: json::order_from_json(&answer.body)?,
            created: answer.created,
        })
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        let tasks: Vec<_> = orders
            .into_iter()
            .map(|order| {
                let client = self.clone();
                tokio::spawn(async move {
                    // The semaphore is never closed; a closed one would only
                    // mean no limit.
                    let _slot = client.inner.batch_slots.acquire().await.ok();
                    client.place(order).await
                })
            })
            .collect();
        let mut results = Vec::with_capacity(tasks.len());
        for task in tasks {
            results.push(match task.await {
                Ok(result) => result,
                Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
                Err(_) => Err(TransportError::ConnectionLost(
                    "the runtime shut down before the order was answered".into(),
                )
                .into()),
            });
        }
        Ok(results)
    }

    async fn order(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::GET, &["v1", "orders", order_id])
            .await
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::POST, &["v1", "orders", order_id, "confirm"])
            .await
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::POST, &["v1", "orders", order_id, "cancel"])
            .await
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        let answer = self
            .inner
            .send(Method::GET, &["v1", "skus", sku], None, Headers::default())
            .await?;
        json::sku_from_json(&answer.body)
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        let headers = self.admin()?;
        let body = json::sku_settings_body(&settings)?;
        let answer = self
            .inner
            .send(Method::PUT, &["v1", "skus", sku], Some(&body), headers)
            .await?;
        Ok((json::sku_from_json(&answer.body)?, answer.created))
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        let headers = self.admin()?;
        let body = serde_json::json!({ "quantity": quantity });
        let answer = self
            .inner
            .send(
                Method::POST,
                &["v1", "skus", sku, "restock"],
                Some(&body),
                headers,
            )
            .await?;
        json::sku_from_json(&answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base_url: &str) -> HttpClient {
        HttpClient::new(HttpConfig::new(base_url)).unwrap()
    }

    #[test]
    fn urls_keep_the_prefix_and_encode_each_segment() {
        let plain = client("http://127.0.0.1:8080");
        assert_eq!(
            plain
                .inner
                .url(0, &["v1", "orders", "1-0-1"])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/v1/orders/1-0-1"
        );
        let prefixed = client("http://gateway.internal/flashgate/");
        assert_eq!(
            prefixed
                .inner
                .url(0, &["v1", "orders", "a/b?c", "confirm"])
                .unwrap()
                .as_str(),
            "http://gateway.internal/flashgate/v1/orders/a%2Fb%3Fc/confirm"
        );
    }

    #[test]
    fn configs_that_cannot_work_are_refused() {
        for base_url in ["https://example.com", "not a url", "http://h/?q=1"] {
            assert!(
                matches!(
                    HttpClient::new(HttpConfig::new(base_url)),
                    Err(ClientError::Config(_))
                ),
                "{base_url}"
            );
        }
        let mut none = HttpConfig::new("http://127.0.0.1:8080");
        none.base_urls.clear();
        assert!(matches!(HttpClient::new(none), Err(ClientError::Config(_))));
        let mut bad_token = HttpConfig::new("http://127.0.0.1:8080");
        bad_token.admin_token = Some("line\nbreak".into());
        assert!(matches!(
            HttpClient::new(bad_token),
            Err(ClientError::Config(_))
        ));
    }

    #[test]
    fn idempotency_keys_http_cannot_carry_get_the_servers_code() {
        assert!(idempotency_header("7f3c2a").is_ok());
        assert_eq!(
            idempotency_header("bad\nkey").unwrap_err().code(),
            Some(code::INVALID_FIELD)
        );
    }

    #[tokio::test]
    async fn admin_calls_without_a_token_send_nothing() {
        // Port 9 (discard) on localhost: were anything sent, this would be a
        // transport error, not a config error.
        let client = client("http://127.0.0.1:9");
        let error = client
            .put_sku("A", SkuSettings::default())
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Config(_)), "{error}");
        let error = client.restock("A", 1).await.unwrap_err();
        assert!(matches!(error, ClientError::Config(_)), "{error}");
    }
}
