//! `Cluster`: the async shell around `failover` that both clients send their
//! calls through. It runs a call's attempts, one node at a time, moves the
//! client's route after a failure, pauses between rounds, and decides nothing
//! the pure `failover` types could.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::error::ClientError;
use crate::failover::{
    Attempt, Attempts, FailoverConfig, Failure, Next, NodeSwitch, Resend, Route,
};

/// How one attempt at one node ended.
pub(crate) enum Attempted<T> {
    /// The node answered: with a value, or with a refusal other than
    /// `not_primary` (or the answer could not be read). The call ends here.
    Answered(Result<T, ClientError>),
    /// The attempt failed as `Failure` says; the error is what the call
    /// returns if it stops here.
    Failed(Failure, ClientError),
}

/// The nodes of one cluster, as a client follows them.
#[derive(Debug)]
pub(crate) struct Cluster {
    config: FailoverConfig,
    /// Each node as configured, for reports.
    names: Vec<String>,
    route: Mutex<Route>,
}

impl Cluster {
    /// A cluster of the named nodes (at least one), starting at the first.
    pub(crate) fn new(config: FailoverConfig, names: Vec<String>) -> Cluster {
        let route = Route::new(names.len(), 0);
        Cluster {
            config,
            names,
            route: Mutex::new(route),
        }
    }

    fn route(&self) -> MutexGuard<'_, Route> {
        // Every critical section leaves the route consistent.
        self.route.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Calls start at `node` (the node a first connect reached).
    pub(crate) fn start_at(&self, node: usize) {
        *self.route() = Route::new(self.names.len(), node);
    }

    /// Where the next attempt goes.
    pub(crate) fn next_attempt(&self) -> Attempt {
        self.route().next_attempt()
    }

    /// A new call's failover bookkeeping.
    pub(crate) fn attempts(&self) -> Attempts {
        Attempts::new(self.config, self.names.len())
    }

    /// The attempt's node answered a call.
    pub(crate) fn answered(&self, attempt: Attempt) {
        self.route().answered(attempt, Instant::now());
    }

    /// After an attempt that failed with `error`: moves the route on, then
    /// pauses as the call's failover says. Returns the error the call ends
    /// with when it should give up instead.
    pub(crate) async fn failed(
        &self,
        attempts: &mut Attempts,
        attempt: Attempt,
        failure: Failure,
        error: ClientError,
        resend: Resend,
    ) -> Result<(), ClientError> {
        tracing::debug!(node = %self.names[attempt.node], ?failure, %error, "attempt failed");
        self.route().failed(attempt, failure);
        match attempts.after(failure, error, resend, Instant::now()) {
            Next::GiveUp(error) => Err(error),
            Next::Retry { pause } => {
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                Ok(())
            }
        }
    }

    /// Runs one call: `attempt(node)` at the node the route points to, again
    /// elsewhere while the failover allows. When the call gives up after an
    /// attempt that may have been applied, it returns that attempt's error
    /// (a `Transport` error): a later refusal does not make the outcome known.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        resend: Resend,
        mut attempt: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Attempted<T>>,
    {
        let mut attempts = self.attempts();
        loop {
            let at = self.next_attempt();
            match attempt(at.node).await {
                Attempted::Answered(result) => {
                    self.answered(at);
                    return result;
                }
                Attempted::Failed(failure, error) => {
                    self.failed(&mut attempts, at, failure, error, resend)
                        .await?;
                }
            }
        }
    }

    /// The node that answered the last answered call, as configured.
    pub(crate) fn current_node(&self) -> String {
        let node = self.route().answered_by();
        self.names[node].clone()
    }

    /// The changes of answering node, oldest first.
    pub(crate) fn node_switches(&self) -> Vec<NodeSwitch> {
        self.route()
            .switches()
            .map(|(at, from, to)| NodeSwitch {
                at,
                from: self.names[from].clone(),
                to: self.names[to].clone(),
            })
            .collect()
    }
}
