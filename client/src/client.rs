//! The one message pump. Everything the WebSocket session delivers goes
//! through [`Client::absorb`], in order: server messages into the space and
//! chat state and on to the call, connection changes to the call. The desktop
//! app and the headless bot both drain their session through it, so what a
//! message does cannot differ between them; each only reacts to the
//! [`Update`]s it returns (the app with Bevy messages, the bot with its report).

use crate::call::Call;
use crate::core::chat::ChatState;
use crate::core::cues::{Cue, Cues};
use crate::core::net::{NetEvent, NetHandle};
use crate::core::space::{Change, SpaceState};
use hallway_shared::MapModel;
use hallway_shared::protocol::ServerMessage;
use std::sync::Arc;

/// What a client knows and runs for one session.
#[derive(Default)]
pub struct Client {
    pub space: SpaceState,
    pub chat: ChatState,
    /// The map of the space, once loaded (the call needs its zones).
    pub map: Option<Arc<MapModel>>,
    /// The proximity call, if voice and video are on.
    pub call: Option<Call>,
    /// When to play a sound; the call plays it.
    pub cues: Cues,
}

/// What one event did.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// The space changed (see [`SpaceState::apply`]).
    Space(Change),
    /// The connection changed: every event but a message.
    Connection(NetEvent),
    /// A notification sound was due (and played, if the call has sounds on).
    Cue(Cue),
}

impl Client {
    pub fn new() -> Client {
        Client {
            chat: ChatState::new(),
            ..Client::default()
        }
    }

    /// Applies one event from the session `net`; returns what changed. On a
    /// (re)join it resends the chat the server never acknowledged.
    pub fn absorb(&mut self, event: NetEvent, net: &NetHandle) -> Vec<Update> {
        let msg = match event {
            NetEvent::Message(msg) => msg,
            other => {
                // A dropped connection leaves the calls alone: media do not
                // pass through the server, and the rejoin resumes (protocol
                // 4.8), after which the server's lists decide.
                if other == NetEvent::Replaced {
                    // Another client has the presence now: this one is silent.
                    self.call = None;
                }
                return vec![Update::Connection(other)];
            }
        };
        let changes = self.space.apply(&msg);
        if changes.contains(&Change::Welcomed) {
            for m in self.chat.resend() {
                net.send(m);
            }
        }
        if let Some(call) = self.call.as_mut() {
            call.on_message(&msg, &self.space, self.map.as_deref());
        }
        self.chat.apply(&msg, self.space.me);
        if let ServerMessage::Error {
            message,
            client_msg_id: None,
            ..
        } = &*msg
        {
            self.chat.notices.push(message.clone());
        }
        let cue = self.cues.on_message(
            &msg,
            &self.space,
            &self.chat,
            self.map.as_deref(),
            std::time::Instant::now(),
        );
        if let (Some(cue), Some(call)) = (cue, &self.call) {
            call.play(cue);
        }
        changes
            .into_iter()
            .map(Update::Space)
            .chain(cue.map(Update::Cue))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::net::detached;
    use hallway_shared::protocol::{
        ClientMessage, Member, PROTOCOL_VERSION, SpaceInfo, SpaceRules, Status,
    };
    use hallway_shared::proximity::ProximityConfig;
    use hallway_shared::{ChannelId, Facing, SpaceId, UserId};

    fn welcome() -> NetEvent {
        let you = Member {
            user_id: UserId(1),
            display_name: "me".into(),
            x: 1,
            y: 1,
            facing: Facing::Down,
            status: Status::Available,
            status_text: None,
        };
        NetEvent::Message(Box::new(ServerMessage::Welcome {
            protocol: PROTOCOL_VERSION,
            you: you.clone(),
            space: SpaceInfo {
                id: SpaceId(1),
                name: "Office".into(),
                private: false,
                invite_code: None,
                map: "office".into(),
                online: 1,
            },
            members: vec![you],
            rules: SpaceRules {
                proximity: ProximityConfig::default(),
                max_steps_per_second: 8.0,
                step_burst: 4.0,
            },
            ice_servers: Vec::new(),
        }))
    }

    #[test]
    fn a_welcome_updates_the_space_and_resends_unacknowledged_chat() {
        let (net, mut far) = detached();
        let mut client = Client::new();
        let sent = client.chat.compose(ChannelId(3), "hello");
        assert!(matches!(sent, ClientMessage::ChatSend { .. }));
        let updates = client.absorb(welcome(), &net);
        assert_eq!(updates[0], Update::Space(Change::Welcomed));
        assert_eq!(client.space.me, Some(UserId(1)));
        let resent = far.sent();
        assert!(
            matches!(&resent[..], [ClientMessage::ChatSend { body, .. }] if body == "hello"),
            "{resent:?}"
        );
    }

    #[test]
    fn server_errors_become_notices_and_connection_events_pass_through() {
        let (net, _far) = detached();
        let mut client = Client::new();
        let error = ServerMessage::Error {
            code: hallway_shared::protocol::ErrorCode::NotInSpace,
            message: "join a space first".into(),
            client_msg_id: None,
        };
        client.absorb(NetEvent::Message(Box::new(error)), &net);
        assert_eq!(client.chat.notices, ["join a space first"]);
        let updates = client.absorb(NetEvent::Connected, &net);
        assert_eq!(updates, vec![Update::Connection(NetEvent::Connected)]);
    }
}
