//! Who may do what: the callers both front ends know, and the one rule table
//! they share. Pure: `credentials` turns a bearer credential into a `Caller`,
//! `authorize` decides, `throttle` slows guessing; HTTP and QUIC only carry
//! the credential in and the refusal out.
//!
//! The rules, numbered (docs/SECURITY.md has the same table for operators):
//! 1. The admin token may do everything.
//! 2. An operator reads what operators watch (`/metrics`, `/v1/cluster`, every
//!    SKU including sales not yet open, any order) and changes nothing.
//! 3. A service (a trusted upstream such as the shop's back end) places
//!    orders for any customer, reads, changes and cancels any order, reads
//!    every SKU.
//!    It may not confirm: payment is not its word.
//! 4. Payments reads, confirms and cancels any order (payment succeeded or
//!    failed), and nothing else. Fulfilment (the warehouse) reads and ships
//!    any order, and nothing else.
//! 5. A buyer (a signed token whose subject is the customer id) places
//!    orders for itself only (the body's `customer_id` must be its subject),
//!    reads, changes and cancels only its own orders (another's is "unknown order", as
//!    if absent), never confirms, and sees only SKUs whose sale has opened.
//! 6. No credential: the catalogue of opened sales, nothing else; on a node
//!    in development mode (`buyer_auth = development`, no buyer credentials)
//!    also every buyer and payment call, for any customer.
//! 7. A credential that is sent must be valid: a wrong one is refused (401)
//!    even where no credential is needed, and counts as a failure toward the
//!    address's throttle.

pub mod credentials;
pub mod gatekeeper;
pub mod throttle;

use flashgate_actors::domain::{CustomerId, Timestamp};

pub use credentials::{AuthFailure, BuyerAuth, Credentials, CREDENTIAL_BYTES_MAX};
pub use gatekeeper::{Gatekeeper, Refused};
pub use throttle::{FailureThrottle, ThrottleConfig};

/// Who is calling, once its credential (or the lack of one) is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credential sent.
    Anonymous,
    /// No credential sent, on a node whose buyers need none (rule 6).
    Development,
    /// A buyer token's subject (rule 5).
    Buyer(CustomerId),
    /// A service token (rule 3).
    Service,
    /// A payments token (rule 4).
    Payments,
    /// A fulfilment token (rule 4).
    Fulfilment,
    /// An operator token (rule 2).
    Operator,
    /// The admin token (rule 1).
    Admin,
}

impl Caller {
    /// The role's name, for logs, metrics and the QUIC `Authenticated` answer.
    pub fn role(&self) -> &'static str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Development => "development",
            Caller::Buyer(_) => "buyer",
            Caller::Service => "service",
            Caller::Payments => "payments",
            Caller::Fulfilment => "fulfilment",
            Caller::Operator => "operator",
            Caller::Admin => "admin",
        }
    }

    /// Whether SKUs of sales not yet open (and their stock) are shown to this
    /// caller; to others such a SKU is unknown.
    pub fn sees_unopened_skus(&self) -> bool {
        matches!(self, Caller::Service | Caller::Operator | Caller::Admin)
    }

    /// Whether a SKU whose sale starts at `sale_starts_at` is shown to this
    /// caller at `now` (rules 2, 3, 5, 6).
    pub fn sees_sku(&self, sale_starts_at: Option<Timestamp>, now: Timestamp) -> bool {
        self.sees_unopened_skus() || sale_starts_at.is_none_or(|starts| now >= starts)
    }
}

/// What a caller asks to do.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// Place orders (for whom: the `Scope`, checked by `Scope::admits`).
    PlaceOrder,
    ReadOrder,
    CancelOrder,
    ConfirmOrder,
    /// Hand a confirmed order to the carrier.
    ShipOrder,
    /// Change an order's quantity or SKU before it ships.
    ChangeOrder,
    /// Read SKUs (which ones: `Caller::sees_unopened_skus`).
    ReadSkus,
    /// Create, change or restock a SKU.
    WriteSku,
    /// `/metrics`, `/v1/cluster`, `/v1/alerts`, the console's stream and
    /// the sales report.
    ReadOperations,
    /// Promote, hand over.
    MoveRole,
    /// Take a backup (every order of every customer).
    TakeBackup,
}

impl Action {
    /// Whether this is an action of the admin API (what operators and the
    /// admin do), whose refused calls feed the `admin_auth_failures` alert.
    pub fn is_admin_api(&self) -> bool {
        matches!(
            self,
            Action::WriteSku | Action::ReadOperations | Action::MoveRole
        )
    }

    fn describe(&self) -> &'static str {
        match self {
            Action::PlaceOrder => "place orders",
            Action::ReadOrder => "read orders",
            Action::CancelOrder => "cancel orders",
            Action::ConfirmOrder => "confirm orders (payment)",
            Action::ShipOrder => "ship orders (fulfilment)",
            Action::ChangeOrder => "change orders",
            Action::ReadSkus => "read SKUs",
            Action::WriteSku => "change SKUs",
            Action::ReadOperations => "read operations data",
            Action::MoveRole => "promote or hand over",
            Action::TakeBackup => "take backups",
        }
    }
}

/// Whose orders an allowed order action may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every customer's.
    Any,
    /// This customer's only; another's is unknown.
    Customer(CustomerId),
}

impl Scope {
    /// The customer an order action is limited to, if any.
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            Scope::Any => None,
            Scope::Customer(customer) => Some(customer),
        }
    }

    pub fn into_customer(self) -> Option<CustomerId> {
        match self {
            Scope::Any => None,
            Scope::Customer(customer) => Some(customer),
        }
    }

    /// Rule 5: an order for `customer` is within this scope.
    pub fn admits(&self, customer: &CustomerId) -> Result<(), Refusal> {
        match self {
            Scope::Customer(subject) if subject != customer => Err(Refusal::CustomerMismatch {
                token: subject.as_str().to_owned(),
                body: customer.as_str().to_owned(),
            }),
            _ => Ok(()),
        }
    }
}

/// Why a call was refused; each maps to one status and code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 401 `unauthorized`: no credential where one is needed.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403 `forbidden`: the caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 403 `customer_mismatch`: a buyer ordering for someone else.
    #[error("this buyer token is for customer {token}, the order is for {body}: a buyer orders for itself only")]
    CustomerMismatch { token: String, body: String },
}

/// Rules 1–6: whether `caller` may do `action`, and on whose orders.
pub fn authorize(caller: &Caller, action: Action) -> Result<Scope, Refusal> {
    use Action as A;
    use Caller as C;
    let allowed = match (caller, action) {
        (C::Admin, _) => true,
        (_, A::ReadSkus) => true,
        (C::Operator, A::ReadOrder | A::ReadOperations) => true,
        (C::Service, A::PlaceOrder | A::ReadOrder | A::CancelOrder | A::ChangeOrder) => true,
        (C::Payments, A::ReadOrder | A::ConfirmOrder | A::CancelOrder) => true,
        (C::Fulfilment, A::ReadOrder | A::ShipOrder) => true,
        (C::Buyer(subject), A::PlaceOrder | A::ReadOrder | A::CancelOrder | A::ChangeOrder) => {
            return Ok(Scope::Customer(subject.clone()));
        }
        (
            C::Development,
            A::PlaceOrder | A::ReadOrder | A::CancelOrder | A::ConfirmOrder | A::ChangeOrder,
        ) => true,
        _ => false,
    };
    if allowed {
        return Ok(Scope::Any);
    }
    Err(match caller {
        C::Anonymous | C::Development => Refusal::Unauthenticated(format!(
            "a credential is needed to {}: send Authorization: Bearer <token>",
            action.describe()
        )),
        _ => Refusal::Forbidden(format!(
            "a {} credential may not {}",
            caller.role(),
            action.describe()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(name: &str) -> CustomerId {
        CustomerId::parse(name).unwrap()
    }

    /// The whole table, caller by action: `A` any customer, `O` own orders
    /// only, `-` refused. A change to a rule must change this table.
    #[test]
    fn the_rule_table() {
        let alice = customer("alice");
        let callers = [
            Caller::Anonymous,
            Caller::Development,
            Caller::Buyer(alice.clone()),
            Caller::Service,
            Caller::Payments,
            Caller::Fulfilment,
            Caller::Operator,
            Caller::Admin,
        ];
        let actions = [
            Action::PlaceOrder,
            Action::ReadOrder,
            Action::CancelOrder,
            Action::ConfirmOrder,
            Action::ShipOrder,
            Action::ChangeOrder,
            Action::ReadSkus,
            Action::WriteSku,
            Action::ReadOperations,
            Action::MoveRole,
            Action::TakeBackup,
        ];
        // Rows: callers in the order above; columns: actions in the order above.
        let expected = [
            "------A----", // anonymous
            "AAAA-AA----", // development
            "OOO--OA----", // buyer
            "AAA--AA----", // service
            "-AAA--A----", // payments
            "-A--A-A----", // fulfilment
            "-A----A-A--", // operator
            "AAAAAAAAAAA", // admin
        ];
        for (caller, row) in callers.iter().zip(expected) {
            let got: String = actions
                .iter()
                .map(|action| match authorize(caller, *action) {
                    Ok(Scope::Any) => 'A',
                    Ok(Scope::Customer(_)) => 'O',
                    Err(_) => '-',
                })
                .collect();
            assert_eq!(got, row, "{caller:?}");
        }
    }

    #[test]
    fn a_buyer_orders_for_itself_only_and_refusals_say_why() {
        let alice = customer("alice");
        let bob = customer("bob");
        let buyer = Caller::Buyer(alice.clone());
        let scope = authorize(&buyer, Action::PlaceOrder).unwrap();
        assert_eq!(scope, Scope::Customer(alice.clone()));
        assert_eq!(scope.admits(&alice), Ok(()));
        let mismatch = scope.admits(&bob).unwrap_err();
        assert_eq!(Scope::Any.admits(&bob), Ok(()));
        assert!(matches!(mismatch, Refusal::CustomerMismatch { .. }));
        assert!(mismatch.to_string().contains("for customer alice"));
        let forbidden = authorize(&buyer, Action::ConfirmOrder).unwrap_err();
        assert_eq!(
            forbidden,
            Refusal::Forbidden("a buyer credential may not confirm orders (payment)".into())
        );
        let anonymous = authorize(&Caller::Anonymous, Action::CancelOrder).unwrap_err();
        assert!(matches!(anonymous, Refusal::Unauthenticated(_)));
        assert!(anonymous.to_string().contains("Authorization: Bearer"));
    }

    #[test]
    fn a_sale_not_yet_open_is_hidden_from_the_public_until_it_opens() {
        let opens = Some(Timestamp(10_000));
        let buyer = Caller::Buyer(customer("alice"));
        assert!(!buyer.sees_sku(opens, Timestamp(9_999)));
        assert!(buyer.sees_sku(opens, Timestamp(10_000)));
        assert!(buyer.sees_sku(None, Timestamp(0)));
        assert!(Caller::Operator.sees_sku(opens, Timestamp(0)));
    }

    #[test]
    fn unopened_skus_are_for_trusted_callers() {
        let seen: Vec<&str> = [
            Caller::Anonymous,
            Caller::Development,
            Caller::Buyer(customer("alice")),
            Caller::Service,
            Caller::Payments,
            Caller::Fulfilment,
            Caller::Operator,
            Caller::Admin,
        ]
        .iter()
        .filter(|caller| caller.sees_unopened_skus())
        .map(Caller::role)
        .collect();
        assert_eq!(seen, ["service", "operator", "admin"]);
    }
}
