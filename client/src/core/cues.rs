//! When Hallway plays a sound. Pure logic over the message stream, with the
//! clock passed in: feed it every server message after the space and chat
//! state have taken it, and play the [`Cue`] it returns.
//!
//! - [`Cue::Joined`] / [`Cue::Left`]: someone came into or went out of your
//!   conversation (your peer list grew or shrank).
//! - [`Cue::Message`]: a direct message, or a mention (`@Your Name`) in a
//!   channel, from someone else. Not while your status is busy (do not
//!   disturb), as in Gather.
//! - [`Cue::Room`]: you walked into a meeting room.
//!
//! A `welcome` sets the scene without a sound (a reconnect is not news), and
//! at most one sound plays per [`QUIET`]: walking into a meeting room joins
//! everyone inside a moment later, and that should be one chime, not two.

use super::chat::ChatState;
use super::space::SpaceState;
use hallway_shared::map::MapModel;
use hallway_shared::protocol::{ChannelKind, ServerMessage, Status};
use hallway_shared::{MessageId, TilePos, UserId, ZoneId};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The shortest time between two sounds.
pub const QUIET: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cue {
    Joined,
    Left,
    Message,
    Room,
}

#[derive(Debug, Default)]
pub struct Cues {
    peers: BTreeSet<UserId>,
    zone: Option<ZoneId>,
    /// The newest message already considered (a message seen again after a
    /// reconnect does not chime twice).
    newest: Option<MessageId>,
    last: Option<Instant>,
}

impl Cues {
    pub fn new() -> Cues {
        Cues::default()
    }

    /// What `msg`, already applied to `space` and `chat`, should sound like.
    pub fn on_message(
        &mut self,
        msg: &ServerMessage,
        space: &SpaceState,
        chat: &ChatState,
        map: Option<&MapModel>,
        now: Instant,
    ) -> Option<Cue> {
        let cue = match msg {
            ServerMessage::Welcome { .. } => {
                self.peers = space.peers.iter().map(|p| p.user_id).collect();
                self.zone = my_zone(space, map);
                None
            }
            ServerMessage::Proximity { peers } => {
                let now_peers: BTreeSet<UserId> = peers.iter().map(|p| p.user_id).collect();
                let joined = now_peers.difference(&self.peers).next().is_some();
                let left = self.peers.difference(&now_peers).next().is_some();
                self.peers = now_peers;
                if joined {
                    Some(Cue::Joined)
                } else if left {
                    Some(Cue::Left)
                } else {
                    None
                }
            }
            ServerMessage::Presence { .. } | ServerMessage::MoveRejected { .. } => {
                let zone = my_zone(space, map);
                let entered = zone.is_some() && zone != self.zone && is_meeting(map, zone);
                self.zone = zone;
                entered.then_some(Cue::Room)
            }
            ServerMessage::ChatMessage { message } => {
                if self.newest.is_some_and(|n| message.id <= n) {
                    return None;
                }
                self.newest = Some(message.id);
                let me = space.my_member()?;
                let mine = message.author_id == me.user_id;
                let busy = me.status == Status::Busy;
                // A channel the client has not listed is a direct channel
                // someone just opened (space channels are listed on entry).
                let direct = chat
                    .channels
                    .get(&message.channel_id)
                    .is_none_or(|c| c.info.kind == ChannelKind::Direct);
                let wanted = direct || mentions(&message.body, &me.display_name);
                (!mine && !busy && wanted).then_some(Cue::Message)
            }
            _ => None,
        }?;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < QUIET)
        {
            return None;
        }
        self.last = Some(now);
        Some(cue)
    }
}

fn my_zone(space: &SpaceState, map: Option<&MapModel>) -> Option<ZoneId> {
    let me = space.my_member()?;
    map?.zone_at(TilePos::new(me.x, me.y))
}

fn is_meeting(map: Option<&MapModel>, zone: Option<ZoneId>) -> bool {
    map.zip(zone)
        .and_then(|(m, z)| m.zone(z))
        .is_some_and(|z| z.kind == "meeting")
}

/// Whether `body` mentions `name`: `@` and the name, any case, not followed
/// by a letter or digit (so `@Ann` is not a mention of `An`).
pub fn mentions(body: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let body = body.to_lowercase();
    let want = format!("@{}", name.to_lowercase());
    body.match_indices(&want).any(|(at, m)| {
        body.get(at + m.len()..)
            .and_then(|rest| rest.chars().next())
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallway_shared::map::Zone;
    use hallway_shared::protocol::{
        ChannelInfo, ChatMessage, Member, MessageKind, Moved, PROTOCOL_VERSION, Peer, SpaceInfo,
        SpaceRules,
    };
    use hallway_shared::proximity::ProximityConfig;
    use hallway_shared::{ChannelId, Facing, SpaceId};

    const ME: UserId = UserId(1);

    fn member(id: UserId, x: i32, y: i32) -> Member {
        Member {
            user_id: id,
            display_name: if id == ME { "Ann Lee" } else { "Bo" }.into(),
            x,
            y,
            facing: Facing::Down,
            status: Status::Available,
            status_text: None,
        }
    }

    fn map() -> MapModel {
        MapModel {
            name: "test".into(),
            width: 20,
            height: 20,
            tile_width: 32,
            tile_height: 32,
            layers: Vec::new(),
            tilesets: Vec::new(),
            blocked: vec![false; 400],
            zones: vec![Zone {
                id: ZoneId(0),
                name: "Room A".into(),
                kind: "meeting".into(),
                x: 10,
                y: 10,
                width: 5,
                height: 5,
            }],
            spawns: vec![TilePos::new(1, 1)],
        }
    }

    struct World {
        space: SpaceState,
        chat: ChatState,
        map: MapModel,
        cues: Cues,
        t: Instant,
    }

    impl World {
        fn new() -> World {
            let mut w = World {
                space: SpaceState::default(),
                chat: ChatState::new(),
                map: map(),
                cues: Cues::new(),
                t: Instant::now(),
            };
            let welcome = ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: member(ME, 1, 1),
                space: SpaceInfo {
                    id: SpaceId(1),
                    name: "Office".into(),
                    private: false,
                    invite_code: None,
                    map: "office".into(),
                    online: 1,
                },
                members: vec![member(ME, 1, 1), member(UserId(2), 3, 1)],
                rules: SpaceRules {
                    proximity: ProximityConfig::default(),
                    max_steps_per_second: 8.0,
                    step_burst: 4.0,
                },
                ice_servers: Vec::new(),
            };
            assert_eq!(w.feed(welcome), None);
            w.chat.set_channels([ChannelInfo {
                id: ChannelId(10),
                kind: ChannelKind::Space,
                space_id: Some(SpaceId(1)),
                name: "general".into(),
                members: Vec::new(),
                last_message_id: None,
            }]);
            w
        }

        /// Applies `msg` 2 s after the last one (past the quiet time).
        fn feed(&mut self, msg: ServerMessage) -> Option<Cue> {
            self.t += Duration::from_secs(2);
            self.feed_now(msg)
        }

        fn feed_now(&mut self, msg: ServerMessage) -> Option<Cue> {
            self.space.apply(&msg);
            self.chat.apply(&msg, self.space.me);
            let map = Some(&self.map);
            self.cues
                .on_message(&msg, &self.space, &self.chat, map, self.t)
        }

        fn peers(&mut self, ids: &[i64]) -> Option<Cue> {
            self.feed(proximity(ids))
        }

        fn step_to(&mut self, x: i32, y: i32) -> Option<Cue> {
            self.feed(ServerMessage::Presence {
                joined: Vec::new(),
                moved: vec![Moved {
                    user_id: ME,
                    x,
                    y,
                    facing: Facing::Down,
                }],
                updated: Vec::new(),
                left: Vec::new(),
            })
        }

        fn says(&mut self, id: i64, channel: i64, author: UserId, body: &str) -> Option<Cue> {
            self.feed(ServerMessage::ChatMessage {
                message: ChatMessage {
                    id: MessageId(id),
                    channel_id: ChannelId(channel),
                    author_id: author,
                    author_name: "someone".into(),
                    kind: MessageKind::Text,
                    body: body.into(),
                    created_at: 0,
                },
            })
        }
    }

    fn proximity(ids: &[i64]) -> ServerMessage {
        ServerMessage::Proximity {
            peers: ids
                .iter()
                .map(|&id| Peer {
                    user_id: UserId(id),
                    offerer: true,
                })
                .collect(),
        }
    }

    #[test]
    fn the_conversation_chimes_when_it_grows_and_when_it_shrinks() {
        let mut w = World::new();
        assert_eq!(w.peers(&[2]), Some(Cue::Joined));
        assert_eq!(w.peers(&[2]), None, "the same list again");
        assert_eq!(w.peers(&[2, 3]), Some(Cue::Joined));
        // One left as another came: the arrival is the news.
        assert_eq!(w.peers(&[2, 4]), Some(Cue::Joined));
        assert_eq!(w.peers(&[4]), Some(Cue::Left));
        assert_eq!(w.peers(&[]), Some(Cue::Left));
    }

    #[test]
    fn entering_a_meeting_room_chimes_once() {
        let mut w = World::new();
        assert_eq!(w.step_to(9, 10), None);
        assert_eq!(w.step_to(10, 10), Some(Cue::Room));
        assert_eq!(w.step_to(11, 10), None, "walking inside the room");
        assert_eq!(w.step_to(9, 10), None, "leaving it");
        assert_eq!(w.step_to(10, 11), Some(Cue::Room), "coming back");
    }

    #[test]
    fn direct_messages_and_mentions_chime_but_not_my_own_or_when_busy() {
        let mut w = World::new();
        let bo = UserId(2);
        assert_eq!(w.says(1, 10, bo, "lunch anyone?"), None);
        assert_eq!(w.says(2, 10, bo, "@ann lee lunch?"), Some(Cue::Message));
        assert_eq!(w.says(3, 10, bo, "cc @Ann Leeds"), None, "another name");
        assert_eq!(w.says(4, 99, bo, "psst"), Some(Cue::Message), "a new DM");
        assert_eq!(w.says(4, 99, bo, "psst"), None, "seen again after a resume");
        assert_eq!(w.says(5, 99, ME, "hi"), None, "my own");
        let mut busy = member(ME, 1, 1);
        busy.status = Status::Busy;
        w.feed(ServerMessage::Presence {
            joined: Vec::new(),
            moved: Vec::new(),
            updated: vec![busy],
            left: Vec::new(),
        });
        assert_eq!(w.says(6, 99, bo, "still there?"), None, "busy");
    }

    #[test]
    fn one_sound_at_most_per_quiet_time() {
        let mut w = World::new();
        assert_eq!(w.step_to(10, 10), Some(Cue::Room));
        // The room's people join 200 ms later: no second chime.
        w.t += Duration::from_millis(200);
        assert_eq!(w.feed_now(proximity(&[2])), None);
        w.t += QUIET;
        assert_eq!(w.feed_now(proximity(&[])), Some(Cue::Left));
    }

    #[test]
    fn a_welcome_sets_the_scene_silently() {
        let mut w = World::new();
        w.peers(&[2]);
        // A resume brings the same peers again: no news.
        assert_eq!(w.peers(&[2]), None);
        assert!(mentions("hey @Bo!", "bo"));
        assert!(mentions("@Bo", "Bo"));
        assert!(!mentions("@Bob", "Bo"));
        assert!(!mentions("Bo", "Bo"));
        assert!(!mentions("@", ""));
    }
}
