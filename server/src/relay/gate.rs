//! The relay's front door: a [`Conn`] in front of the TURN listener socket
//! that the `turn` crate reads from and writes to. The crate implements RFC
//! 8656 but has no hook for policy, so the gate looks at each datagram on its
//! way in and out:
//! - an Allocate from a user already holding the maximum is answered 486
//!   (Allocation Quota Reached) and never reaches the crate;
//! - a CreatePermission or ChannelBind naming a denied peer address is
//!   answered 403 (Forbidden), so no permission to it ever exists;
//! - data to and from a user's allocations is counted against that user's
//!   bandwidth, and what is over the cap is dropped (as a congested link
//!   would);
//! - the crate's Allocate answers tell which client address belongs to which
//!   user, and its close notices end that.
//!
//! Only STUN messages are decoded; ChannelData (the bulk of relayed media)
//! costs a map lookup and a token bucket.

use crate::rate::TokenBucket;
use async_trait::async_trait;
use hallway_shared::UserId;
use ipnet::IpNet;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_USERNAME, ATTR_XOR_PEER_ADDRESS};
use stun::error_code::{CODE_ALLOC_QUOTA_REACHED, CODE_FORBIDDEN, ErrorCode, ErrorCodeAttribute};
use stun::fingerprint::FINGERPRINT;
use stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_INDICATION, CLASS_REQUEST, CLASS_SUCCESS_RESPONSE, Getter,
    METHOD_ALLOCATE, METHOD_CHANNEL_BIND, METHOD_CREATE_PERMISSION, METHOD_DATA, METHOD_SEND,
    Message, MessageType, Setter,
};
use tokio::net::UdpSocket;
use turn::proto::peeraddr::PeerAddress;
use webrtc_util::Conn;

/// Allocate requests awaiting the crate's answer, at most.
const MAX_PENDING: usize = 10_000;

/// What the gate enforces.
#[derive(Clone, Debug)]
pub struct Policy {
    pub max_allocations_per_user: usize,
    /// Per user and direction, in bytes a second (bursts of one second).
    pub user_bytes_per_second: f64,
    pub deny_peers: Vec<IpNet>,
}

impl Policy {
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.deny_peers.iter().any(|net| net.contains(&ip))
    }
}

/// What one user holds.
struct Usage {
    allocations: usize,
    upload: TokenBucket,
    download: TokenBucket,
}

#[derive(Default)]
struct State {
    /// Client address (the allocation's 5-tuple source) → its user.
    clients: HashMap<SocketAddr, UserId>,
    users: HashMap<UserId, Usage>,
    /// Allocate requests passed to the crate and not answered yet.
    pending: HashMap<TransactionId, (SocketAddr, UserId)>,
}

/// Counters for tests and the benchmark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateStats {
    pub allocations: usize,
    pub quota_refusals: u64,
    pub denied_peers: u64,
    pub dropped_over_cap: u64,
}

pub struct Gate {
    socket: Arc<UdpSocket>,
    policy: Policy,
    state: Mutex<State>,
    stats: Mutex<GateStats>,
}

enum Verdict {
    Pass,
    Drop,
    Reply(Vec<u8>),
}

impl Gate {
    pub fn new(socket: Arc<UdpSocket>, policy: Policy) -> Gate {
        Gate {
            socket,
            policy,
            state: Mutex::default(),
            stats: Mutex::default(),
        }
    }

    pub fn stats(&self) -> GateStats {
        let mut stats = self.stats.lock().map(|s| *s).unwrap_or_default();
        stats.allocations = self.state.lock().map_or(0, |s| s.clients.len());
        stats
    }

    fn count(&self, f: impl FnOnce(&mut GateStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    /// The crate closed the allocation of `client` (expired, deleted, or the
    /// server stopping).
    pub fn closed(&self, client: SocketAddr) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(user) = state.clients.remove(&client)
            && let Some(usage) = state.users.get_mut(&user)
        {
            usage.allocations = usage.allocations.saturating_sub(1);
            if usage.allocations == 0 {
                state.users.remove(&user);
            }
            tracing::debug!(%user, %client, "TURN allocation closed");
        }
    }

    /// A datagram from `from`, before the crate sees it.
    fn inbound(&self, buf: &[u8], from: SocketAddr) -> Verdict {
        if is_channel_data(buf) {
            return self.metered(from, buf.len(), Direction::Up);
        }
        // Not STUN, or broken: the crate answers or drops it.
        let Some(m) = decode_stun(buf) else {
            return Verdict::Pass;
        };
        match (m.typ.method, m.typ.class) {
            (METHOD_ALLOCATE, CLASS_REQUEST) => self.allocate(&m, from),
            (METHOD_CREATE_PERMISSION | METHOD_CHANNEL_BIND, CLASS_REQUEST) => {
                match self.denied_peer(&m) {
                    Some(peer) => {
                        self.count(|s| s.denied_peers += 1);
                        tracing::info!(%from, %peer, "TURN permission refused: denied peer address");
                        reply_error(&m, CODE_FORBIDDEN, "peer address not allowed")
                    }
                    None => Verdict::Pass,
                }
            }
            (METHOD_SEND, CLASS_INDICATION) => match self.denied_peer(&m) {
                Some(_) => Verdict::Drop,
                None => self.metered(from, buf.len(), Direction::Up),
            },
            _ => Verdict::Pass,
        }
    }

    fn allocate(&self, m: &Message, from: SocketAddr) -> Verdict {
        // The first Allocate carries no username: the crate challenges it.
        let Ok(username) = m.get(ATTR_USERNAME) else {
            return Verdict::Pass;
        };
        let username = String::from_utf8_lossy(&username);
        // A credential that does not check is the crate's to refuse (its
        // auth handler runs the same check, and logs it).
        let Ok(user) = super::Credentials::check(&username, SystemTime::now()) else {
            return Verdict::Pass;
        };
        let Ok(mut state) = self.state.lock() else {
            return Verdict::Pass;
        };
        let held = state.users.get(&user).map_or(0, |u| u.allocations);
        if held >= self.policy.max_allocations_per_user {
            drop(state);
            self.count(|s| s.quota_refusals += 1);
            tracing::info!(%user, %from, held, "TURN allocation refused: quota reached");
            return reply_error(m, CODE_ALLOC_QUOTA_REACHED, "allocation quota reached");
        }
        // The crate answers every Allocate it is passed, which takes the
        // entry out; should some go unanswered, they cannot pile up.
        if state.pending.len() >= MAX_PENDING {
            state.pending.clear();
        }
        state.pending.insert(m.transaction_id, (from, user));
        Verdict::Pass
    }

    fn denied_peer(&self, m: &Message) -> Option<IpAddr> {
        for attr in m
            .attributes
            .0
            .iter()
            .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        {
            // Decode each XOR-PEER-ADDRESS on its own (XOR needs the id).
            let mut one = Message::new();
            one.transaction_id = m.transaction_id;
            one.add(ATTR_XOR_PEER_ADDRESS, &attr.value);
            let mut peer = PeerAddress::default();
            match peer.get_from(&one) {
                Ok(()) if self.policy.denies(peer.ip) => return Some(peer.ip),
                Ok(()) => {}
                // Malformed: the crate answers 400.
                Err(_) => {}
            }
        }
        None
    }

    /// A datagram the crate sends to `to`, before it leaves.
    fn outbound(&self, buf: &[u8], to: SocketAddr) -> Verdict {
        if is_channel_data(buf) {
            return self.metered(to, buf.len(), Direction::Down);
        }
        let Some(m) = decode_stun(buf) else {
            return Verdict::Pass;
        };
        match (m.typ.method, m.typ.class) {
            (METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE | CLASS_ERROR_RESPONSE) => {
                self.answered(&m, to);
                Verdict::Pass
            }
            (METHOD_DATA, CLASS_INDICATION) => self.metered(to, buf.len(), Direction::Down),
            _ => Verdict::Pass,
        }
    }

    fn answered(&self, m: &Message, to: SocketAddr) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let Some((client, user)) = state.pending.remove(&m.transaction_id) else {
            return;
        };
        if client != to {
            return;
        }
        if m.typ.class == CLASS_ERROR_RESPONSE {
            let mut code = ErrorCodeAttribute::default();
            let code = code.get_from(m).map_or(0, |()| code.code.0);
            tracing::info!(%user, %client, code, "TURN allocation refused");
            return;
        }
        if state.clients.insert(client, user).is_none() {
            let rate = self.policy.user_bytes_per_second;
            let usage = state.users.entry(user).or_insert_with(|| Usage {
                allocations: 0,
                upload: TokenBucket::new(rate, rate),
                download: TokenBucket::new(rate, rate),
            });
            usage.allocations += 1;
            tracing::debug!(%user, %client, held = usage.allocations, "TURN allocation");
        }
    }

    fn metered(&self, client: SocketAddr, bytes: usize, direction: Direction) -> Verdict {
        let Ok(mut state) = self.state.lock() else {
            return Verdict::Pass;
        };
        let Some(user) = state.clients.get(&client).copied() else {
            return Verdict::Pass; // no allocation: the crate drops it
        };
        let Some(usage) = state.users.get_mut(&user) else {
            return Verdict::Pass;
        };
        let bucket = match direction {
            Direction::Up => &mut usage.upload,
            Direction::Down => &mut usage.download,
        };
        if bucket.try_take_n_at(bytes as f64, Instant::now()) {
            Verdict::Pass
        } else {
            drop(state);
            self.count(|s| s.dropped_over_cap += 1);
            Verdict::Drop
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Up,
    Down,
}

/// `buf` as a STUN message, if it is one.
fn decode_stun(buf: &[u8]) -> Option<Message> {
    if !stun::message::is_message(buf) {
        return None;
    }
    let mut m = Message {
        raw: buf.to_vec(),
        ..Default::default()
    };
    m.decode().ok()?;
    Some(m)
}

/// ChannelData starts with a channel number 0x4000..=0x7FFF (RFC 8656 §12).
fn is_channel_data(buf: &[u8]) -> bool {
    buf.len() >= 4 && (0x40..=0x7F).contains(&buf[0])
}

fn reply_error(request: &Message, code: ErrorCode, reason: &str) -> Verdict {
    let mut m = Message::new();
    let setters: [Box<dyn Setter>; 4] = [
        Box::new(request.transaction_id),
        Box::new(MessageType::new(request.typ.method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code,
            reason: reason.as_bytes().to_vec(),
        }),
        Box::new(FINGERPRINT),
    ];
    match m.build(&setters) {
        Ok(()) => Verdict::Reply(m.raw),
        Err(_) => Verdict::Drop,
    }
}

#[async_trait]
impl Conn for Gate {
    async fn connect(&self, addr: SocketAddr) -> webrtc_util::Result<()> {
        self.socket.connect(addr).await?;
        Ok(())
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            let Some(datagram) = buf.get(..n) else {
                continue;
            };
            match self.inbound(datagram, from) {
                Verdict::Pass => return Ok((n, from)),
                Verdict::Drop => {}
                Verdict::Reply(answer) => {
                    let _ = self.socket.send_to(&answer, from).await;
                }
            }
        }
    }

    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        Ok(self.socket.send(buf).await?)
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        match self.outbound(buf, target) {
            Verdict::Pass => Ok(self.socket.send_to(buf, target).await?),
            // Dropped as a congested link would: the sender is not told.
            Verdict::Drop | Verdict::Reply(_) => Ok(buf.len()),
        }
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
