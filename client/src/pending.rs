//! `Pending`: the requests waiting for an answer on one QUIC stream, matched to
//! answers by request id. Answers arrive in any order; this is where they find
//! their caller. Pure bookkeeping, no I/O: the stream's reader task feeds it.

use std::collections::HashMap;

use flashgate_protocol::Response;

use crate::error::ClientError;

/// Waiters by request id. A batch waits under its first order's request id.
///
/// A stream stops accepting new waiters when the server refuses one of its
/// frames (`Response::FrameError`) or stops reading it. The server still
/// answers every request it read before, then ends the stream; so the waiters
/// left at the end are those it never read, and they fail with the refusal.
#[derive(Debug)]
pub struct Pending<W> {
    accepting: bool,
    /// The server's refusal of a frame, for the waiters it never answers.
    refusal: Option<ClientError>,
    waiters: HashMap<u64, W>,
}

/// Where an answer goes.
#[derive(Debug)]
pub enum Routed<W> {
    /// To the request waiting for it.
    Deliver(W, Response),
    /// Nowhere: nobody waits under its id any more (the request timed out or
    /// its caller gave up), or a batch answer names no waiting request.
    Unmatched(Response),
    /// The server refused a frame and reads no more of the stream: it takes no
    /// new waiters, and the ones still waiting when it ends get the refusal.
    Refused,
}

impl<W> Default for Pending<W> {
    fn default() -> Self {
        Pending {
            accepting: true,
            refusal: None,
            waiters: HashMap::new(),
        }
    }
}

impl<W> Pending<W> {
    /// Adds a waiter; gives it back if the stream takes no new requests or the
    /// id is taken (ids come from one counter, so that is a bug).
    pub fn register(&mut self, request_id: u64, waiter: W) -> Result<(), W> {
        if !self.accepting || self.waiters.contains_key(&request_id) {
            return Err(waiter);
        }
        self.waiters.insert(request_id, waiter);
        Ok(())
    }

    /// Takes a waiter out, e.g. when its caller stops waiting.
    pub fn remove(&mut self, request_id: u64) -> Option<W> {
        self.waiters.remove(&request_id)
    }

    /// Matches an answer to its waiter (removing the waiter).
    pub fn route(&mut self, response: Response) -> Routed<W> {
        let waiter = match &response {
            Response::FrameError { code, detail } => {
                self.accepting = false;
                self.refusal = Some(ClientError::Server {
                    code: code.clone(),
                    detail: format!(
                        "{detail} (the server refused a frame on this stream and read no \
                         further: this request was not applied)"
                    ),
                });
                return Routed::Refused;
            }
            Response::Batch { results } => results
                .iter()
                .filter_map(Response::request_id)
                .find_map(|request_id| self.waiters.remove(&request_id)),
            Response::Order { request_id, .. }
            | Response::Sku { request_id, .. }
            | Response::Error { request_id, .. }
            | Response::Authenticated { request_id, .. }
            | Response::Orders { request_id, .. } => self.waiters.remove(request_id),
        };
        match waiter {
            Some(waiter) => Routed::Deliver(waiter, response),
            None => Routed::Unmatched(response),
        }
    }

    /// Takes no new waiters; those waiting still get their answers.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    /// The stream ended cleanly: hands back every waiter still waiting, with
    /// the error to fail it with: the server's refusal if there was one (it
    /// never read these requests), else `otherwise`.
    pub fn finish(&mut self, otherwise: ClientError) -> (Vec<W>, ClientError) {
        let error = self.refusal.take().unwrap_or(otherwise);
        (self.close(), error)
    }

    /// Closes for good and hands back every waiter, to be failed.
    pub fn close(&mut self) -> Vec<W> {
        self.accepting = false;
        self.waiters.drain().map(|(_, waiter)| waiter).collect()
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_protocol::{code, Sku};

    fn sku_answer(request_id: u64) -> Response {
        Response::Sku {
            request_id,
            created: false,
            sku: Sku {
                sku: "A".into(),
                total: 1,
                available: 1,
                reserved: 0,
                sold: 0,
                per_customer_limit: None,
                max_quantity_per_order: 10,
                sale_starts_at_ms: None,
                reservation_ttl_secs: 600,
                low_stock_threshold: 0,
                low_stock: false,
            },
        }
    }

    fn error_answer(request_id: u64) -> Response {
        Response::Error {
            request_id,
            code: code::SOLD_OUT.into(),
            detail: "gone".into(),
        }
    }

    #[test]
    fn answers_find_their_waiters_in_any_order() {
        let mut pending = Pending::default();
        for id in 1..=3 {
            pending.register(id, format!("caller {id}")).unwrap();
        }
        for id in [3, 1, 2] {
            match pending.route(sku_answer(id)) {
                Routed::Deliver(waiter, answer) => {
                    assert_eq!(waiter, format!("caller {id}"));
                    assert_eq!(answer.request_id(), Some(id));
                }
                other => panic!("answer {id}: {other:?}"),
            }
        }
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn late_and_unknown_answers_go_nowhere() {
        let mut pending = Pending::default();
        pending.register(7, "caller").unwrap();
        assert_eq!(pending.remove(7), Some("caller"));
        assert!(matches!(
            pending.route(error_answer(7)),
            Routed::Unmatched(_)
        ));
        assert!(matches!(
            pending.route(sku_answer(99)),
            Routed::Unmatched(_)
        ));
        assert!(matches!(
            pending.route(Response::Batch { results: vec![] }),
            Routed::Unmatched(_)
        ));
    }

    #[test]
    fn a_batch_answer_finds_the_batch_by_its_orders_ids() {
        let mut pending = Pending::default();
        pending.register(10, "batch").unwrap();
        pending.register(13, "single").unwrap();
        let batch = Response::Batch {
            results: vec![error_answer(10), error_answer(11), error_answer(12)],
        };
        assert!(matches!(pending.route(batch), Routed::Deliver("batch", _)));
        assert!(matches!(
            pending.route(sku_answer(13)),
            Routed::Deliver("single", _)
        ));
    }

    #[test]
    fn after_a_frame_error_earlier_requests_are_answered_and_the_rest_refused() {
        let mut pending = Pending::default();
        pending.register(1, "read before").unwrap();
        pending.register(2, "refused").unwrap();
        let refused = pending.route(Response::FrameError {
            code: code::FRAME_TOO_LARGE.into(),
            detail: "frame of 9000000 bytes".into(),
        });
        assert!(matches!(refused, Routed::Refused), "{refused:?}");
        assert!(!pending.is_accepting());
        assert_eq!(pending.register(3, "too late"), Err("too late"));
        assert!(matches!(
            pending.route(error_answer(1)),
            Routed::Deliver("read before", _)
        ));
        let (left, error) = pending.finish(ClientError::Protocol("not this one".into()));
        assert_eq!(left, vec!["refused"]);
        assert_eq!(error.code(), Some(code::FRAME_TOO_LARGE));
    }

    #[test]
    fn a_stream_that_ends_without_a_refusal_fails_the_rest_as_given() {
        let mut pending = Pending::default();
        pending.register(1, "a").unwrap();
        pending.stop_accepting();
        assert_eq!(pending.register(2, "b"), Err("b"));
        let (left, error) = pending.finish(ClientError::Protocol("ended".into()));
        assert_eq!(left, vec!["a"]);
        assert_eq!(error, ClientError::Protocol("ended".into()));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_taken_id_is_refused() {
        let mut pending = Pending::default();
        pending.register(1, "a").unwrap();
        assert_eq!(pending.register(1, "b"), Err("b"));
    }
}
