//! Real network partitions between two nodes: each node runs in a network
//! namespace of its own, the two joined by a veth pair (the replication link),
//! and the test process in the root namespace reaches each node's HTTP over a
//! second veth pair of its own (root <-> namespace), which no cut touches.
//!
//! ```text
//!   root namespace (the test)
//!     fg<slot>ph .5 ──── .6 fg<slot>pn   [fgnet-<slot>-p]  fg<slot>pr .1 ──┐
//!     fg<slot>sh .9 ──── .10 fg<slot>sn  [fgnet-<slot>-s]  fg<slot>sr .2 ──┘ replication link
//! ```
//!
//! Addresses come from 198.18.0.0/15, the range set aside for network test
//! beds (RFC 2544), one /28 per topology (three /30 links), so no real network
//! is ever addressed. Everything is created by `Topology::create` and deleted
//! when the `Topology` is dropped, also when the test panics.
//!
//! A cut is made the way a real link fails: `ip link set DEV down` on one end
//! (both directions), or a zero-length FIFO as the root queueing discipline of
//! one end (`tc qdisc add dev DEV root pfifo limit 0`: every packet that end
//! sends is dropped, the other direction still flows). The zero-length FIFO is
//! used rather than `netem loss 100%` because it is part of every kernel,
//! while `sch_netem` is a module many kernels (this one included) lack.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use super::Launch;

/// The first address of the test-bed range (198.18.0.0/15).
const TEST_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Addresses one topology takes: three /30 links.
const SLOT_ADDRESSES: u32 = 16;
/// Slots in the /15.
const SLOTS: u32 = (1 << 17) / SLOT_ADDRESSES;
/// Slots tried before giving up (another topology, of this process or another
/// test run, may hold one).
const SLOT_TRIES_MAX: u32 = 64;

/// Topologies made by this process so far, so parallel tests differ.
static TOPOLOGIES: AtomicU32 = AtomicU32::new(0);

/// One of the two nodes' places.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Where the node that starts as the primary runs.
    Primary,
    /// Where the node that starts as the standby runs.
    Standby,
}

/// How the replication link is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// The link is down: nothing passes either way.
    Both,
    /// What the primary's side sends is dropped; the standby's packets arrive.
    FromPrimary,
    /// What the standby's side sends is dropped; the primary's packets arrive.
    FromStandby,
}

impl Cut {
    /// Every kind of cut, for tests that try each.
    pub const ALL: [Cut; 3] = [Cut::Both, Cut::FromPrimary, Cut::FromStandby];

    /// The command that makes this cut (for messages and for reproducing it by
    /// hand), in `topology`.
    pub fn command(self, topology: &Topology) -> String {
        let (side, action) = match self {
            Cut::Both => (Side::Primary, "link set DEV down"),
            Cut::FromPrimary => (Side::Primary, "qdisc add dev DEV root pfifo limit 0"),
            Cut::FromStandby => (Side::Standby, "qdisc add dev DEV root pfifo limit 0"),
        };
        let tool = if self == Cut::Both { "ip" } else { "tc" };
        format!(
            "{tool} -n {} {}",
            topology.namespace(side),
            action.replace("DEV", &topology.replication_device(side))
        )
    }
}

/// Two network namespaces joined by a replication link, each reachable from
/// the root namespace. Dropping it deletes both namespaces and every link.
pub struct Topology {
    slot: u32,
    /// The cut in place, if any.
    cut: Mutex<Option<Cut>>,
}

/// Why network namespaces cannot be used here, when they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (ip netns add)".into());
    }
    for tool in ["ip", "tc"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Some(format!("`{tool}` was not found (Debian package iproute2)"));
        }
    }
    None
}

impl Topology {
    /// Creates both namespaces and their links; `None`, after printing a
    /// `SKIPPED:` line naming `test` and the reason, where network namespaces
    /// cannot be used (not root, no iproute2). Any other failure fails the test.
    pub fn create(test: &str) -> Option<Topology> {
        if let Some(reason) = unavailable() {
            eprintln!("SKIPPED: {test}: {reason}");
            return None;
        }
        let first = std::process::id()
            .wrapping_mul(31)
            .wrapping_add(TOPOLOGIES.fetch_add(1, Ordering::AcqRel));
        let mut refused = Vec::new();
        for attempt in 0..SLOT_TRIES_MAX {
            let slot = first.wrapping_add(attempt * 97) % SLOTS;
            // `ip netns add` of an existing name fails: the namespace name is
            // the lock on the slot, across processes.
            match run(
                "ip",
                &["netns", "add", &namespace_name(slot, Side::Primary)],
            ) {
                Ok(()) => {}
                // Taken by another test, or left by a run that was killed.
                Err(error) if error.contains("File exists") => {
                    refused.push(error);
                    continue;
                }
                Err(error) => {
                    eprintln!("SKIPPED: {test}: cannot create a network namespace: {error}");
                    return None;
                }
            }
            let topology = Topology {
                slot,
                cut: Mutex::new(None),
            };
            if topology.addresses_in_use() {
                // Dropping it deletes the namespace just made.
                refused.push(format!("addresses of slot {slot} are in use"));
                continue;
            }
            topology.build();
            return Some(topology);
        }
        panic!(
            "no free slot for a test network after {SLOT_TRIES_MAX} tries: {}",
            refused.join("; ")
        );
    }

    /// The namespace `side`'s node runs in.
    pub fn namespace(&self, side: Side) -> String {
        namespace_name(self.slot, side)
    }

    /// Where `side`'s node binds HTTP and QUIC: reachable from the test, on a
    /// link no cut touches.
    pub fn host_addr(&self, side: Side) -> IpAddr {
        IpAddr::V4(self.address(match side {
            Side::Primary => 6,
            Side::Standby => 10,
        }))
    }

    /// `side`'s address on the replication link.
    pub fn link_addr(&self, side: Side) -> IpAddr {
        IpAddr::V4(self.address(match side {
            Side::Primary => 1,
            Side::Standby => 2,
        }))
    }

    /// The replication link's device in `side`'s namespace.
    pub fn replication_device(&self, side: Side) -> String {
        format!("fg{}{}r", self.slot, side_letter(side))
    }

    /// A `Launch` of a node in `side`'s namespace, front ends on `host_addr`.
    pub fn launch(&self, side: Side) -> Launch {
        Launch::new().in_netns(&self.namespace(side), self.host_addr(side))
    }

    /// Cuts the replication link; panics if it already is cut.
    pub fn cut(&self, cut: Cut) {
        let mut current = self.cut.lock().expect("the cut");
        assert!(current.is_none(), "the link is already cut ({current:?})");
        match cut {
            Cut::Both => self.ip_in(Side::Primary, &["link", "set", "DEV", "down"]),
            Cut::FromPrimary => self.drop_egress(Side::Primary),
            Cut::FromStandby => self.drop_egress(Side::Standby),
        }
        *current = Some(cut);
    }

    /// Undoes the cut in place, if any.
    pub fn heal(&self) {
        let mut current = self.cut.lock().expect("the cut");
        match current.take() {
            None => {}
            Some(Cut::Both) => self.ip_in(Side::Primary, &["link", "set", "DEV", "up"]),
            Some(Cut::FromPrimary) => self.pass_egress(Side::Primary),
            Some(Cut::FromStandby) => self.pass_egress(Side::Standby),
        }
    }

    fn drop_egress(&self, side: Side) {
        let device = self.replication_device(side);
        let namespace = self.namespace(side);
        let args = [
            "-n", &namespace, "qdisc", "add", "dev", &device, "root", "pfifo", "limit", "0",
        ];
        run("tc", &args).unwrap_or_else(|error| panic!("{error}"));
    }

    fn pass_egress(&self, side: Side) {
        let device = self.replication_device(side);
        let namespace = self.namespace(side);
        let args = ["-n", &namespace, "qdisc", "del", "dev", &device, "root"];
        run("tc", &args).unwrap_or_else(|error| panic!("{error}"));
    }

    /// Runs `ip -n <side's namespace> ARGS`, `DEV` standing for the
    /// replication device there.
    fn ip_in(&self, side: Side, args: &[&str]) {
        let device = self.replication_device(side);
        let namespace = self.namespace(side);
        let mut full = vec!["-n", &namespace];
        full.extend(
            args.iter()
                .map(|arg| if *arg == "DEV" { device.as_str() } else { arg }),
        );
        run("ip", &full).unwrap_or_else(|error| panic!("{error}"));
    }

    fn address(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(TEST_NET + self.slot * SLOT_ADDRESSES + offset)
    }

    /// Whether the root namespace already has an address of this slot.
    fn addresses_in_use(&self) -> bool {
        let prefix = format!("{}/28", self.address(0));
        let output = Command::new("ip")
            .args(["-o", "-4", "addr", "show", "to", &prefix])
            .output();
        output.map_or(true, |output| !output.stdout.is_empty())
    }

    /// Creates the standby's namespace, the three links and their addresses.
    fn build(&self) {
        let slot = self.slot;
        let (primary_ns, standby_ns) =
            (self.namespace(Side::Primary), self.namespace(Side::Standby));
        let with = |side: Side| self.namespace(side);
        let replication = |side: Side| self.replication_device(side);
        let host_root = |side: Side| format!("fg{slot}{}h", side_letter(side));
        let host_ns = |side: Side| format!("fg{slot}{}n", side_letter(side));
        let root_addr = |side: Side| match side {
            Side::Primary => self.address(5),
            Side::Standby => self.address(9),
        };
        let cidr = |addr: IpAddr| format!("{addr}/30");
        let mut steps: Vec<(&str, Vec<String>)> = vec![
            ("ip", strings(&["netns", "add", &standby_ns])),
            (
                "ip",
                strings(&["-n", &primary_ns, "link", "set", "lo", "up"]),
            ),
            (
                "ip",
                strings(&["-n", &standby_ns, "link", "set", "lo", "up"]),
            ),
            (
                "ip",
                strings(&[
                    "link",
                    "add",
                    &replication(Side::Primary),
                    "netns",
                    &primary_ns,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &replication(Side::Standby),
                    "netns",
                    &standby_ns,
                ]),
            ),
        ];
        for side in [Side::Primary, Side::Standby] {
            let ns = with(side);
            steps.extend([
                (
                    "ip",
                    strings(&[
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &cidr(self.link_addr(side)),
                        "dev",
                        &replication(side),
                    ]),
                ),
                (
                    "ip",
                    strings(&["-n", &ns, "link", "set", &replication(side), "up"]),
                ),
                (
                    "ip",
                    strings(&[
                        "link",
                        "add",
                        &host_root(side),
                        "type",
                        "veth",
                        "peer",
                        "name",
                        &host_ns(side),
                        "netns",
                        &ns,
                    ]),
                ),
                (
                    "ip",
                    strings(&[
                        "addr",
                        "add",
                        &cidr(IpAddr::V4(root_addr(side))),
                        "dev",
                        &host_root(side),
                    ]),
                ),
                ("ip", strings(&["link", "set", &host_root(side), "up"])),
                (
                    "ip",
                    strings(&[
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &cidr(self.host_addr(side)),
                        "dev",
                        &host_ns(side),
                    ]),
                ),
                (
                    "ip",
                    strings(&["-n", &ns, "link", "set", &host_ns(side), "up"]),
                ),
            ]);
        }
        for (tool, args) in steps {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(tool, &args).unwrap_or_else(|error| panic!("building the test network: {error}"));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth ends in it, and with them
        // their peers in the root namespace, once no process is left in it.
        // The root ends are deleted here too, in case a process outlives us.
        for side in [Side::Primary, Side::Standby] {
            let _ = run("ip", &["netns", "del", &self.namespace(side)]);
            let _ = run(
                "ip",
                &[
                    "link",
                    "del",
                    &format!("fg{}{}h", self.slot, side_letter(side)),
                ],
            );
        }
    }
}

fn namespace_name(slot: u32, side: Side) -> String {
    format!("fgnet-{slot}-{}", side_letter(side))
}

fn side_letter(side: Side) -> char {
    match side {
        Side::Primary => 'p',
        Side::Standby => 's',
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| (*arg).to_owned()).collect()
}

/// Runs `tool args`; `Err` with the command and its stderr if it fails.
fn run(tool: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(tool)
        .args(args)
        .output()
        .map_err(|error| format!("`{tool} {}`: {error}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
