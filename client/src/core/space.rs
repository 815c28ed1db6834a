//! What a client knows about its space, updated by applying server messages
//! in order. Pure data: the app and the bot read it and react to the
//! [`Change`]s that [`SpaceState::apply`] reports.

use hallway_shared::protocol::{IceServer, Member, Peer, ServerMessage, SpaceInfo, SpaceRules};
use hallway_shared::{TilePos, UserId};
use std::collections::HashMap;

/// What changed in the space after one server message.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new `welcome`: everything was replaced.
    Welcomed,
    Joined(UserId),
    Left(UserId),
    Moved(UserId),
    Updated(UserId),
    /// The peer list changed.
    Peers,
    /// The server refused our step and put us back.
    Corrected(TilePos),
}

#[derive(Clone, Debug, Default)]
pub struct SpaceState {
    pub me: Option<UserId>,
    pub space: Option<SpaceInfo>,
    pub rules: Option<SpaceRules>,
    pub ice_servers: Vec<IceServer>,
    /// Everyone in the space, including me.
    pub members: HashMap<UserId, Member>,
    pub peers: Vec<Peer>,
}

impl SpaceState {
    pub fn is_peer(&self, user: UserId) -> bool {
        self.peers.iter().any(|p| p.user_id == user)
    }

    pub fn my_member(&self) -> Option<&Member> {
        self.me.and_then(|me| self.members.get(&me))
    }

    /// Applies one server message; returns what changed.
    pub fn apply(&mut self, msg: &ServerMessage) -> Vec<Change> {
        let mut changes = Vec::new();
        match msg {
            ServerMessage::Welcome {
                you,
                space,
                members,
                rules,
                ice_servers,
                ..
            } => {
                let same_space = self.space.as_ref().is_some_and(|s| s.id == space.id);
                self.me = Some(you.user_id);
                self.space = Some(space.clone());
                self.rules = Some(*rules);
                self.ice_servers.clone_from(ice_servers);
                self.members = members.iter().map(|m| (m.user_id, m.clone())).collect();
                self.members.insert(you.user_id, you.clone());
                if !same_space {
                    self.peers.clear();
                }
                changes.push(Change::Welcomed);
            }
            ServerMessage::Presence {
                joined,
                moved,
                updated,
                left,
            } => {
                for m in joined {
                    let new = self.members.insert(m.user_id, m.clone()).is_none();
                    changes.push(if new {
                        Change::Joined(m.user_id)
                    } else {
                        Change::Updated(m.user_id)
                    });
                }
                for m in updated {
                    if let Some(member) = self.members.get_mut(&m.user_id) {
                        member.display_name.clone_from(&m.display_name);
                        member.status = m.status;
                        member.status_text.clone_from(&m.status_text);
                        changes.push(Change::Updated(m.user_id));
                    }
                }
                for mv in moved {
                    if let Some(member) = self.members.get_mut(&mv.user_id) {
                        member.x = mv.x;
                        member.y = mv.y;
                        member.facing = mv.facing;
                        changes.push(Change::Moved(mv.user_id));
                    }
                }
                for user in left {
                    if self.members.remove(user).is_some() {
                        changes.push(Change::Left(*user));
                    }
                }
            }
            ServerMessage::Proximity { peers } => {
                self.peers.clone_from(peers);
                changes.push(Change::Peers);
            }
            ServerMessage::IceServers { ice_servers } => {
                self.ice_servers.clone_from(ice_servers);
            }
            ServerMessage::MoveRejected { x, y, facing, .. } => {
                if let Some(me) = self.me.and_then(|me| self.members.get_mut(&me)) {
                    me.x = *x;
                    me.y = *y;
                    me.facing = *facing;
                }
                changes.push(Change::Corrected(TilePos::new(*x, *y)));
            }
            _ => {}
        }
        changes
    }

    /// Forgets the space (after `leave`, or when the session ends).
    pub fn clear(&mut self) {
        *self = SpaceState::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallway_shared::protocol::{Moved, Status};
    use hallway_shared::proximity::ProximityConfig;
    use hallway_shared::{Facing, SpaceId};

    fn member(id: i64, x: i32) -> Member {
        Member {
            user_id: UserId(id),
            display_name: format!("u{id}"),
            x,
            y: 0,
            facing: Facing::Down,
            status: Status::Available,
            status_text: None,
        }
    }

    fn welcome(space: i64) -> ServerMessage {
        ServerMessage::Welcome {
            protocol: 1,
            you: member(1, 0),
            space: SpaceInfo {
                id: SpaceId(space),
                name: "Office".into(),
                private: false,
                invite_code: None,
                map: "office".into(),
                online: 2,
            },
            members: vec![member(1, 0), member(2, 3)],
            rules: SpaceRules {
                proximity: ProximityConfig::default(),
                max_steps_per_second: 8.0,
                step_burst: 4.0,
            },
            ice_servers: vec![],
        }
    }

    #[test]
    fn presence_joins_moves_and_leaves() {
        let mut s = SpaceState::default();
        assert_eq!(s.apply(&welcome(1)), vec![Change::Welcomed]);
        assert_eq!(s.members.len(), 2);
        let changes = s.apply(&ServerMessage::Presence {
            joined: vec![member(3, 5), member(2, 3)],
            moved: vec![Moved {
                user_id: UserId(2),
                x: 4,
                y: 1,
                facing: Facing::Left,
            }],
            updated: vec![],
            left: vec![UserId(3)],
        });
        assert_eq!(
            changes,
            vec![
                Change::Joined(UserId(3)),
                Change::Updated(UserId(2)),
                Change::Moved(UserId(2)),
                Change::Left(UserId(3)),
            ]
        );
        assert_eq!(s.members[&UserId(2)].x, 4);
        assert!(!s.members.contains_key(&UserId(3)));
    }

    #[test]
    fn peers_survive_a_rejoin_of_the_same_space_only() {
        let mut s = SpaceState::default();
        s.apply(&welcome(1));
        s.apply(&ServerMessage::Proximity {
            peers: vec![Peer {
                user_id: UserId(2),
                offerer: true,
            }],
        });
        s.apply(&welcome(1));
        assert!(s.is_peer(UserId(2)));
        s.apply(&welcome(7));
        assert!(s.peers.is_empty());
    }
}
