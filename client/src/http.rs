//! `HttpClient`: the HTTP JSON API over keep-alive HTTP/1.1 connections
//! (`http1`), plain or over TLS for `https://` base URLs (the certificate
//! checked as `HttpConfig::trust` says, as for QUIC), with the same calls, types and error codes as `QuicClient`. JSON bodies and RFC 3339 times convert to the
//! protocol crate's types in `json`. With several base URLs (the nodes of one
//! cluster) every call goes through `Cluster`, which follows the primary.

use std::sync::Arc;
use std::time::Duration;

use flashgate_protocol::{code, Order, Sku, SkuSettings};
use reqwest::Url;
use rustls_pki_types::ServerName;
use tokio::sync::Semaphore;

use crate::api::{
    missing_admin_token, ChangeOrder, Changed, OrderGateway, OrdersRead, PlaceOrder, Placed,
};
use crate::cluster::{Attempted, Cluster};
use crate::error::{ClientError, TransportError};
use crate::failover::{FailoverConfig, Failure, NodeSwitch, Resend};
use crate::http1::{self, ExchangeError, Security};
use crate::json;
use crate::trust::{https_tls_config, Trust};

/// The request methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

/// Most base URLs a config may list.
pub const BASE_URLS_MAX: usize = 16;
/// The highest `response_bytes_max` a config may set.
pub const RESPONSE_BYTES_MAX_LIMIT: usize = 64 << 20;
/// The highest `batch_concurrency_max` a config may set.
pub const BATCH_CONCURRENCY_MAX_LIMIT: usize = 1024;

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Where the server is and the client's limits. Build it with `HttpConfig::new`
/// (one server) or `HttpConfig::with_base_urls` (the nodes of one cluster) and
/// change the fields you need.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `http://host:port` (optionally with a path prefix) of the server, or of
    /// each node of one cluster (a primary and its standby, in any order).
    /// Calls start at the first and follow the primary (see `failover`). 1 to
    /// `BASE_URLS_MAX`. `https://` URLs need `trust`.
    pub base_urls: Vec<String>,
    /// Which certificate `https://` nodes must show (a CA or the certificate
    /// itself, a SHA-256 fingerprint, or, insecurely, any); the name checked
    /// against a CA-issued certificate is the URL's host. Required when a
    /// base URL is `https://`, unused for `http://`. The connection offers
    /// TLS 1.3 and 1.2 with AEAD suites only. Default none.
    pub trust: Option<Trust>,
    /// Sent as `Authorization: Bearer` with the admin calls; without it they
    /// fail with `ClientError::Config` and send nothing.
    pub admin_token: Option<String>,
    /// Sent as `Authorization: Bearer` with every other call: a buyer token
    /// (JWT), or a service, payments or operator token. Without it calls go
    /// without a credential, which a node in development mode takes.
    pub credential: Option<String>,
    /// The longest one attempt at one node may take, connect to last body
    /// byte; failover may make further attempts, each with this timeout.
    /// Default 10 s.
    pub request_timeout: Duration,
    /// The longest a TCP connect may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The largest response body read; a larger one is a
    /// `ClientError::Protocol`. Up to `RESPONSE_BYTES_MAX_LIMIT`. Default 1 MiB.
    pub response_bytes_max: usize,
    /// Requests `place_batch` has in flight at once (over all batches on this
    /// client), 1 to `BATCH_CONCURRENCY_MAX_LIMIT`. Default 16.
    pub batch_concurrency_max: usize,
    /// How calls move between nodes, and for how long. Default
    /// `FailoverConfig::default()` (10 s).
    pub failover: FailoverConfig,
}

impl HttpConfig {
    /// Defaults for everything but the server's URL.
    pub fn new(base_url: impl Into<String>) -> HttpConfig {
        HttpConfig::with_base_urls([base_url])
    }

    /// Defaults for everything but the base URLs of the nodes of one cluster,
    /// which the client follows as one server.
    pub fn with_base_urls<S: Into<String>>(base_urls: impl IntoIterator<Item = S>) -> HttpConfig {
        HttpConfig {
            base_urls: base_urls.into_iter().map(Into::into).collect(),
            trust: None,
            admin_token: None,
            credential: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            response_bytes_max: 1 << 20,
            batch_concurrency_max: 16,
            failover: FailoverConfig::default(),
        }
    }
}

/// A client of the HTTP API. Cheap to clone: clones share the connection pool,
/// limits and the route among the nodes.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    base_urls: Vec<Url>,
    /// Each base URL's connections.
    nodes: Vec<Node>,
    /// Which node calls go to, and which answered last.
    cluster: Cluster,
    /// The admin token's header value.
    authorization: Option<String>,
    /// The credential's header value, for every other call.
    credential: Option<String>,
    request_timeout: Duration,
    connect_timeout: Duration,
    response_bytes_max: usize,
    batch_slots: Semaphore,
}

/// One base URL: its connections, the `Host` header and the path prefix.
struct Node {
    connections: http1::Node,
    host: String,
    /// The base URL's path without a trailing `/` (empty for the root).
    prefix: String,
}

impl Node {
    /// The node at `url`; `tls` is the client config for `https://` URLs.
    fn new(url: &Url, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Node, ClientError> {
        let host = url
            .host_str()
            .ok_or_else(|| ClientError::Config(format!("base URL {url}: has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let connect_host = host.trim_start_matches('[').trim_end_matches(']');
        let security = match (url.scheme(), tls) {
            ("https", Some(config)) => {
                let server_name = ServerName::try_from(connect_host.to_owned()).map_err(|_| {
                    ClientError::Config(format!(
                        "base URL {url}: {connect_host:?} is not a DNS name or IP address"
                    ))
                })?;
                Security::tls(config.clone(), server_name)
            }
            ("https", None) => {
                return Err(ClientError::Config(format!(
                    "base URL {url}: https:// needs HttpConfig::trust (the server's CA or \
                     certificate, or its SHA-256 fingerprint)"
                )))
            }
            _ => Security::Plain,
        };
        let address = if connect_host.contains(':') {
            format!("[{connect_host}]:{port}")
        } else {
            format!("{connect_host}:{port}")
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Node {
            connections: http1::Node::new(address, security),
            host,
            prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// A request's extra headers.
#[derive(Clone, Default)]
struct Headers {
    admin: bool,
    idempotency_key: Option<String>,
    queue_ticket: Option<String>,
}

/// The waiting room's ticket header of an order.
const QUEUE_TICKET: &str = "Flashgate-Queue-Ticket";

/// A success answer: whether it was 201 Created, and its body.
struct Answer {
    created: bool,
    body: Vec<u8>,
}

fn parse_base_url(text: &str) -> Result<Url, ClientError> {
    let url = Url::parse(text)
        .map_err(|error| ClientError::Config(format!("base URL {text:?}: {error}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(ClientError::Config(format!(
            "base URL {text:?}: only http:// and https:// are supported"
        )));
    }
    if url.cannot_be_a_base() || url.query().is_some() || url.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "base URL {text:?}: must be http[s]://host[:port][/prefix] without query or fragment"
        )));
    }
    Ok(url)
}

/// The configured node a `not_primary` problem's `primary` URL names: the same
/// scheme, host and port, and the same path prefix when the URL has one.
fn node_named(base_urls: &[Url], primary: &str) -> Option<usize> {
    let primary = Url::parse(primary).ok()?;
    let prefix = |url: &Url| url.path().trim_end_matches('/').to_owned();
    base_urls.iter().position(|base| {
        base.scheme() == primary.scheme()
            && base.host_str() == primary.host_str()
            && base.port_or_known_default() == primary.port_or_known_default()
            && (prefix(&primary).is_empty() || prefix(&primary) == prefix(base))
    })
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
        config.failover.validate()?;
        let authorization = bearer("admin_token", config.admin_token.as_deref())?;
        let credential = bearer("credential", config.credential.as_deref())?;
        let tls = match &config.trust {
            Some(trust) if base_urls.iter().any(|url| url.scheme() == "https") => {
                Some(Arc::new(https_tls_config(trust)?))
            }
            _ => None,
        };
        let nodes = base_urls
            .iter()
            .map(|url| Node::new(url, tls.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HttpClient {
            inner: Arc::new(Inner {
                base_urls,
                nodes,
                cluster: Cluster::new(config.failover, config.base_urls.clone()),
                authorization,
                credential,
                request_timeout: config.request_timeout,
                connect_timeout: config.connect_timeout,
                response_bytes_max: config.response_bytes_max,
                batch_slots: Semaphore::new(config.batch_concurrency_max),
            }),
        })
    }

    /// Every SKU (`GET /v1/skus`); HTTP only, the binary protocol has no list.
    pub async fn skus(&self) -> Result<Vec<Sku>, ClientError> {
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Get,
                &["v1", "skus"],
                None,
                Headers::default(),
            )
            .await?;
        json::skus_from_json(&answer.body)
    }

    /// A call on one order; every one of them is safe to send again (a read,
    /// or a transition the server answers unchanged when it was made).
    async fn order_call(&self, method: Method, segments: &[&str]) -> Result<Order, ClientError> {
        let answer = self
            .inner
            .send(Resend::Safe, method, segments, None, Headers::default())
            .await?;
        json::order_from_json(&answer.body)
    }

    fn admin(&self) -> Result<Headers, ClientError> {
        if self.inner.authorization.is_none() {
            return Err(missing_admin_token());
        }
        Ok(Headers {
            admin: true,
            ..Headers::default()
        })
    }
}

impl Inner {
    /// `prefix/segments...` at node `index`, each segment percent-encoded (so
    /// an id holding `/` or `?` stays one segment).
    fn path(&self, index: usize, segments: &[&str]) -> String {
        let mut path = String::with_capacity(64);
        path.push_str(&self.nodes[index].prefix);
        for segment in segments {
            path.push('/');
            http1::push_segment(&mut path, segment);
        }
        path
    }

    /// The whole request, head and body, as it goes on the wire.
    fn request_bytes(
        &self,
        node: usize,
        method: Method,
        segments: &[&str],
        body: Option<&[u8]>,
        headers: &Headers,
    ) -> Vec<u8> {
        let path = self.path(node, segments);
        let mut request = Vec::with_capacity(256 + body.map_or(0, <[u8]>::len));
        let mut line = |parts: &[&str]| {
            for part in parts {
                request.extend_from_slice(part.as_bytes());
            }
            request.extend_from_slice(b"\r\n");
        };
        line(&[method.as_str(), " ", &path, " HTTP/1.1"]);
        line(&["Host: ", &self.nodes[node].host]);
        line(&["Accept: application/json, application/problem+json"]);
        line(&[concat!(
            "User-Agent: flashgate-client/",
            env!("CARGO_PKG_VERSION")
        )]);
        let authorization = if headers.admin {
            &self.authorization
        } else {
            &self.credential
        };
        if let Some(authorization) = authorization {
            line(&["Authorization: ", authorization]);
        }
        if let Some(key) = &headers.idempotency_key {
            line(&[IDEMPOTENCY_KEY, ": ", key]);
        }
        if let Some(ticket) = &headers.queue_ticket {
            line(&[QUEUE_TICKET, ": ", ticket]);
        }
        let length;
        match body {
            Some(body) => {
                length = body.len().to_string();
                line(&["Content-Type: application/json"]);
                line(&["Content-Length: ", &length]);
            }
            None if method != Method::Get => line(&["Content-Length: 0"]),
            None => {}
        }
        request.extend_from_slice(b"\r\n");
        if let Some(body) = body {
            request.extend_from_slice(body);
        }
        request
    }

    /// Sends one request, following the primary, and returns a 200 or 201
    /// answer's body.
    async fn send(
        &self,
        resend: Resend,
        method: Method,
        segments: &[&str],
        body: Option<&[u8]>,
        headers: Headers,
    ) -> Result<Answer, ClientError> {
        self.cluster
            .call(resend, |node| {
                self.attempt(node, method, segments, body, &headers)
            })
            .await
    }

    /// One attempt at node `node`, within the request timeout.
    async fn attempt(
        &self,
        node: usize,
        method: Method,
        segments: &[&str],
        body: Option<&[u8]>,
        headers: &Headers,
    ) -> Attempted<Answer> {
        let request = self.request_bytes(node, method, segments, body, headers);
        let exchange = self.nodes[node].connections.exchange(
            &request,
            self.response_bytes_max,
            self.connect_timeout,
        );
        let answer = match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(ExchangeError::Connect(error))) => {
                let url = &self.base_urls[node];
                tracing::warn!(%url, %error, "HTTP connect failed");
                return Attempted::Failed(
                    Failure::NotSent,
                    TransportError::Connect(format!("{url}: {error}")).into(),
                );
            }
            Ok(Err(ExchangeError::Untrusted(error))) => {
                // Another attempt at this node would meet the same
                // certificate: the call ends here, with nothing sent.
                let url = &self.base_urls[node];
                tracing::warn!(%url, %error, "HTTPS certificate refused");
                return Attempted::Answered(Err(TransportError::Connect(format!(
                    "{url}: {error}"
                ))
                .into()));
            }
            Ok(Err(ExchangeError::Lost(error))) => {
                return Attempted::Failed(
                    Failure::Unanswered,
                    TransportError::Http(format!("{}: {error}", self.base_urls[node])).into(),
                )
            }
            Ok(Err(ExchangeError::TooLarge)) => {
                return Attempted::Answered(Err(ClientError::Protocol(format!(
                    "the answer's body is over the client's limit of {} bytes",
                    self.response_bytes_max
                ))))
            }
            Err(_) => {
                return Attempted::Failed(
                    Failure::Unanswered,
                    TransportError::Timeout {
                        after: self.request_timeout,
                    }
                    .into(),
                )
            }
        };
        self.sort_answer(answer.status, answer.body)
    }

    /// Sorts an answer: 200 and 201 are answers, a `not_primary` problem or a
    /// failure that is not the server's moves the call on, the server's other
    /// refusals are answers.
    fn sort_answer(&self, status: u16, body: Vec<u8>) -> Attempted<Answer> {
        match status {
            200 => Attempted::Answered(Ok(Answer {
                created: false,
                body,
            })),
            201 => Attempted::Answered(Ok(Answer {
                created: true,
                body,
            })),
            status if (200..300).contains(&status) => {
                Attempted::Answered(Err(ClientError::Protocol(format!(
                    "unexpected HTTP {status}; the API answers 200 or 201"
                ))))
            }
            status => match json::error_from_response(status, &body) {
                error if error.code() == Some(code::NOT_PRIMARY) => {
                    let primary = json::problem_primary(&body)
                        .and_then(|primary| node_named(&self.base_urls, &primary));
                    Attempted::Failed(Failure::NotPrimary { primary }, error)
                }
                error @ ClientError::Transport(_) => Attempted::Failed(Failure::Unanswered, error),
                error => Attempted::Answered(Err(error)),
            },
        }
    }
}

/// The `Idempotency-Key` header, refused here with the server's code when HTTP
/// cannot carry it.
/// `Bearer <token>` as a header value; `field` names the setting.
fn bearer(field: &str, token: Option<&str>) -> Result<Option<String>, ClientError> {
    let Some(token) = token else {
        return Ok(None);
    };
    let value = format!("Bearer {token}");
    if !http1::is_header_value(&value) {
        return Err(ClientError::Config(format!(
            "{field}: must be printable ASCII"
        )));
    }
    Ok(Some(value))
}

fn idempotency_header(key: &str) -> Result<String, ClientError> {
    http1::is_header_value(key)
        .then(|| key.to_owned())
        .ok_or_else(|| {
            ClientError::server(
                code::INVALID_FIELD,
                "Idempotency-Key: must be printable ASCII (refused by the client: \
             an HTTP header cannot carry it)",
            )
        })
}

impl OrderGateway for HttpClient {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        let queue_ticket = match &order.queue_ticket {
            Some(ticket) if !http1::is_header_value(ticket) => {
                return Err(ClientError::Config(
                    "queue_ticket: not a ticket (a header value of printable ASCII)".into(),
                ))
            }
            ticket => ticket.clone(),
        };
        let headers = Headers {
            admin: false,
            idempotency_key: order
                .idempotency_key
                .as_deref()
                .map(idempotency_header)
                .transpose()?,
            queue_ticket,
        };
        let resend = Resend::orders(std::iter::once(order.idempotency_key.as_deref()));
        let body = json::place_order_body(&order)?;
        let answer = self
            .inner
            .send(
                resend,
                Method::Post,
                &["v1", "orders"],
                Some(&body[..]),
                headers,
            )
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
        self.order_call(Method::Get, &["v1", "orders", order_id])
            .await
    }

    async fn read_orders(&self, order_ids: &[String]) -> Result<OrdersRead, ClientError> {
        let body = json::to_bytes(&serde_json::json!({ "order_ids": order_ids }))?;
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Post,
                &["v1", "orders", "read"],
                Some(&body[..]),
                Headers::default(),
            )
            .await?;
        json::orders_read_from_json(&answer.body)
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::Post, &["v1", "orders", order_id, "confirm"])
            .await
    }

    async fn change(
        &self,
        order_id: &str,
        change: ChangeOrder,
        idempotency_key: &str,
    ) -> Result<Changed, ClientError> {
        let headers = Headers {
            admin: false,
            idempotency_key: Some(idempotency_header(idempotency_key)?),
            queue_ticket: None,
        };
        let body = json::change_order_body(&change)?;
        // The server answers the same change under the same key with the
        // order as it is: safe to send again.
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Patch,
                &["v1", "orders", order_id],
                Some(&body[..]),
                headers,
            )
            .await?;
        json::changed_from_json(&answer.body)
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::Post, &["v1", "orders", order_id, "cancel"])
            .await
    }

    async fn ship(&self, order_id: &str) -> Result<Order, ClientError> {
        self.order_call(Method::Post, &["v1", "orders", order_id, "ship"])
            .await
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Get,
                &["v1", "skus", sku],
                None,
                Headers::default(),
            )
            .await?;
        json::sku_from_json(&answer.body)
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        let headers = self.admin()?;
        let body = json::to_bytes(&json::sku_settings_body(&settings)?)?;
        // The same settings put twice make the same SKU.
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Put,
                &["v1", "skus", sku],
                Some(&body[..]),
                headers,
            )
            .await?;
        Ok((json::sku_from_json(&answer.body)?, answer.created))
    }

    async fn put_sku_with_waiting_room(
        &self,
        sku: &str,
        settings: SkuSettings,
        room: crate::api::WaitingRoom,
    ) -> Result<(Sku, bool), ClientError> {
        let headers = self.admin()?;
        let mut body = json::sku_settings_body(&settings)?;
        if let serde_json::Value::Object(members) = &mut body {
            members.insert(
                "waiting_room".into(),
                serde_json::json!({
                    "admit_per_sec": room.admit_per_sec,
                    "admitted_ttl_secs": room.admitted_ttl_secs,
                }),
            );
        }
        let body = json::to_bytes(&body)?;
        // The same settings put twice keep the same room and queue.
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Put,
                &["v1", "skus", sku],
                Some(&body[..]),
                headers,
            )
            .await?;
        Ok((json::sku_from_json(&answer.body)?, answer.created))
    }

    async fn join_queue(
        &self,
        sku: &str,
        customer_id: &str,
    ) -> Result<crate::api::QueueTicket, ClientError> {
        let body = json::to_bytes(&serde_json::json!({ "customer_id": customer_id }))?;
        // Sent twice, a join would take two places: never resent.
        let answer = self
            .inner
            .send(
                Resend::Unsafe,
                Method::Post,
                &["v1", "skus", sku, "queue"],
                Some(&body[..]),
                Headers::default(),
            )
            .await?;
        json::queue_ticket_from_json(&answer.body)
    }

    async fn poll_queue(
        &self,
        sku: &str,
        ticket: &str,
    ) -> Result<crate::api::QueueTicket, ClientError> {
        let answer = self
            .inner
            .send(
                Resend::Safe,
                Method::Get,
                &["v1", "skus", sku, "queue", ticket],
                None,
                Headers::default(),
            )
            .await?;
        json::queue_ticket_from_json(&answer.body)
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        let headers = self.admin()?;
        let body = json::to_bytes(&serde_json::json!({ "quantity": quantity }))?;
        // Sent twice, a restock adds twice.
        let answer = self
            .inner
            .send(
                Resend::Unsafe,
                Method::Post,
                &["v1", "skus", sku, "restock"],
                Some(&body[..]),
                headers,
            )
            .await?;
        json::sku_from_json(&answer.body)
    }

    fn current_node(&self) -> Option<String> {
        Some(self.inner.cluster.current_node())
    }

    fn node_switches(&self) -> Vec<NodeSwitch> {
        self.inner.cluster.node_switches()
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
            plain.inner.path(0, &["v1", "orders", "1-0-1"]),
            "/v1/orders/1-0-1"
        );
        assert_eq!(plain.inner.nodes[0].host, "127.0.0.1:8080");
        let prefixed = client("http://gateway.internal/flashgate/");
        assert_eq!(
            prefixed
                .inner
                .path(0, &["v1", "orders", "a/b?c", "confirm"]),
            "/flashgate/v1/orders/a%2Fb%3Fc/confirm"
        );
        assert_eq!(prefixed.inner.nodes[0].host, "gateway.internal");
    }

    #[test]
    fn configs_that_cannot_work_are_refused() {
        // https:// without a trust, another scheme, not a URL, a query.
        for base_url in [
            "https://example.com",
            "ftp://example.com",
            "not a url",
            "http://h/?q=1",
        ] {
            assert!(
                matches!(
                    HttpClient::new(HttpConfig::new(base_url)),
                    Err(ClientError::Config(_))
                ),
                "{base_url}"
            );
        }
        let mut trusted = HttpConfig::new("https://example.com:8443");
        trusted.trust = Some(Trust::InsecureAcceptAnyCertificate);
        let https = HttpClient::new(trusted).unwrap();
        assert_eq!(https.inner.nodes[0].host, "example.com:8443");
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
    fn a_primary_hint_names_a_configured_node_by_origin_and_prefix() {
        let nodes: Vec<Url> = ["http://127.0.0.1:8080", "http://127.0.0.1:8081/"]
            .iter()
            .map(|text| parse_base_url(text).unwrap())
            .collect();
        assert_eq!(node_named(&nodes, "http://127.0.0.1:8081"), Some(1));
        assert_eq!(node_named(&nodes, "http://127.0.0.1:8080/"), Some(0));
        assert_eq!(node_named(&nodes, "http://127.0.0.1:9999"), None);
        assert_eq!(node_named(&nodes, "not a url"), None);
        let prefixed: Vec<Url> = ["http://gw/a/", "http://gw/b"]
            .iter()
            .map(|text| parse_base_url(text).unwrap())
            .collect();
        assert_eq!(node_named(&prefixed, "http://gw/b/"), Some(1));
        assert_eq!(node_named(&prefixed, "http://gw/c"), None);
    }

    #[test]
    fn several_base_urls_make_one_client_and_one_url_still_works() {
        let config = HttpConfig::with_base_urls(["http://127.0.0.1:8080", "http://127.0.0.1:8081"]);
        assert_eq!(config.base_urls.len(), 2);
        let client = HttpClient::new(config).unwrap();
        assert_eq!(
            client.current_node().as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            HttpConfig::new("http://127.0.0.1:8080").base_urls,
            ["http://127.0.0.1:8080"]
        );
        let mut bad = HttpConfig::new("http://127.0.0.1:8080");
        bad.failover.backoff_first = Duration::ZERO;
        assert!(matches!(HttpClient::new(bad), Err(ClientError::Config(_))));
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
