//! The waiting room: an optional, per-SKU queue in front of a flash sale.
//! Buyers join (`POST /v1/skus/{sku}/queue`) and get a signed join ticket;
//! they poll it and, once admitted at the room's rate while units remain,
//! get a signed admission ticket, which orders the SKU once before it
//! expires. Early joiners are drawn into a random order at the sale's
//! opening, so refreshing early does not win.
//!
//! # Layout
//! - `queue`: `Queue`, one SKU's queue as pure state (joins, the draw,
//!   positions, the admission frontier, expiries; `now` passed in).
//! - `ticket`: `TicketKey`, `Claims`: signing and verifying tickets (HMAC-SHA256).
//! - `spent`: `SpentTickets`, the bounded set of used admissions.
//! - this file: `WaitingRooms`, the shell the front ends call: the rooms by
//!   SKU (each behind its own mutex), following the settings the node
//!   publishes (`Directory`), the clock.
//!
//! # What survives a restart or a failover
//! Kept: each room's settings, which are replicated state (the shard's
//! `Event::WaitingRoomSet`, in the log and checkpoints): a restart, a
//! standby, a promoted standby and a restored backup hold them. Admission
//! tickets are kept until their expiry when the nodes share
//! `waiting_room_secret_file` (the check is by signature alone).
//! Not kept: the queues themselves (the primary's memory). A join ticket from before a restart is
//! refused as `queue_ticket_expired` and its holder must join again (in
//! arrival order, the opening's draw having passed); the set of used
//! admissions starts empty, so an admission used just before a failover
//! could order once more on the new primary before it expires (the SKU's
//! `per_customer_limit` still holds).

pub mod queue;
pub mod spent;
pub mod ticket;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use flashgate_protocol::code;
use serde::{Deserialize, Serialize};

use self::queue::{Queue, RoomSettings};
use self::spent::{SpendError, SpentTickets};
use self::ticket::{Claims, Kind, TicketKey};

/// The header an order for a SKU behind a waiting room carries its
/// admission ticket in.
pub const TICKET_HEADER: &str = "Flashgate-Queue-Ticket";
/// The file in the data dir that keeps the rooms' settings.
pub const SETTINGS_FILE: &str = "waiting-rooms.json";
/// The shortest waiting-room secret.
pub const SECRET_BYTES_MIN: usize = 32;
/// The highest `admit_per_sec` a room may set (the domain's rule).
pub const ADMIT_PER_SEC_LIMIT: u32 = flashgate_actors::domain::ADMIT_PER_SEC_LIMIT;
/// The longest `admitted_ttl_secs` a room may set (a day).
pub const ADMITTED_TTL_SECS_LIMIT: u32 = flashgate_actors::domain::ADMITTED_TTL_SECS_LIMIT;

use flashgate_protocol::code::{
    NOT_ADMITTED_YET, NO_WAITING_ROOM, QUEUE_FULL, QUEUE_TICKET_EXPIRED, QUEUE_TICKET_INVALID,
    QUEUE_TICKET_REQUIRED, QUEUE_TICKET_USED,
};

/// A room's settings as an administrator puts them on a SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WaitingRoomSettings {
    /// Buyers admitted per second while units remain (also the burst at
    /// opening), 1 to 100,000.
    #[schema(minimum = 1, maximum = 100_000)]
    pub admit_per_sec: u32,
    /// How long an admission may be used to order, 1 to 86,400 s; unused,
    /// its slot goes to the next in line.
    #[schema(minimum = 1, maximum = 86_400)]
    pub admitted_ttl_secs: u32,
    /// Most buyers in the queue, 1 to the node's
    /// `waiting_room_queue_length_max` (its default when absent).
    #[schema(minimum = 1)]
    #[serde(default)]
    pub queue_length_max: u32,
}

/// The node's waiting-room limits and keys (`Config::waiting_rooms`).
#[derive(Clone, Debug)]
pub struct WaitingRoomConfig {
    /// Signs tickets; `None`: a random key for this process only.
    pub secret: Option<Vec<u8>>,
    /// Digests (SHA-256) of the QUIC credentials that bypass the rooms.
    pub bypass_token_digests: Vec<[u8; 32]>,
    pub queue_length_max: u32,
    pub spent_tickets_max: usize,
    pub poll_after_min_ms: u64,
    pub poll_after_max_ms: u64,
    /// Where an older version kept the settings (`waiting-rooms.json`),
    /// read once at start to move them into the log (`None`: none).
    pub settings_path: Option<PathBuf>,
}

impl From<WaitingRoomSettings> for flashgate_actors::domain::WaitingRoom {
    fn from(settings: WaitingRoomSettings) -> Self {
        flashgate_actors::domain::WaitingRoom {
            admit_per_sec: settings.admit_per_sec,
            admitted_ttl_secs: settings.admitted_ttl_secs,
            queue_length_max: settings.queue_length_max,
        }
    }
}

impl From<flashgate_actors::domain::WaitingRoom> for WaitingRoomSettings {
    fn from(room: flashgate_actors::domain::WaitingRoom) -> Self {
        WaitingRoomSettings {
            admit_per_sec: room.admit_per_sec,
            admitted_ttl_secs: room.admitted_ttl_secs,
            queue_length_max: room.queue_length_max,
        }
    }
}

/// The directory of a node: each SKU's room as its shard publishes it
/// from the replicated state.
pub fn node_directory(node: std::sync::Arc<flashgate_actors::Node>) -> Directory {
    Box::new(move |sku| {
        let id = flashgate_actors::domain::SkuId::parse(sku).ok()?;
        let (room, opens_at) = node.waiting_room(&id)?;
        Some((room.into(), opens_at.map_or(0, |at| at.0)))
    })
}

/// A waiting room's refusal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("SKU {0} is behind a waiting room: join its queue (POST /v1/skus/{0}/queue), poll your ticket until admitted, then order over HTTP with the admission ticket in the Flashgate-Queue-Ticket header (over QUIC only a trusted upstream's credential orders it)")]
    TicketRequired(String),
    #[error("the queue ticket is not valid here: {0}")]
    TicketInvalid(String),
    #[error("this is a join ticket and its holder is not admitted yet: poll it (GET /v1/skus/{0}/queue/TICKET) and order with the admission ticket it gives once admitted")]
    NotAdmittedYet(String),
    #[error("the queue ticket has expired: {0}")]
    TicketExpired(String),
    #[error("this admission has already been used to order; each orders once")]
    TicketUsed,
    #[error("the waiting room of SKU {sku} holds its maximum of {max} buyers; try again later")]
    QueueFull { sku: String, max: u32 },
    #[error("too many admissions are in use at once on this node (waiting_room_spent_tickets_max); retry shortly")]
    SpentFull,
    #[error("SKU {0} has no waiting room: order it directly")]
    NoWaitingRoom(String),
    #[error("the waiting room's settings were not saved: {0}; put them again")]
    NotSaved(String),
}

impl Refusal {
    /// The code both front ends answer.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TicketRequired(_) => QUEUE_TICKET_REQUIRED,
            Refusal::TicketInvalid(_) => QUEUE_TICKET_INVALID,
            Refusal::NotAdmittedYet(_) => NOT_ADMITTED_YET,
            Refusal::TicketExpired(_) => QUEUE_TICKET_EXPIRED,
            Refusal::TicketUsed => QUEUE_TICKET_USED,
            Refusal::QueueFull { .. } => QUEUE_FULL,
            Refusal::SpentFull => code::OVERLOADED,
            Refusal::NoWaitingRoom(_) => NO_WAITING_ROOM,
            Refusal::NotSaved(_) => code::STORAGE_FAILED,
        }
    }

    /// One of each, for the exhaustive code checks.
    pub fn one_of_each() -> Vec<Refusal> {
        vec![
            Refusal::TicketRequired(String::new()),
            Refusal::TicketInvalid(String::new()),
            Refusal::NotAdmittedYet(String::new()),
            Refusal::TicketExpired(String::new()),
            Refusal::TicketUsed,
            Refusal::QueueFull {
                sku: String::new(),
                max: 1,
            },
            Refusal::SpentFull,
            Refusal::NoWaitingRoom(String::new()),
            Refusal::NotSaved(String::new()),
        ]
    }
}

/// Where a ticket stands, as a join or a poll answers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub sku: String,
    /// The join ticket (what to poll with).
    pub ticket: String,
    pub status: Status,
    /// 0-based place in line; `None` before the draw at opening.
    pub position: Option<u32>,
    /// Buyers not yet admitted in front.
    pub ahead: u32,
    pub queue_length: u32,
    pub estimated_wait_secs: u64,
    /// Whether the SKU has units left (as its shard last published).
    pub units_remain: bool,
    /// When the sale opens (ms), if it has not yet.
    pub opens_at_ms: Option<u64>,
    /// Poll again no sooner than this.
    pub poll_after_ms: u64,
    /// Once admitted: the admission ticket and when it expires.
    pub admission: Option<(String, u64)>,
}

/// A ticket's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// In line (or before the opening).
    Waiting,
    /// Admitted: order with the admission ticket before it expires.
    Admitted,
    /// Admitted, not used in time: the slot went to the next in line.
    Expired,
    /// Admitted and used to order.
    Used,
    /// Not admitted and the SKU has no units left.
    SoldOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Waiting => "waiting",
            Status::Admitted => "admitted",
            Status::Expired => "expired",
            Status::Used => "used",
            Status::SoldOut => "sold_out",
        }
    }
}

/// One SKU's room: its settings, its instance id and its queue.
struct Room {
    id: u64,
    settings: WaitingRoomSettings,
    queue: Queue,
    /// Each customer's place: its queue number and when it joined. One
    /// place per customer, so joining many times does not buy more draws.
    /// At most `queue_length_max` entries, like the queue.
    places: HashMap<String, (u32, u64)>,
}

/// The settings file's contents: each room by SKU, with the sale's opening.
#[derive(Default, Serialize, Deserialize)]
struct SavedRooms {
    rooms: HashMap<String, SavedRoom>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct SavedRoom {
    #[serde(flatten)]
    settings: WaitingRoomSettings,
    opens_at_ms: u64,
}

/// Every SKU's waiting room on this node.
pub struct WaitingRooms {
    config: WaitingRoomConfig,
    key: TicketKey,
    /// Whether any room exists: orders for SKUs without one skip the lookup.
    any: AtomicBool,
    rooms: RwLock<HashMap<String, Arc<Mutex<Room>>>>,
    spent: Mutex<SpentTickets>,
    /// Serialises changes to the set of rooms.
    saving: Mutex<()>,
    /// Where each SKU's room settings come from: the node's replicated state
    /// (`Node::waiting_room`). `None`: only `put` sets them (unit tests).
    directory: Option<Directory>,
    /// Rooms of the settings file of an older version, to move into the log
    /// once (`take_saved`).
    saved: Mutex<Vec<(String, WaitingRoomSettings)>>,
}

/// A SKU's published room settings and its sale's opening (ms, 0: open).
pub type Directory = Box<dyn Fn(&str) -> Option<(WaitingRoomSettings, u64)> + Send + Sync>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // The OS generator: a failure here leaves no safe fallback.
    getrandom::getrandom(&mut bytes).expect("the OS random number generator");
    u64::from_le_bytes(bytes)
}

impl WaitingRooms {
    /// No rooms yet; those of an older version's `config.settings_path` (if
    /// any) are kept for `take_saved`.
    pub fn open(config: WaitingRoomConfig) -> Result<WaitingRooms, String> {
        let key = match &config.secret {
            Some(secret) => TicketKey::new(secret),
            None => {
                let mut secret = [0u8; 32];
                getrandom::getrandom(&mut secret)
                    .map_err(|error| format!("no random key for the waiting room: {error}"))?;
                TicketKey::new(&secret)
            }
        };
        let saved = match &config.settings_path {
            Some(path) => load(path)?,
            None => SavedRooms::default(),
        };
        let mut legacy = Vec::new();
        for (sku, room) in saved.rooms {
            let settings = room.settings;
            if settings.admit_per_sec == 0
                || settings.admitted_ttl_secs == 0
                || settings.queue_length_max == 0
            {
                return Err(format!(
                    "{}: the room of SKU {sku:?} has a setting at 0; fix or remove the file, then put the room again",
                    config
                        .settings_path
                        .as_deref()
                        .map_or_else(|| SETTINGS_FILE.into(), |path| path.display().to_string())
                ));
            }
            legacy.push((sku, settings));
        }
        let rooms = WaitingRooms {
            spent: Mutex::new(SpentTickets::new(config.spent_tickets_max)),
            config,
            key,
            any: AtomicBool::new(false),
            rooms: RwLock::new(HashMap::new()),
            saving: Mutex::new(()),
            directory: None,
            saved: Mutex::new(legacy),
        };
        Ok(rooms)
    }

    /// Takes the room settings from the data dir's `waiting-rooms.json` of
    /// an older version (once): the caller moves them into the log.
    pub fn take_saved(&self) -> Vec<(String, WaitingRoomSettings)> {
        std::mem::take(&mut *lock(&self.saved))
    }

    /// Reads each SKU's room settings from `directory` from now on: a room
    /// follows its settings there (created, changed or removed) at the next
    /// call that names its SKU.
    pub fn with_directory(mut self, directory: Directory) -> WaitingRooms {
        self.directory = Some(directory);
        self
    }

    /// Whether `credential` (a QUIC connection's) bypasses the rooms.
    pub fn bypasses(&self, credential: &str) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, credential.as_bytes());
        self.config
            .bypass_token_digests
            .iter()
            .any(|known| known.as_slice() == digest.as_ref())
    }

    /// The node's default (and highest) queue length.
    pub fn queue_length_max(&self) -> u32 {
        self.config.queue_length_max
    }

    /// `sku`'s room settings, if it has a room.
    pub fn settings(&self, sku: &str) -> Option<WaitingRoomSettings> {
        if self.directory.is_none() && !self.any.load(Ordering::Acquire) {
            return None;
        }
        let room = self.room(sku)?;
        let settings = lock(&room).settings;
        Some(settings)
    }

    /// `sku`'s room, first brought in line with the directory's settings
    /// (when there is one): a cheap comparison when they are unchanged.
    fn room(&self, sku: &str) -> Option<Arc<Mutex<Room>>> {
        let Some(directory) = &self.directory else {
            return self.local(sku);
        };
        let published = directory(sku).map(|(settings, opens_at_ms)| {
            let queue_length_max = settings.queue_length_max.min(self.config.queue_length_max);
            (
                WaitingRoomSettings {
                    queue_length_max,
                    ..settings
                },
                opens_at_ms,
            )
        });
        let local = self.local(sku);
        match (published, &local) {
            (None, None) => return None,
            (Some((settings, opens_at_ms)), Some(room)) => {
                let room = lock(room);
                if room.settings == settings && room.queue.opens_at_ms() == opens_at_ms {
                    drop(room);
                    return local;
                }
            }
            _ => {}
        }
        self.put(
            sku,
            published.map(|(settings, _)| settings),
            published.map_or(0, |(_, opens_at_ms)| opens_at_ms),
        );
        self.local(sku)
    }

    fn local(&self, sku: &str) -> Option<Arc<Mutex<Room>>> {
        self.rooms
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sku)
            .cloned()
    }

    /// Puts `settings` on `sku` (`None` removes its room), for a sale opening
    /// at `opens_at_ms` (0: open), in this node's memory. Unchanged settings
    /// keep the queue; a changed rate, expiry or length applies to the queue
    /// as it is; a changed opening starts a new queue. With a directory, the
    /// rooms follow it and this is how they do.
    pub fn put(&self, sku: &str, settings: Option<WaitingRoomSettings>, opens_at_ms: u64) {
        let _saving = lock(&self.saving);
        let existing = self.local(sku);
        match (settings, existing) {
            (None, None) => return,
            (None, Some(_)) => {
                self.rooms
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(sku);
            }
            (Some(settings), Some(room)) => {
                let mut room = lock(&room);
                if room.queue.opens_at_ms() == opens_at_ms {
                    if room.settings == settings {
                        return;
                    }
                    room.settings = settings;
                    room.queue.update(room_settings(settings));
                } else {
                    drop(room);
                    self.install(sku.to_owned(), settings, opens_at_ms);
                }
            }
            (Some(settings), None) => self.install(sku.to_owned(), settings, opens_at_ms),
        }
        let rooms = self.rooms.read().unwrap_or_else(PoisonError::into_inner);
        self.any.store(!rooms.is_empty(), Ordering::Release);
    }

    fn install(&self, sku: String, settings: WaitingRoomSettings, opens_at_ms: u64) {
        let room = Room {
            id: random_u64(),
            settings,
            queue: Queue::new(room_settings(settings), opens_at_ms, random_u64()),
            places: HashMap::new(),
        };
        self.rooms
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sku, Arc::new(Mutex::new(room)));
        self.any.store(true, Ordering::Release);
    }

    /// Joins `customer` to `sku`'s queue: the join ticket and where it
    /// stands. A customer holds one place: joining again while waiting or
    /// admitted answers the same ticket (so a retried join is harmless); once
    /// its admission was used or expired, a new join goes to the back.
    pub fn join(
        &self,
        sku: &str,
        customer: &str,
        now_ms: u64,
        units_remain: bool,
    ) -> Result<Answer, Refusal> {
        let room = self
            .room(sku)
            .ok_or_else(|| Refusal::NoWaitingRoom(sku.to_owned()))?;
        let mut room = lock(&room);
        let claims = |room: &Room, number: u32, issued_at_ms: u64| Claims {
            kind: Kind::Join,
            room: room.id,
            sku: sku.to_owned(),
            customer: customer.to_owned(),
            number,
            issued_at_ms,
            expires_at_ms: None,
        };
        if let Some(&(number, issued_at_ms)) = room.places.get(customer) {
            let held = claims(&room, number, issued_at_ms);
            let ticket = self.key.sign(&held);
            let answer = self.answer(&mut room, &held, ticket, now_ms, units_remain)?;
            if !matches!(answer.status, Status::Used | Status::Expired) {
                return Ok(answer);
            }
        }
        let number = room
            .queue
            .join(now_ms, units_remain)
            .map_err(|full| Refusal::QueueFull {
                sku: sku.to_owned(),
                max: full.queue_length_max,
            })?;
        room.places.insert(customer.to_owned(), (number, now_ms));
        metrics::counter!("flashgate_waiting_room_joins_total").increment(1);
        let joined = claims(&room, number, now_ms);
        let ticket = self.key.sign(&joined);
        self.answer(&mut room, &joined, ticket, now_ms, units_remain)
    }

    /// Where a join ticket stands. `customer_may` says whether the caller may
    /// act for the ticket's customer (checked after the signature).
    pub fn poll(
        &self,
        sku: &str,
        ticket: &str,
        customer_may: impl FnOnce(&str) -> bool,
        now_ms: u64,
        units_remain: bool,
    ) -> Result<Answer, Refusal> {
        let room = self
            .room(sku)
            .ok_or_else(|| Refusal::NoWaitingRoom(sku.to_owned()))?;
        let claims = self.read(ticket, sku)?;
        if claims.kind != Kind::Join {
            return Err(Refusal::TicketInvalid(
                "this is an admission ticket: poll with the join ticket".into(),
            ));
        }
        if !customer_may(&claims.customer) {
            return Err(Refusal::TicketInvalid(
                "the ticket was issued to another customer".into(),
            ));
        }
        let mut room = lock(&room);
        if claims.room != room.id {
            return Err(restarted());
        }
        self.answer(&mut room, &claims, ticket.to_owned(), now_ms, units_remain)
    }

    /// Checks an order of `sku` for `customer`: passes for a SKU without a
    /// room, and otherwise needs an admission ticket this node signed for
    /// that customer and SKU, not expired, not used by another order (a
    /// retry under the same idempotency key passes). Marks it used. Counted
    /// in `flashgate_waiting_room_orders_total{outcome}` (`admitted` or the
    /// refusal's code).
    pub fn check_order(
        &self,
        sku: &str,
        customer: &str,
        ticket: Option<&str>,
        idempotency_key: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        if self.directory.is_none() && !self.any.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(room) = self.room(sku) else {
            return Ok(());
        };
        let checked = self.check_admission(&room, sku, customer, ticket, idempotency_key, now_ms);
        let outcome = match &checked {
            Ok(()) => "admitted",
            Err(refusal) => refusal.code(),
        };
        metrics::counter!("flashgate_waiting_room_orders_total", "outcome" => outcome).increment(1);
        checked
    }

    fn check_admission(
        &self,
        room: &Mutex<Room>,
        sku: &str,
        customer: &str,
        ticket: Option<&str>,
        idempotency_key: Option<&str>,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let ticket = ticket.ok_or_else(|| Refusal::TicketRequired(sku.to_owned()))?;
        let claims = self.read(ticket, sku)?;
        if claims.customer != customer {
            return Err(Refusal::TicketInvalid(
                "the ticket was issued to another customer".into(),
            ));
        }
        let expires_at_ms = match (claims.kind, claims.expires_at_ms) {
            (Kind::Admitted, Some(expires_at_ms)) => expires_at_ms,
            _ => return Err(Refusal::NotAdmittedYet(sku.to_owned())),
        };
        if now_ms >= expires_at_ms {
            return Err(Refusal::TicketExpired(
                "the admission was not used in time and its slot went to the next in line; join again".into(),
            ));
        }
        lock(&self.spent)
            .spend(
                (claims.room, claims.number),
                expires_at_ms,
                idempotency_key,
                now_ms,
            )
            .map_err(|error| match error {
                SpendError::Used => Refusal::TicketUsed,
                SpendError::Full => Refusal::SpentFull,
            })?;
        let mut room = lock(room);
        if claims.room == room.id {
            room.queue.mark_used(claims.number);
        }
        Ok(())
    }

    /// A ticket's claims, if this key signed it for `sku`.
    fn read(&self, ticket: &str, sku: &str) -> Result<Claims, Refusal> {
        let claims = self
            .key
            .verify(ticket)
            .map_err(|error| Refusal::TicketInvalid(error.to_string()))?;
        if claims.sku != sku {
            return Err(Refusal::TicketInvalid(format!(
                "the ticket was issued for SKU {:?}, not {sku:?}",
                claims.sku
            )));
        }
        Ok(claims)
    }

    fn answer(
        &self,
        room: &mut Room,
        claims: &Claims,
        ticket: String,
        now_ms: u64,
        units_remain: bool,
    ) -> Result<Answer, Refusal> {
        // Every number this room signed is in its queue; one that is not is
        // answered as a ticket of another instance of the room.
        let standing = room
            .queue
            .standing(claims.number, now_ms, units_remain)
            .ok_or_else(restarted)?;
        let ttl_ms = u64::from(room.settings.admitted_ttl_secs) * 1000;
        let admitted_until = standing.admitted_at_ms.map(|at| at + ttl_ms);
        let status = match admitted_until {
            Some(_) if standing.used => Status::Used,
            Some(until) if now_ms >= until => Status::Expired,
            Some(_) => Status::Admitted,
            None if !units_remain => Status::SoldOut,
            None => Status::Waiting,
        };
        let admission = match (status, admitted_until) {
            (Status::Admitted, Some(until)) => {
                let admission = Claims {
                    kind: Kind::Admitted,
                    issued_at_ms: standing.admitted_at_ms.unwrap_or(now_ms),
                    expires_at_ms: Some(until),
                    ..claims.clone()
                };
                Some((self.key.sign(&admission), until))
            }
            _ => None,
        };
        let rate = u64::from(room.settings.admit_per_sec);
        let opens_at_ms = (!room.queue.is_open()).then(|| room.queue.opens_at_ms());
        let until_open_ms = opens_at_ms.map_or(0, |at| at.saturating_sub(now_ms));
        let in_line_ms = u64::from(standing.ahead) * 1000 / rate;
        let estimated_wait_ms = match status {
            Status::Waiting if opens_at_ms.is_some() => until_open_ms,
            Status::Waiting => in_line_ms,
            _ => 0,
        };
        // Half the expected wait, within the bounds: those far back poll
        // rarely, those near the front often enough not to waste their slot.
        let hint_ms = match status {
            Status::Waiting => estimated_wait_ms / 2,
            _ => self.config.poll_after_max_ms,
        };
        Ok(Answer {
            sku: claims.sku.clone(),
            ticket,
            status,
            position: standing.position,
            ahead: standing.ahead,
            queue_length: room.queue.len(),
            estimated_wait_secs: estimated_wait_ms.div_ceil(1000),
            units_remain,
            opens_at_ms,
            poll_after_ms: hint_ms
                .clamp(self.config.poll_after_min_ms, self.config.poll_after_max_ms),
            admission,
        })
    }
}

fn restarted() -> Refusal {
    Refusal::TicketExpired(
        "the ticket is from before this waiting room restarted or was reset: join again".into(),
    )
}

fn room_settings(settings: WaitingRoomSettings) -> RoomSettings {
    RoomSettings {
        admit_per_sec: settings.admit_per_sec,
        admitted_ttl_secs: settings.admitted_ttl_secs,
        queue_length_max: settings.queue_length_max,
    }
}

/// The settings file's rooms; none when it does not exist.
fn load(path: &Path) -> Result<SavedRooms, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
            format!(
                "{}: not a waiting-room settings file ({error}); fix or remove it",
                path.display()
            )
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(SavedRooms::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// The settings a PUT's `waiting_room` member gives: `None` for absent or
/// null; each member checked, with the rule in the error.
pub fn parse_settings(
    value: Option<serde_json::Value>,
    queue_length_max_limit: u32,
) -> Result<Option<WaitingRoomSettings>, flashgate_actors::domain::InvalidField> {
    use flashgate_actors::domain::InvalidField;
    let Some(value) = value.filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    let serde_json::Value::Object(mut members) = value else {
        return Err(InvalidField::new(
            "waiting_room",
            "must be an object such as {\"admit_per_sec\": 50, \"admitted_ttl_secs\": 120}",
        ));
    };
    let mut number =
        |field: &'static str, name: &str, low: u64, high: u64, default: Option<u64>| {
            let value = members.remove(name);
            match value {
                // Null is not a number: only an absent member takes the default.
                None => {
                    default.ok_or_else(|| InvalidField::new(field, "is required (a whole number)"))
                }
                Some(serde_json::Value::Number(number)) => number
                    .as_u64()
                    .filter(|value| (low..=high).contains(value))
                    .ok_or_else(|| {
                        InvalidField::new(
                            field,
                            format!("must be a whole number from {low} to {high}"),
                        )
                    }),
                Some(_) => Err(InvalidField::new(
                    field,
                    format!("must be a whole number from {low} to {high}"),
                )),
            }
        };
    let admit_per_sec = number(
        "waiting_room.admit_per_sec",
        "admit_per_sec",
        1,
        u64::from(ADMIT_PER_SEC_LIMIT),
        None,
    )?;
    let admitted_ttl_secs = number(
        "waiting_room.admitted_ttl_secs",
        "admitted_ttl_secs",
        1,
        u64::from(ADMITTED_TTL_SECS_LIMIT),
        None,
    )?;
    let queue_length_max = number(
        "waiting_room.queue_length_max",
        "queue_length_max",
        1,
        u64::from(queue_length_max_limit),
        Some(u64::from(queue_length_max_limit)),
    )?;
    if let Some(unknown) = members.keys().next() {
        return Err(InvalidField::new(
            "waiting_room",
            format!("has no member {unknown:?}: it takes admit_per_sec, admitted_ttl_secs and queue_length_max"),
        ));
    }
    Ok(Some(WaitingRoomSettings {
        admit_per_sec: admit_per_sec as u32,
        admitted_ttl_secs: admitted_ttl_secs as u32,
        queue_length_max: queue_length_max as u32,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms() -> WaitingRooms {
        WaitingRooms::open(WaitingRoomConfig {
            secret: Some(vec![7; 32]),
            bypass_token_digests: Vec::new(),
            queue_length_max: 100,
            spent_tickets_max: 100,
            poll_after_min_ms: 500,
            poll_after_max_ms: 10_000,
            settings_path: None,
        })
        .unwrap()
    }

    const SETTINGS: WaitingRoomSettings = WaitingRoomSettings {
        admit_per_sec: 1,
        admitted_ttl_secs: 10,
        queue_length_max: 100,
    };

    #[test]
    fn a_join_an_admission_and_one_order_with_it() {
        let rooms = rooms();
        rooms.put("S", Some(SETTINGS), 0);
        let first = rooms.join("S", "alice", 1_000, true).unwrap();
        assert_eq!(first.status, Status::Admitted);
        let (admission, until) = first.admission.clone().unwrap();
        assert_eq!(until, 11_000);
        let second = rooms.join("S", "bob", 1_000, true).unwrap();
        assert_eq!(second.status, Status::Waiting);
        assert_eq!(second.position, Some(1));
        // One place per customer: joining again answers the same ticket.
        let again = rooms.join("S", "bob", 1_001, true).unwrap();
        assert_eq!(again.ticket, second.ticket);
        assert_eq!(again.queue_length, 2);
        // The join ticket does not order; the admission orders once.
        assert_eq!(
            rooms.check_order("S", "alice", Some(&first.ticket), None, 1_001),
            Err(Refusal::NotAdmittedYet("S".into()))
        );
        assert_eq!(
            rooms
                .check_order("S", "bob", Some(&admission), None, 1_001)
                .unwrap_err()
                .code(),
            QUEUE_TICKET_INVALID
        );
        assert_eq!(
            rooms.check_order("S", "alice", Some(&admission), Some("k"), 1_001),
            Ok(())
        );
        assert_eq!(
            rooms.check_order("S", "alice", Some(&admission), Some("k"), 1_002),
            Ok(()),
            "a retry of the same order"
        );
        assert_eq!(
            rooms.check_order("S", "alice", Some(&admission), None, 1_003),
            Err(Refusal::TicketUsed)
        );
        let polled = rooms
            .poll("S", &first.ticket, |_| true, 1_004, true)
            .unwrap();
        assert_eq!(polled.status, Status::Used);
        // A used place is given up: joining again goes to the back.
        let rejoined = rooms.join("S", "alice", 1_004, true).unwrap();
        assert_eq!(rejoined.position, Some(2));
        assert_ne!(rejoined.ticket, first.ticket);
        assert_eq!(
            rooms.check_order("S", "alice", None, None, 1_005),
            Err(Refusal::TicketRequired("S".into()))
        );
        assert_eq!(
            rooms.check_order("OTHER", "alice", None, None, 1_005),
            Ok(())
        );
    }

    #[test]
    fn settings_are_checked_member_by_member() {
        let parse = |text: &str| parse_settings(Some(serde_json::from_str(text).unwrap()), 1_000);
        assert_eq!(
            parse(r#"{"admit_per_sec": 5, "admitted_ttl_secs": 60}"#),
            Ok(Some(WaitingRoomSettings {
                admit_per_sec: 5,
                admitted_ttl_secs: 60,
                queue_length_max: 1_000
            }))
        );
        assert_eq!(parse("null"), Ok(None));
        for (bad, field) in [
            (r#"{"admitted_ttl_secs": 60}"#, "waiting_room.admit_per_sec"),
            (
                r#"{"admit_per_sec": 0, "admitted_ttl_secs": 60}"#,
                "waiting_room.admit_per_sec",
            ),
            (
                r#"{"admit_per_sec": 1, "admitted_ttl_secs": "60"}"#,
                "waiting_room.admitted_ttl_secs",
            ),
            (
                r#"{"admit_per_sec": 1, "admitted_ttl_secs": 60, "queue_length_max": 1001}"#,
                "waiting_room.queue_length_max",
            ),
            (
                r#"{"admit_per_sec": 1, "admitted_ttl_secs": 60, "colour": 1}"#,
                "waiting_room",
            ),
            ("[]", "waiting_room"),
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.field, field, "{bad}");
        }
    }

    /// The rooms follow the directory (the node's replicated settings):
    /// a room appears, changes and goes with it, a new node's rooms are the
    /// directory's, and a join ticket of another process's queue is expired
    /// while its admission still orders (checked by signature).
    #[test]
    fn rooms_follow_the_directory_and_tickets_of_another_queue_are_expired() {
        let published: Arc<Mutex<Option<(WaitingRoomSettings, u64)>>> = Arc::default();
        let directory = |published: &Arc<Mutex<Option<(WaitingRoomSettings, u64)>>>| {
            let published = Arc::clone(published);
            Box::new(move |sku: &str| (sku == "S").then(|| *lock(&published)).flatten())
                as Directory
        };
        let here = rooms().with_directory(directory(&published));
        assert_eq!(here.settings("S"), None);
        assert_eq!(here.check_order("S", "alice", None, None, 1_000), Ok(()));
        *lock(&published) = Some((SETTINGS, 0));
        assert_eq!(here.settings("S"), Some(SETTINGS));
        assert_eq!(
            here.check_order("S", "alice", None, None, 1_000)
                .unwrap_err()
                .code(),
            QUEUE_TICKET_REQUIRED
        );
        let joined = here.join("S", "alice", 1_000, true).unwrap();
        // Another node (a promoted standby) holds the same settings.
        let other = rooms().with_directory(directory(&published));
        assert_eq!(other.settings("S"), Some(SETTINGS));
        assert_eq!(
            other
                .poll("S", &joined.ticket, |_| true, 1_001, true)
                .unwrap_err()
                .code(),
            QUEUE_TICKET_EXPIRED
        );
        let (admission, _) = joined.admission.unwrap();
        assert_eq!(
            other.check_order("S", "alice", Some(&admission), None, 1_002),
            Ok(())
        );
        // A changed length applies to the queue as it is: the ticket stays.
        let longer = WaitingRoomSettings {
            queue_length_max: SETTINGS.queue_length_max - 1,
            ..SETTINGS
        };
        *lock(&published) = Some((longer, 0));
        assert_eq!(here.settings("S"), Some(longer));
        assert!(here
            .poll("S", &joined.ticket, |_| true, 1_003, true)
            .is_ok());
        *lock(&published) = None;
        assert_eq!(here.settings("S"), None);
        assert_eq!(here.check_order("S", "bob", None, None, 1_004), Ok(()));
    }

    /// An older version's settings file is read once, for the node to move
    /// into the log; a damaged one stops the start with its path.
    #[test]
    fn an_older_settings_file_is_taken_once_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = WaitingRoomConfig {
            settings_path: Some(dir.path().join(SETTINGS_FILE)),
            ..rooms().config
        };
        let path = config.settings_path.clone().unwrap();
        std::fs::write(
            &path,
            br#"{"rooms": {"S": {"admit_per_sec": 5, "admitted_ttl_secs": 60, "queue_length_max": 9, "opens_at_ms": 0}}}"#,
        )
        .unwrap();
        let rooms = WaitingRooms::open(config.clone()).unwrap();
        let expected = WaitingRoomSettings {
            admit_per_sec: 5,
            admitted_ttl_secs: 60,
            queue_length_max: 9,
        };
        assert_eq!(rooms.take_saved(), vec![("S".to_owned(), expected)]);
        assert_eq!(rooms.take_saved(), Vec::new());
        std::fs::write(&path, b"not json").unwrap();
        let error = WaitingRooms::open(config.clone()).err().unwrap();
        assert!(error.contains(SETTINGS_FILE), "{error}");
        std::fs::write(
            &path,
            br#"{"rooms": {"S": {"admit_per_sec": 0, "admitted_ttl_secs": 5, "queue_length_max": 9, "opens_at_ms": 0}}}"#,
        )
        .unwrap();
        let error = WaitingRooms::open(config).err().unwrap();
        assert!(error.contains("at 0"), "{error}");
    }
}
