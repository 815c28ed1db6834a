//! The space actor: the only owner of a space's live state. It validates moves,
//! keeps the proximity graph, relays signaling between peers, and batches
//! presence into one frame per tick shared by every member.
//!
//! The actor supervises itself: every command and tick runs under
//! `catch_unwind`, and a panic restarts the space (see [`SpaceActor::restart`])
//! instead of leaving its members without answers. This needs `panic = "unwind"`
//! (the default) in every profile that builds the server.

use super::Joiner;
use crate::config::Config;
use crate::outbox::{CLOSE_REPLACED, CLOSE_RESTARTED, ConnId, Outbox, encode};
use crate::rate::TokenBucket;
use crate::relay::IceServers;
use axum::extract::ws::Utf8Bytes;
use hallway_shared::protocol::{
    ErrorCode, Member, MoveRejection, Moved, PROTOCOL_VERSION, Peer, ServerMessage, SpaceInfo,
    SpaceRules, Status,
};
use hallway_shared::proximity::{GraphChanges, PeerGraph, Spot, is_offerer};
use hallway_shared::{Facing, MapModel, TilePos, UserId};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub enum Command {
    Join {
        joiner: Joiner,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    Leave {
        user: UserId,
        conn: ConnId,
        /// Answered once the user is out: nothing from this space reaches the
        /// connection after that.
        done: oneshot::Sender<()>,
    },
    Move {
        user: UserId,
        conn: ConnId,
        x: i32,
        y: i32,
        facing: Facing,
    },
    Signal {
        from: UserId,
        conn: ConnId,
        to: UserId,
        payload: serde_json::Value,
    },
    Update {
        user: UserId,
        display_name: Option<String>,
        status: Option<(Status, Option<String>)>,
    },
    Broadcast {
        frame: Utf8Bytes,
    },
    Members {
        reply: oneshot::Sender<Vec<Member>>,
    },
    /// Panics inside the actor, to test its supervision.
    #[cfg(test)]
    Panic,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("the space has stopped")]
    Stopped,
}

struct Present {
    member: Member,
    outbox: Outbox,
    instance: Option<u64>,
    steps: TokenBucket,
}

#[derive(Default)]
struct PendingPresence {
    joined: Vec<Member>,
    moved: HashMap<UserId, Moved>,
    updated: Vec<Member>,
    left: Vec<UserId>,
}

impl PendingPresence {
    fn is_empty(&self) -> bool {
        self.joined.is_empty()
            && self.moved.is_empty()
            && self.updated.is_empty()
            && self.left.is_empty()
    }
}

pub struct SpaceActor {
    info: SpaceInfo,
    map: Arc<MapModel>,
    rules: SpaceRules,
    ice: IceServers,
    tick: Duration,
    grace: Duration,
    members: HashMap<UserId, Present>,
    graph: PeerGraph,
    /// Pairs unlinked recently, for the signaling grace period.
    unlinked: HashMap<(UserId, UserId), Instant>,
    /// Where people stood when they left, so a rejoin puts them back.
    last_positions: HashMap<UserId, (TilePos, Facing)>,
    pending: PendingPresence,
    next_spawn: usize,
    online: Arc<AtomicUsize>,
}

impl SpaceActor {
    pub fn new(
        info: SpaceInfo,
        map: Arc<MapModel>,
        rules: SpaceRules,
        config: &Config,
        ice: IceServers,
        online: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            info,
            map,
            rules,
            ice,
            tick: config.tick,
            grace: Duration::from_millis(rules.proximity.signal_grace_ms),
            members: HashMap::new(),
            graph: PeerGraph::new(rules.proximity),
            unlinked: HashMap::new(),
            last_positions: HashMap::new(),
            pending: PendingPresence::default(),
            next_spawn: 0,
            online,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.guarded(|actor| actor.handle(cmd)),
                    None => break,
                },
                _ = tick.tick() => self.guarded(Self::flush),
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!(space = %self.info.id, "space actor stopped");
    }

    /// Runs one step; if it panics, logs the panic and restarts the space.
    fn guarded(&mut self, step: impl FnOnce(&mut Self)) {
        let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(|| step(self))) else {
            return;
        };
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        tracing::error!(
            space = %self.info.id,
            members = self.members.len(),
            "space actor panicked: {what}; restarting the space"
        );
        self.restart();
    }

    /// Starts the space afresh after a panic: whatever the panic left half done
    /// is dropped with the live state. Every member is told why and their
    /// connection is closed with 1012, which makes clients reconnect and join
    /// again; they come back where they stood.
    fn restart(&mut self) {
        for (user, present) in std::mem::take(&mut self.members) {
            let member = &present.member;
            self.last_positions
                .insert(user, (TilePos::new(member.x, member.y), member.facing));
            present.outbox.send_msg(&ServerMessage::Error {
                code: ErrorCode::Unavailable,
                message: "the space restarted after an internal error; join again".into(),
                client_msg_id: None,
            });
            present.outbox.close(CLOSE_RESTARTED);
        }
        self.graph = PeerGraph::new(self.rules.proximity);
        self.unlinked.clear();
        self.pending = PendingPresence::default();
        self.online.store(0, Ordering::Relaxed);
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Join { joiner, reply } => {
                self.join(joiner);
                let _ = reply.send(Ok(()));
            }
            Command::Leave { user, conn, done } => {
                self.leave(user, conn);
                let _ = done.send(());
            }
            Command::Move {
                user,
                conn,
                x,
                y,
                facing,
            } => self.step(user, conn, TilePos::new(x, y), facing),
            Command::Signal {
                from,
                conn,
                to,
                payload,
            } => self.signal(from, conn, to, payload),
            Command::Update {
                user,
                display_name,
                status,
            } => self.update(user, display_name, status),
            Command::Broadcast { frame } => {
                for p in self.members.values() {
                    p.outbox.send(frame.clone());
                }
            }
            Command::Members { reply } => {
                let _ = reply.send(self.member_list());
            }
            #[cfg(test)]
            Command::Panic => panic!("injected panic"),
        }
    }

    fn member_list(&self) -> Vec<Member> {
        let mut list: Vec<Member> = self.members.values().map(|p| p.member.clone()).collect();
        list.sort_by_key(|m| m.user_id);
        list
    }

    fn spot(&self, pos: TilePos) -> Spot {
        Spot::new(pos, self.map.zone_at(pos))
    }

    /// Where a newcomer appears: where they left (if the server remembers),
    /// else where they ask to be, else the next spawn point.
    fn spawn_point(&mut self, user: UserId, asked: Option<TilePos>) -> (TilePos, Facing) {
        if let Some(&(pos, facing)) = self.last_positions.get(&user)
            && self.map.is_walkable(pos)
        {
            return (pos, facing);
        }
        if let Some(pos) = asked.filter(|p| self.map.is_walkable(*p)) {
            return (pos, Facing::Down);
        }
        // A valid map has spawns (maps.rs checks); the origin is a last resort.
        let spawns = &self.map.spawns;
        let pos = spawns
            .get(self.next_spawn % spawns.len().max(1))
            .copied()
            .unwrap_or(TilePos::new(0, 0));
        self.next_spawn = self.next_spawn.wrapping_add(1);
        (pos, Facing::Down)
    }

    fn join(&mut self, joiner: Joiner) {
        let user = joiner.user_id;
        if let Some(present) = self.members.get_mut(&user) {
            let refreshed = present.member.display_name != joiner.display_name
                || present.member.status != joiner.status
                || present.member.status_text != joiner.status_text;
            present.member.display_name = joiner.display_name;
            present.member.status = joiner.status;
            present.member.status_text = joiner.status_text;
            let member = present.member.clone();
            if refreshed {
                self.pending.updated.retain(|m| m.user_id != user);
                self.pending.updated.push(member.clone());
            }
            if present.outbox.conn == joiner.outbox.conn {
                // Joining again where you are: just the current state again.
                self.welcome(user);
                self.send_proximity(user);
                return;
            }
            if joiner.instance.is_some() && joiner.instance == present.instance {
                // The same client on a new connection (its old one died, e.g.
                // with its network): it keeps its place and its peers keep
                // their calls. The old connection, if it still lives, ends.
                let old = std::mem::replace(&mut present.outbox, joiner.outbox);
                old.close(CLOSE_REPLACED);
                self.welcome(user);
                self.send_proximity(user);
                return;
            }
            // The same user from another connection takes over. The new
            // connection is a new WebRTC endpoint, so the user leaves the graph
            // (peers and the old connection get their new lists) and comes
            // back on the new connection.
            let removed = self.graph.remove(user);
            self.apply(&removed);
            let Some(present) = self.members.get_mut(&user) else {
                return;
            };
            let old = std::mem::replace(&mut present.outbox, joiner.outbox);
            present.instance = joiner.instance;
            old.send_msg(&ServerMessage::Error {
                code: ErrorCode::SessionReplaced,
                message: "you joined this space from another connection".into(),
                client_msg_id: None,
            });
            old.close(CLOSE_REPLACED);
            self.welcome(user);
            let spot = self.spot(TilePos::new(member.x, member.y));
            let added = self.graph.upsert(user, spot);
            self.apply(&added);
            return;
        }
        let (pos, facing) = self.spawn_point(user, joiner.at);
        let member = Member {
            user_id: user,
            display_name: joiner.display_name,
            x: pos.x,
            y: pos.y,
            facing,
            status: joiner.status,
            status_text: joiner.status_text,
        };
        self.pending.left.retain(|&u| u != user);
        self.pending.joined.push(member.clone());
        self.members.insert(
            user,
            Present {
                member,
                outbox: joiner.outbox,
                instance: joiner.instance,
                steps: TokenBucket::new(
                    f64::from(self.rules.max_steps_per_second),
                    f64::from(self.rules.step_burst.max(1.0)),
                ),
            },
        );
        self.online.store(self.members.len(), Ordering::Relaxed);
        self.welcome(user);
        let changes = self.graph.upsert(user, self.spot(pos));
        self.apply(&changes);
    }

    fn welcome(&self, user: UserId) {
        let Some(present) = self.members.get(&user) else {
            return;
        };
        let mut space = self.info.clone();
        space.online = self.members.len();
        present.outbox.send_msg(&ServerMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            you: present.member.clone(),
            space,
            members: self.member_list(),
            rules: self.rules,
            ice_servers: self.ice.for_user(user),
        });
    }

    fn leave(&mut self, user: UserId, conn: ConnId) {
        let Some(present) = self.members.get(&user) else {
            return;
        };
        if present.outbox.conn != conn {
            return; // a replaced connection going away
        }
        // Tell the leaver its peer list is now empty, so it closes its calls.
        present
            .outbox
            .send_msg(&ServerMessage::Proximity { peers: Vec::new() });
        let Some(present) = self.members.remove(&user) else {
            return;
        };
        self.online.store(self.members.len(), Ordering::Relaxed);
        self.last_positions.insert(
            user,
            (
                TilePos::new(present.member.x, present.member.y),
                present.member.facing,
            ),
        );
        self.pending.joined.retain(|m| m.user_id != user);
        self.pending.updated.retain(|m| m.user_id != user);
        self.pending.moved.remove(&user);
        self.pending.left.push(user);
        let changes = self.graph.remove(user);
        self.apply(&changes);
    }

    fn step(&mut self, user: UserId, conn: ConnId, to: TilePos, facing: Facing) {
        let map = Arc::clone(&self.map);
        let Some(present) = self.members.get_mut(&user) else {
            return;
        };
        if present.outbox.conn != conn {
            return;
        }
        let from = TilePos::new(present.member.x, present.member.y);
        if to == from && facing == present.member.facing {
            return;
        }
        let rejection = if from.manhattan(to) > 1 {
            Some(MoveRejection::TooFar)
        } else if !map.is_walkable(to) {
            Some(MoveRejection::Blocked)
        } else if !present.steps.try_take() {
            Some(MoveRejection::TooFast)
        } else {
            None
        };
        if let Some(reason) = rejection {
            present.outbox.send_msg(&ServerMessage::MoveRejected {
                x: from.x,
                y: from.y,
                facing: present.member.facing,
                reason,
            });
            return;
        }
        present.member.x = to.x;
        present.member.y = to.y;
        present.member.facing = facing;
        self.pending.moved.insert(
            user,
            Moved {
                user_id: user,
                x: to.x,
                y: to.y,
                facing,
            },
        );
        if to != from {
            let changes = self.graph.upsert(user, self.spot(to));
            self.apply(&changes);
        }
    }

    fn signal(&mut self, from: UserId, conn: ConnId, to: UserId, payload: serde_json::Value) {
        let Some(sender) = self.members.get(&from) else {
            return;
        };
        if sender.outbox.conn != conn {
            return;
        }
        let pair = if from < to { (from, to) } else { (to, from) };
        let allowed = self.graph.are_linked(from, to)
            || self
                .unlinked
                .get(&pair)
                .is_some_and(|t| t.elapsed() <= self.grace);
        match self.members.get(&to) {
            Some(target) if allowed => {
                target
                    .outbox
                    .send_msg(&ServerMessage::Signal { from, payload });
            }
            _ => {
                sender.outbox.send_msg(&ServerMessage::Error {
                    code: ErrorCode::NotPeer,
                    message: format!("user {to} is not your peer"),
                    client_msg_id: None,
                });
            }
        }
    }

    fn update(
        &mut self,
        user: UserId,
        display_name: Option<String>,
        status: Option<(Status, Option<String>)>,
    ) {
        let Some(present) = self.members.get_mut(&user) else {
            return;
        };
        if let Some(name) = display_name {
            present.member.display_name = name;
        }
        if let Some((status, text)) = status {
            present.member.status = status;
            present.member.status_text = text;
        }
        let member = present.member.clone();
        self.pending.updated.retain(|m| m.user_id != user);
        self.pending.updated.push(member);
    }

    /// Records unlink times for the grace period and tells everyone affected
    /// their new peer list.
    fn apply(&mut self, changes: &GraphChanges) {
        let now = Instant::now();
        for pair in &changes.removed {
            self.unlinked.insert(*pair, now);
        }
        for pair in &changes.added {
            self.unlinked.remove(pair);
        }
        for user in changes.affected() {
            self.send_proximity(user);
        }
    }

    fn send_proximity(&self, user: UserId) {
        let Some(present) = self.members.get(&user) else {
            return;
        };
        let peers = self
            .graph
            .peers(user)
            .iter()
            .map(|&p| Peer {
                user_id: p,
                offerer: is_offerer(user, p),
            })
            .collect();
        present.outbox.send_msg(&ServerMessage::Proximity { peers });
    }

    /// Sends the tick's presence batch, encoded once, to everyone.
    fn flush(&mut self) {
        let grace = self.grace;
        self.unlinked.retain(|_, t| t.elapsed() <= grace);
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut moved: Vec<Moved> = pending.moved.into_values().collect();
        moved.sort_by_key(|m| m.user_id);
        let frame = encode(&ServerMessage::Presence {
            joined: pending.joined,
            moved,
            updated: pending.updated,
            left: pending.left,
        });
        for p in self.members.values() {
            p.outbox.send(frame.clone());
        }
    }
}

#[cfg(test)]
mod tests;
