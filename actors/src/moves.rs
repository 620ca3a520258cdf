//! The node's side of order changes: a change within the order's shard is
//! one command; a change to a SKU of another shard is a move, driven here
//! step by step (`domain::command::move_order`), each step durable before
//! the next. A command about an order that moved is sent on to the shard
//! that holds it (`CoreError::Moved`, answered by the shard it left).
//!
//! `resolve_moves` ends every move a crash (or the loss of a primary) left
//! half done: a node calls it before it takes orders as a primary.

use crate::domain::{
    AbortMove, AdoptOrder, BeginMove, ChangeOrder, Command, CoreError, FinishMove, Order, OrderId,
    Reply,
};
use crate::error::NodeError;
use crate::node::Node;
use crate::shard_actor::RequestKind;
use crate::ticket::Outcome;

impl Node {
    /// Runs the command `make` builds on the shard holding order `id`: its
    /// own, or the one it moved to.
    pub(crate) async fn execute_on_order(
        &self,
        id: OrderId,
        make: impl Fn() -> Command,
    ) -> Result<Reply, NodeError> {
        let shard = self.owner_of(id)?;
        match self.execute(shard, make()).await {
            Err(NodeError::Rejected(CoreError::Moved { to, .. }))
                if to != shard && to < self.shard_count() =>
            {
                self.execute(to, make()).await
            }
            Err(NodeError::Rejected(CoreError::Moved { .. })) => {
                Err(CoreError::UnknownOrder(id).into())
            }
            other => other,
        }
    }

    /// Changes order `id`: its quantity and/or its SKU, all or nothing,
    /// under the change's idempotency key. A SKU of another shard moves the
    /// order there. With `customer` set, only that customer's order (another's
    /// is `UnknownOrder`).
    pub async fn change_order(&self, command: ChangeOrder) -> Result<Order, NodeError> {
        self.cluster().check_writable()?;
        let id = command.id;
        let home = self.owner_of(id)?;
        // Where the order is now: its own shard, or the one it moved to.
        let shard = self.shard_holding(id, home).await?;
        match command.sku.as_ref().map(|sku| self.shard_of(sku)) {
            Some(to) if to != shard => self.move_order(shard, to, command).await,
            _ => match self
                .execute(shard, Command::ChangeOrder(command.clone()))
                .await?
            {
                Reply::Order { order, .. } => Ok(order),
                other => unreachable!("a change answered {other:?}"),
            },
        }
    }

    /// The shard holding order `id` in memory or answering for it: `home`,
    /// or the one it moved to.
    async fn shard_holding(&self, id: OrderId, home: u32) -> Result<u32, NodeError> {
        match self.ask(home, RequestKind::Order(id)).await? {
            Outcome::Moved(to) if to < self.shard_count() => Ok(to),
            _ => Ok(home),
        }
    }

    async fn move_order(
        &self,
        from: u32,
        to: u32,
        command: ChangeOrder,
    ) -> Result<Order, NodeError> {
        let id = command.id;
        let to_sku = command.sku.clone().expect("a move names its SKU");
        let (order, history) = match self
            .execute(
                from,
                Command::BeginMove(BeginMove {
                    id,
                    customer: command.customer.clone(),
                    to_shard: to,
                    to_sku: to_sku.clone(),
                    to_quantity: command.quantity,
                    key: command.key.clone(),
                }),
            )
            .await?
        {
            Reply::Moving { order, history } => (order, history),
            other => unreachable!("a move's start answered {other:?}"),
        };
        let last = history
            .last()
            .expect("the move is the history's last change");
        let adopted = Order {
            sku: last.to_sku.clone(),
            quantity: last.to_quantity,
            ..order
        };
        match self
            .execute(
                to,
                Command::AdoptOrder(AdoptOrder {
                    order: Box::new(adopted),
                    history,
                }),
            )
            .await
        {
            Ok(Reply::Order { order, .. }) => {
                self.execute(from, Command::FinishMove(FinishMove { id }))
                    .await?;
                Ok(order)
            }
            Ok(other) => unreachable!("an adoption answered {other:?}"),
            // Refused, or never decided: the order stays as it was.
            Err(error @ (NodeError::Rejected(_) | NodeError::Overloaded { .. })) => {
                self.execute(from, Command::AbortMove(AbortMove { id }))
                    .await?;
                Err(error)
            }
            // Decided or not, unknown from here (the log failed, the node
            // is stopping, the standby did not answer): ended from the other
            // shard's state, now or by `resolve_moves`.
            Err(error) => {
                let _ = self.resolve_move(id, from, to).await;
                Err(error)
            }
        }
    }

    /// Ends the move of frozen order `id` from shard `from` to `to`:
    /// finished when `to` holds the order, aborted when it does not.
    async fn resolve_move(&self, id: OrderId, from: u32, to: u32) -> Result<(), NodeError> {
        let adopted = matches!(
            self.ask(to, RequestKind::Order(id)).await?,
            Outcome::Order(Some(_))
        );
        let command = if adopted {
            Command::FinishMove(FinishMove { id })
        } else {
            Command::AbortMove(AbortMove { id })
        };
        self.execute(from, command).await?;
        tracing::info!(order = %id, from, to, finished = adopted, "ended an order's move left half done");
        Ok(())
    }

    /// `resolve_moves`, logged: for a task the caller spawns once this node
    /// is a primary (at start, after a promotion); the frozen orders answer
    /// `order_busy` until it ends. A task of its own because its answers,
    /// like any, wait for a sync standby.
    pub async fn resolve_moves_logged(self: std::sync::Arc<Self>) {
        match self.resolve_moves().await {
            Ok(0) => {}
            Ok(ended) => tracing::info!(ended, "ended order moves left half done"),
            Err(error) => tracing::error!(
                %error,
                "cannot end the order moves left half done; they end at the next start or promotion"
            ),
        }
    }

    /// Ends every move left half done (a crash between its steps, or a
    /// primary lost in the middle of one); returns how many it ended.
    pub async fn resolve_moves(&self) -> Result<usize, NodeError> {
        let mut ended = 0;
        for from in 0..self.shard_count() {
            let moves = match self.ask(from, RequestKind::PendingMoves).await? {
                Outcome::PendingMoves(moves) => moves,
                other => unreachable!("pending moves answered {other:?}"),
            };
            for (id, to) in moves {
                if to < self.shard_count() {
                    self.resolve_move(id, from, to).await?;
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }
}
