//! One established QUIC connection: accepts bidirectional streams
//! (QUIC itself holds the client to `streams_per_connection_max` open at once)
//! and gives each a task; all its streams share one in-flight limit and one
//! budget of bytes for queued answers.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use quinn::{Connection, VarInt};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::stream::{serve_stream, AnswerBudget};
use super::{Shared, CLOSE_SHUTTING_DOWN};
use crate::auth::{Caller, Refused};

/// The reason sent with `CLOSE_SHUTTING_DOWN`.
const SHUTTING_DOWN_REASON: &[u8] =
    b"flashgate is shutting down; reconnect to another node or later";

/// Serves one connection until the client closes it or the server shuts down.
/// At shutdown it takes no new streams, lets every stream answer what it took
/// (the streams see the shutdown themselves), then closes the connection.
pub(super) async fn serve_connection(
    connection: Connection,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let remote = connection.remote_address();
    tracing::debug!(%remote, "QUIC connection open");
    let caller = Arc::new(ConnectionCaller::new(&shared, remote.ip()));
    let in_flight = Arc::new(Semaphore::new(shared.limits.in_flight_per_connection_max));
    let budget = AnswerBudget::new(shared.limits.answer_bytes_per_connection_max);
    let mut streams = JoinSet::new();
    // Handed to each stream; `shutdown` itself is borrowed by the select.
    let stream_shutdown = shutdown.clone();
    let shutting_down = loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => break true,
            Some(_) = streams.join_next() => {}
            accepted = connection.accept_bi() => match accepted {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(
                        Arc::clone(&shared),
                        Arc::clone(&caller),
                        Arc::clone(&in_flight),
                        budget.clone(),
                        send,
                        recv,
                        stream_shutdown.clone(),
                    ));
                }
                Err(error) => {
                    tracing::debug!(%remote, %error, "QUIC connection ended");
                    break false;
                }
            },
        }
    };
    while streams.join_next().await.is_some() {}
    if shutting_down {
        connection.close(VarInt::from_u32(CLOSE_SHUTTING_DOWN), SHUTTING_DOWN_REASON);
    }
}

/// Who a connection acts as: anonymous (or development) until an
/// `Authenticate` request names a credential; every stream of the connection
/// reads it for each request.
pub(super) struct ConnectionCaller {
    address: IpAddr,
    unauthenticated: Arc<Caller>,
    current: Mutex<Arc<Caller>>,
    /// The credential is a trusted upstream's (`waiting_room_bypass_tokens_file`):
    /// its orders skip the waiting rooms.
    bypasses_waiting_rooms: AtomicBool,
}

impl ConnectionCaller {
    fn new(shared: &Shared, address: IpAddr) -> ConnectionCaller {
        // Without a credential identification cannot fail.
        let unauthenticated = Arc::new(
            shared
                .gatekeeper
                .identify(address, None, "quic")
                .unwrap_or(Caller::Anonymous),
        );
        ConnectionCaller {
            address,
            current: Mutex::new(Arc::clone(&unauthenticated)),
            unauthenticated,
            bypasses_waiting_rooms: AtomicBool::new(false),
        }
    }

    /// Whether this connection's orders skip the waiting rooms.
    pub(super) fn bypasses_waiting_rooms(&self) -> bool {
        self.bypasses_waiting_rooms.load(Ordering::Relaxed)
    }

    /// The caller now.
    pub(super) fn get(&self) -> Arc<Caller> {
        Arc::clone(
            &self
                .current
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    /// Authenticates with `credential`: the connection acts as its caller
    /// from now on, or, when it is refused, as an unauthenticated one.
    pub(super) fn authenticate(
        &self,
        shared: &Shared,
        credential: &str,
    ) -> Result<Arc<Caller>, Refused> {
        let result = shared
            .gatekeeper
            .identify(self.address, Some(credential), "quic")
            .map(Arc::new);
        let caller = match &result {
            Ok(caller) => Arc::clone(caller),
            Err(_) => Arc::clone(&self.unauthenticated),
        };
        // Only a service or admin credential can be a trusted upstream.
        let upstream = matches!(caller.as_ref(), Caller::Service | Caller::Admin)
            && shared.waiting_rooms.bypasses(credential);
        self.bypasses_waiting_rooms
            .store(upstream, Ordering::Relaxed);
        *self
            .current
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = caller;
        result
    }
}
