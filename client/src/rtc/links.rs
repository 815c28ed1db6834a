//! The link table: whom the server wants us connected to, and what each
//! connection is doing, as plain data with pure transitions (the str0m way).
//! No I/O, no clock and no randomness of its own: every call is given the
//! time, new session numbers come from the generator it was built with, and
//! every decision comes out as an [`Action`] for the manager to carry out.
//! Retries, backoff, stale sessions and restarts are unit tests here.
//!
//! The rules (protocol.md §6.3):
//! - The server's `proximity` list says who we link with and who offers. The
//!   offerer opens a connection with a new session number and offers; the
//!   answerer answers offers from peers in its list, and only those.
//! - A signal naming another session than the current one is stale and
//!   ignored; an offer with a new session replaces the current connection.
//! - A connected link whose path breaks (webrtc-rs says `disconnected`) is
//!   restarted in place by the offerer: an ICE restart offer on the same
//!   session, answered as any offer is. If it is not connected again within
//!   `connect_timeout`, it counts as failed.
//! - A connection that fails (or is not connected after `connect_timeout`) is
//!   closed and started over after a backoff that grows with the failures
//!   since the last success: the offerer offers again with a new session, the
//!   answerer asks it to (`restart`) and waits for that offer.
//! - A peer that leaves the list is closed with a `bye`. Signals may still
//!   come from it for a short while (the server's grace period): a `bye` is
//!   taken, anything that would open a connection is not.

use super::signal::{RemoteCandidate, SignalPayload};
use super::{LinkInfo, Route, RtcEvent};
use hallway_shared::UserId;
use hallway_shared::protocol::Peer;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Candidates kept for a connection whose remote description is not set yet.
const MAX_PENDING_CANDIDATES: usize = 64;

/// An ICE restart offer not answered within this is sent again: the path
/// that broke may have taken the peer's WebSocket with it, and the copy sent
/// into the dead connection is lost while the peer reconnects.
pub const RESTART_RESEND: Duration = Duration::from_millis(500);

/// Where one link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// The states webrtc-rs reports for the connection.
    New,
    Connecting,
    Connected,
    Disconnected,
    Failed,
    Closed,
    /// Failed; a new connection follows after the backoff.
    Retrying,
}

impl fmt::Display for LinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LinkState::New => "new",
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
            LinkState::Failed => "failed",
            LinkState::Closed => "closed",
            LinkState::Retrying => "retrying",
        })
    }
}

/// What the manager must do. Every action names the connection by peer and
/// session; one whose connection is gone is simply skipped.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Open a connection for `session` and send the peer an offer.
    Offer { peer: UserId, session: u64 },
    /// Offer an ICE restart on the connection for `session`.
    IceRestart { peer: UserId, session: u64 },
    /// Send the current (restart) offer of `session` again.
    ResendOffer { peer: UserId, session: u64 },
    /// A path broke: check that the WebSocket session still carries.
    ProbeSignaling,
    /// Ask the offerer for an ICE restart of `session` (we answer it).
    AskIceRestart { peer: UserId, session: u64 },
    /// Answer the offer `sdp` on the connection for `session`, opening it
    /// first if `open`.
    Answer {
        peer: UserId,
        session: u64,
        sdp: String,
        open: bool,
    },
    /// Set the answer `sdp` on the connection for `session`.
    Accept {
        peer: UserId,
        session: u64,
        sdp: String,
    },
    /// Give the connection a remote candidate (its remote description is set).
    Candidate {
        peer: UserId,
        session: u64,
        candidate: RemoteCandidate,
    },
    /// Close the connection for good, with a `bye` to the peer if asked.
    Close {
        peer: UserId,
        session: u64,
        bye: bool,
    },
    /// Close a failed connection; a new one follows. `restart`: ask the
    /// offerer for it.
    Drop {
        peer: UserId,
        session: u64,
        restart: bool,
    },
    /// Tell whoever listens (the call, the bot's report).
    Event(RtcEvent),
}

/// How long things may take.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// A connection not connected after this long is started over.
    pub connect_timeout: Duration,
    /// The wait before starting over after the `n`th failure in a row.
    pub backoff: fn(u32) -> Duration,
}

/// Someone in the server's list.
#[derive(Clone, Copy, Debug)]
struct Wanted {
    offerer: bool,
    since: Instant,
    /// Failures since the last connection that came up.
    attempts: u32,
}

/// One connection.
#[derive(Clone, Debug)]
struct Link {
    session: u64,
    offerer: bool,
    created: Instant,
    remote_set: bool,
    pending: Vec<RemoteCandidate>,
    state: LinkState,
    connected_at: Option<Instant>,
    retry_at: Option<Instant>,
    /// When the ICE restart in progress began.
    restart_at: Option<Instant>,
    /// When the unanswered restart offer goes out again.
    resend_at: Option<Instant>,
    restarts: u32,
    route: Option<Route>,
}

impl Link {
    fn new(session: u64, offerer: bool, now: Instant) -> Link {
        Link {
            session,
            offerer,
            created: now,
            remote_set: false,
            pending: Vec::new(),
            state: LinkState::New,
            connected_at: None,
            retry_at: None,
            restart_at: None,
            resend_at: None,
            restarts: 0,
            route: None,
        }
    }

    /// When this link needs attention next, if ever.
    fn deadline(&self, timing: &Timing) -> Option<Instant> {
        let due = match (self.retry_at, self.connected_at, self.restart_at) {
            (Some(at), _, _) => Some(at),
            (None, None, _) => Some(self.created + timing.connect_timeout),
            (None, Some(_), Some(at)) => Some(at + timing.connect_timeout),
            (None, Some(_), None) => None,
        };
        due.into_iter().chain(self.resend_at).min()
    }
}

/// The table. See the module documentation for its rules.
pub struct LinkTable {
    timing: Timing,
    sessions: Box<dyn FnMut() -> u64 + Send>,
    wanted: HashMap<UserId, Wanted>,
    links: HashMap<UserId, Link>,
}

impl LinkTable {
    /// An empty table; `sessions` gives each new connection its number.
    pub fn new(timing: Timing, sessions: impl FnMut() -> u64 + Send + 'static) -> LinkTable {
        LinkTable {
            timing,
            sessions: Box::new(sessions),
            wanted: HashMap::new(),
            links: HashMap::new(),
        }
    }

    /// The server's new list.
    pub fn set_peers(&mut self, peers: &[Peer], now: Instant) -> Vec<Action> {
        let wanted: HashMap<UserId, Wanted> = peers
            .iter()
            .map(|p| {
                let old = self.wanted.get(&p.user_id);
                let w = Wanted {
                    offerer: p.offerer,
                    since: old.map_or(now, |w| w.since),
                    attempts: old.map_or(0, |w| w.attempts),
                };
                (p.user_id, w)
            })
            .collect();
        let mut gone: Vec<UserId> = self
            .links
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        gone.sort_unstable();
        self.wanted = wanted;
        let mut actions = Vec::new();
        for peer in gone {
            actions.extend(self.close(peer, true));
        }
        for p in peers {
            if p.offerer && !self.links.contains_key(&p.user_id) {
                actions.push(self.open_offer(p.user_id, now));
            }
        }
        actions
    }

    /// A signal from `from`.
    pub fn on_signal(&mut self, from: UserId, payload: SignalPayload, now: Instant) -> Vec<Action> {
        let current = self.links.get(&from).map(|l| l.session);
        match payload {
            SignalPayload::Offer { sdp, session } => {
                // Offers come only from the offerer, for a peer in our list.
                if self.wanted.get(&from).is_none_or(|w| w.offerer) {
                    return Vec::new();
                }
                let session = session.unwrap_or_else(|| (self.sessions)());
                if self
                    .links
                    .get(&from)
                    .is_some_and(|l| l.session == session && l.retry_at.is_some())
                {
                    // That connection failed and is closed; we asked for a new one.
                    return Vec::new();
                }
                let mut actions = Vec::new();
                if current.is_some_and(|s| s != session) {
                    actions.extend(self.close(from, false));
                }
                let open = !self.links.contains_key(&from);
                if open {
                    self.links.insert(from, Link::new(session, false, now));
                }
                actions.push(Action::Answer {
                    peer: from,
                    session,
                    sdp,
                    open,
                });
                actions
            }
            SignalPayload::Answer { sdp, session } => match self.links.get_mut(&from) {
                Some(link)
                    if link.offerer
                        && !link.remote_set
                        && link.retry_at.is_none()
                        && session.is_none_or(|s| s == link.session) =>
                {
                    link.resend_at = None;
                    vec![Action::Accept {
                        peer: from,
                        session: link.session,
                        sdp,
                    }]
                }
                _ => Vec::new(),
            },
            SignalPayload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
                session,
            } => {
                let Some(link) = self.links.get_mut(&from) else {
                    return Vec::new();
                };
                if session.is_some_and(|s| s != link.session) || link.retry_at.is_some() {
                    return Vec::new();
                }
                let candidate = RemoteCandidate {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                };
                if link.remote_set {
                    return vec![Action::Candidate {
                        peer: from,
                        session: link.session,
                        candidate,
                    }];
                }
                if link.pending.len() < MAX_PENDING_CANDIDATES {
                    link.pending.push(candidate);
                }
                Vec::new()
            }
            SignalPayload::EndOfCandidates { .. } => Vec::new(),
            SignalPayload::Bye { session } => {
                // A peer still in our list will be offered to again; its bye
                // is from an earlier link that crossed the new list.
                if self.wanted.contains_key(&from) || session.is_some_and(|s| Some(s) != current) {
                    return Vec::new();
                }
                self.close(from, false)
            }
            SignalPayload::IceRestart { session } => match self.links.get_mut(&from) {
                Some(link)
                    if link.offerer
                        && link.connected_at.is_some()
                        && session.is_none_or(|s| s == link.session) =>
                {
                    match Self::restart_ice(link, from, now) {
                        Some(restart) => vec![restart],
                        // Ours is under way but unanswered: the peer has not
                        // seen it (it asks after reconnecting), so at once.
                        None if link.restart_at.is_some() && !link.remote_set => {
                            link.resend_at = Some(now + RESTART_RESEND);
                            vec![Action::ResendOffer {
                                peer: from,
                                session: link.session,
                            }]
                        }
                        None => Vec::new(),
                    }
                }
                _ => Vec::new(),
            },
            SignalPayload::Restart { session } => match self.links.get(&from) {
                Some(link) if link.offerer && session.is_none_or(|s| s == link.session) => {
                    self.fail(from, now)
                }
                _ => Vec::new(),
            },
        }
    }

    /// The connection for `session` has its remote description: the
    /// candidates that waited for it can go in.
    pub fn described(&mut self, peer: UserId, session: u64) -> Vec<Action> {
        let Some(link) = self.link_mut(peer, session) else {
            return Vec::new();
        };
        link.remote_set = true;
        link.pending
            .drain(..)
            .map(|candidate| Action::Candidate {
                peer,
                session,
                candidate,
            })
            .collect()
    }

    /// A step the manager took for `session` failed (opening, offering,
    /// answering): start over.
    pub fn failed(&mut self, peer: UserId, session: u64, now: Instant) -> Vec<Action> {
        if self.link_mut(peer, session).is_none() {
            return Vec::new();
        }
        self.fail(peer, now)
    }

    /// The connection for `session` changed state.
    pub fn on_state(
        &mut self,
        peer: UserId,
        session: u64,
        state: LinkState,
        now: Instant,
    ) -> Vec<Action> {
        let Some(link) = self.link_mut(peer, session) else {
            return Vec::new();
        };
        if link.retry_at.is_some() {
            // Closing a failed connection reports it closed; it stays "retrying".
            return Vec::new();
        }
        link.state = state;
        match state {
            LinkState::Connected => {
                link.connected_at.get_or_insert(now);
                link.restart_at = None;
                link.resend_at = None;
                if let Some(w) = self.wanted.get_mut(&peer) {
                    w.attempts = 0;
                }
                vec![Action::Event(RtcEvent::Connected(peer))]
            }
            LinkState::Failed => self.fail(peer, now),
            // The path broke: the offerer restarts ICE (once at a time); the
            // answerer asks it to (the break may be one way), and answers
            // that offer like any other.
            LinkState::Disconnected if link.offerer && link.connected_at.is_some() => {
                let mut actions = vec![Action::ProbeSignaling];
                actions.extend(Self::restart_ice(link, peer, now));
                actions
            }
            LinkState::Disconnected if link.connected_at.is_some() => {
                vec![
                    Action::ProbeSignaling,
                    Action::AskIceRestart { peer, session },
                ]
            }
            _ => Vec::new(),
        }
    }

    /// Starts an ICE restart of `link` (ours to offer) unless one is going on.
    fn restart_ice(link: &mut Link, peer: UserId, now: Instant) -> Option<Action> {
        if link.restart_at.is_some() || link.retry_at.is_some() {
            return None;
        }
        link.restart_at = Some(now);
        link.resend_at = Some(now + RESTART_RESEND);
        link.restarts = link.restarts.saturating_add(1);
        // The answer to come is a new remote description.
        link.remote_set = false;
        Some(Action::IceRestart {
            peer,
            session: link.session,
        })
    }

    /// The WebSocket session is back (a `welcome` after a reconnect): what
    /// was sent into the dead one is lost. An unanswered restart offer goes
    /// again now, and a broken link we answer asks for its restart again.
    pub fn resumed(&mut self, now: Instant) -> Vec<Action> {
        let mut ids: Vec<UserId> = self.links.keys().copied().collect();
        ids.sort_unstable();
        let mut actions = Vec::new();
        for peer in ids {
            let Some(link) = self.links.get_mut(&peer) else {
                continue;
            };
            let session = link.session;
            if link.retry_at.is_some() || link.connected_at.is_none() {
                continue;
            }
            if link.offerer && link.restart_at.is_some() && !link.remote_set {
                link.resend_at = Some(now + RESTART_RESEND);
                actions.push(Action::ResendOffer { peer, session });
            } else if !link.offerer && link.state == LinkState::Disconnected {
                actions.push(Action::AskIceRestart { peer, session });
            }
        }
        actions
    }

    /// The connection for `session` selected a candidate pair.
    pub fn on_route(&mut self, peer: UserId, session: u64, route: Route) {
        if let Some(link) = self.link_mut(peer, session) {
            link.route = Some(route);
        }
    }

    /// When [`LinkTable::handle_timeout`] has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .filter_map(|l| l.deadline(&self.timing))
            .min()
    }

    /// Starts over connections that did not connect in time, and retries
    /// whose backoff is over.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut stuck = Vec::new();
        let mut due = Vec::new();
        let mut actions = Vec::new();
        let mut resend: Vec<(UserId, u64)> = Vec::new();
        for (&id, link) in &mut self.links {
            if link.resend_at.is_some_and(|at| now >= at) {
                link.resend_at = Some(now + RESTART_RESEND);
                resend.push((id, link.session));
            }
        }
        resend.sort_unstable();
        for (peer, session) in resend {
            actions.push(Action::ResendOffer { peer, session });
        }
        for (&id, link) in &self.links {
            match link.retry_at {
                Some(at) if now >= at => due.push(id),
                None if link.connected_at.is_none()
                    && now.duration_since(link.created) >= self.timing.connect_timeout =>
                {
                    stuck.push(id);
                }
                None if link
                    .restart_at
                    .is_some_and(|at| now.duration_since(at) >= self.timing.connect_timeout) =>
                {
                    stuck.push(id);
                }
                _ => {}
            }
        }
        stuck.sort_unstable();
        due.sort_unstable();
        for id in stuck {
            actions.extend(self.fail(id, now));
        }
        for id in due {
            let offerer = self.links.remove(&id).is_some_and(|l| l.offerer);
            if offerer && self.wanted.contains_key(&id) {
                actions.push(self.open_offer(id, now));
            }
        }
        actions
    }

    /// Hangs up on everyone and forgets the list (the session ended).
    pub fn close_all(&mut self) -> Vec<Action> {
        self.wanted.clear();
        let mut ids: Vec<UserId> = self.links.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .flat_map(|id| self.close(id, false))
            .collect()
    }

    /// Every link as the UI and reports see it.
    pub fn info(&self) -> HashMap<UserId, LinkInfo> {
        self.links
            .iter()
            .map(|(&id, l)| {
                let wanted = self.wanted.get(&id);
                let info = LinkInfo {
                    session: l.session,
                    offerer: l.offerer,
                    state: if l.retry_at.is_some() {
                        LinkState::Retrying
                    } else {
                        l.state
                    },
                    linked_at: wanted.map_or(l.created, |w| w.since),
                    connected_at: l.connected_at,
                    attempts: wanted.map_or(0, |w| w.attempts),
                    route: l.route,
                    ice_restarts: l.restarts,
                };
                (id, info)
            })
            .collect()
    }

    /// How many connections are up now.
    pub fn connected(&self) -> usize {
        self.links
            .values()
            .filter(|l| l.state == LinkState::Connected && l.retry_at.is_none())
            .count()
    }

    fn link_mut(&mut self, peer: UserId, session: u64) -> Option<&mut Link> {
        self.links.get_mut(&peer).filter(|l| l.session == session)
    }

    fn open_offer(&mut self, peer: UserId, now: Instant) -> Action {
        let session = (self.sessions)();
        self.links.insert(peer, Link::new(session, true, now));
        Action::Offer { peer, session }
    }

    fn close(&mut self, peer: UserId, bye: bool) -> Vec<Action> {
        match self.links.remove(&peer) {
            Some(link) => vec![
                Action::Close {
                    peer,
                    session: link.session,
                    bye,
                },
                Action::Event(RtcEvent::Closed(peer)),
            ],
            None => Vec::new(),
        }
    }

    fn fail(&mut self, peer: UserId, now: Instant) -> Vec<Action> {
        let attempts = self
            .wanted
            .get(&peer)
            .map_or(0, |w| w.attempts)
            .saturating_add(1);
        let Some(link) = self.links.get_mut(&peer).filter(|l| l.retry_at.is_none()) else {
            return Vec::new();
        };
        if let Some(w) = self.wanted.get_mut(&peer) {
            w.attempts = attempts;
        }
        link.retry_at = Some(now + (self.timing.backoff)(attempts));
        link.resend_at = None;
        vec![
            Action::Event(RtcEvent::Failed(peer)),
            Action::Drop {
                peer,
                session: link.session,
                restart: !link.offerer,
            },
        ]
    }
}

#[cfg(test)]
mod tests;
