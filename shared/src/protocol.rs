//! Everything on the wire: WebSocket messages named by direction
//! ([`ClientMessage`] client → server, [`ServerMessage`] server → client) and the
//! REST request and response bodies. `docs/protocol.md` describes the same in
//! prose, with the rules; keep the two together.

use crate::proximity::ProximityConfig;
use crate::{ChannelId, Facing, MessageId, SpaceId, UserId};
use serde::{Deserialize, Serialize};

/// The protocol's version, sent in `welcome` and `/health`. It changes only
/// when a change would break existing clients; new fields and messages are not
/// breaking, so clients must ignore fields and message types they do not know.
pub const PROTOCOL_VERSION: u32 = 1;
/// The largest WebSocket message the server accepts, in bytes.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// The largest `signal` payload (as compact JSON) the server relays, in bytes.
pub const MAX_SIGNAL_PAYLOAD_BYTES: usize = 32 * 1024;
/// The longest chat message body, in characters.
pub const MAX_CHAT_CHARS: usize = 4000;
/// The longest `client_msg_id`, in bytes.
pub const MAX_CLIENT_MSG_ID_BYTES: usize = 64;
/// Display names are 1 to this many characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 40;
/// Status texts are at most this many characters.
pub const MAX_STATUS_TEXT_CHARS: usize = 80;

/// Availability shown next to a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Available,
    Busy,
    Away,
}

impl ClientMessage {
    /// `join` without a preferred position.
    pub fn join(space_id: SpaceId) -> ClientMessage {
        ClientMessage::Join {
            space_id,
            x: None,
            y: None,
            instance: None,
        }
    }
}

impl Status {
    pub fn parse(s: &str) -> Option<Status> {
        match s.to_ascii_lowercase().as_str() {
            "available" | "online" | "here" => Some(Status::Available),
            "busy" | "dnd" => Some(Status::Busy),
            "away" | "afk" => Some(Status::Away),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------- WebSocket

/// Client → server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Enter a space (leaving the current one, if any). Answered by `welcome`.
    Join {
        space_id: SpaceId,
        /// Where to appear, e.g. where you stood before a reconnect. Used only if
        /// the server does not remember where you left and the tile is walkable;
        /// otherwise you appear at a spawn point.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        x: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        y: Option<i32>,
        /// A number the client picks once per run (random, below 2^53). A
        /// join from another connection of the same user with the same
        /// `instance` is that client reconnecting: it resumes, and its peers
        /// keep their calls (4.8). Without it, another connection takes over.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<u64>,
    },
    /// Step to a neighbouring tile or turn in place.
    Move { x: i32, y: i32, facing: Facing },
    /// Post to a channel, or run a `/command`. Answered by `chat_ack` once stored.
    ChatSend {
        channel_id: ChannelId,
        client_msg_id: String,
        body: String,
    },
    /// Relay an opaque payload (SDP, ICE) to a current or recent peer.
    Signal {
        to: UserId,
        payload: serde_json::Value,
    },
    /// Change availability and, optionally, the status text.
    SetStatus {
        status: Status,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Leave the current space (the connection stays open).
    Leave,
}

/// Server → client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// You are in: your own member record, the space, and everyone in it.
    Welcome {
        /// [`PROTOCOL_VERSION`] of the server.
        protocol: u32,
        you: Member,
        space: SpaceInfo,
        members: Vec<Member>,
        rules: SpaceRules,
        ice_servers: Vec<IceServer>,
    },
    /// What changed in the space during the last tick (sent at most 20 times a second).
    Presence {
        #[serde(default)]
        joined: Vec<Member>,
        #[serde(default)]
        moved: Vec<Moved>,
        #[serde(default)]
        updated: Vec<Member>,
        #[serde(default)]
        left: Vec<UserId>,
    },
    /// Your complete current peer list, sent whenever it changes.
    Proximity { peers: Vec<Peer> },
    /// Fresh ICE servers (new relay credentials) before the ones in
    /// `welcome` expire; they replace them for connections opened from now on.
    IceServers { ice_servers: Vec<IceServer> },
    /// A `move` was refused; this is where you really are.
    MoveRejected {
        x: i32,
        y: i32,
        facing: Facing,
        reason: MoveRejection,
    },
    /// A new message in a channel you can see (also sent to its author).
    ChatMessage { message: ChatMessage },
    /// Your `chat_send` is durably stored (`message_id`), or was a command that
    /// stores no message (`message_id: null`).
    ChatAck {
        client_msg_id: String,
        message_id: Option<MessageId>,
    },
    /// A payload relayed from a peer.
    Signal {
        from: UserId,
        payload: serde_json::Value,
    },
    /// Something you sent was refused. The connection stays open unless said otherwise.
    Error {
        code: ErrorCode,
        message: String,
        /// The `client_msg_id` of the refused `chat_send`, if that is what failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
    },
}

/// Why a move was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveRejection {
    /// More than one tile from the current position.
    TooFar,
    /// Into a wall, furniture, or off the map.
    Blocked,
    /// Faster than the space's step rate.
    TooFast,
}

/// Error codes, in WebSocket `error` messages and REST error bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, or JSON without a string `type`.
    Malformed,
    /// A `type` the server does not know.
    UnknownType,
    /// A known type with missing or invalid fields.
    BadRequest,
    /// A message or payload over its size limit.
    TooLarge,
    /// Too many requests; slow down.
    RateLimited,
    /// Missing or unknown token; wrong credentials.
    Unauthorized,
    NotFound,
    /// Already exists (username, channel name).
    Conflict,
    /// The message needs a joined space.
    NotInSpace,
    /// `signal` to someone who is not (and was not recently) a peer.
    NotPeer,
    /// A chat `/command` the server does not know.
    UnknownCommand,
    /// Another connection of the same user joined the space; this one is closed
    /// (code 4001) and must not reconnect by itself.
    SessionReplaced,
    /// The server is at capacity (connections); retry later.
    Unavailable,
    Internal,
}

/// A person in a space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub display_name: String,
    pub x: i32,
    pub y: i32,
    pub facing: Facing,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
}

/// A position update inside `presence`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub user_id: UserId,
    pub x: i32,
    pub y: i32,
    pub facing: Facing,
}

/// One entry of a `proximity` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub user_id: UserId,
    /// True if you send the WebRTC offer to this peer (exactly one side of each pair is).
    pub offerer: bool,
}

/// The rules of a space clients need to know.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceRules {
    pub proximity: ProximityConfig,
    /// The most steps (and turns) a second the server accepts, sustained.
    pub max_steps_per_second: f32,
    /// How many steps above that rate a client may take in a burst.
    pub step_burst: f32,
}

impl SpaceRules {
    /// Checks that the rules make sense; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.proximity;
        let radius_ok = |r: f32| r > 0.0 && r <= 50.0;
        if !(radius_ok(p.full_volume_radius)
            && radius_ok(p.enter_radius)
            && radius_ok(p.leave_radius))
        {
            return Err("radii must be more than 0 and at most 50 tiles".into());
        }
        if !(p.full_volume_radius <= p.leave_radius && p.enter_radius <= p.leave_radius) {
            return Err("the leave radius must be at least the enter and full-volume radii".into());
        }
        if !(1..=32).contains(&p.max_peers) || !(1..=32).contains(&p.zone_max_peers) {
            return Err("peer caps must be 1 to 32".into());
        }
        if p.signal_grace_ms > 60_000 {
            return Err("the signaling grace is at most 60 000 ms".into());
        }
        let rate_ok = |r: f32| (1.0..=30.0).contains(&r);
        if !(rate_ok(self.max_steps_per_second) && rate_ok(self.step_burst)) {
            return Err("the step rate and burst must be 1 to 30".into());
        }
        Ok(())
    }
}

/// An ICE server for WebRTC (STUN or TURN).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

// ---------------------------------------------------------------- REST

/// A user as others see them (and as they see themselves in `/api/me`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    /// `null` for guests.
    pub username: Option<String>,
    pub display_name: String,
    pub guest: bool,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuestRequest {
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub username: String,
    pub password: String,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Turns the calling guest into an account, keeping its id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpgradeRequest {
    pub username: String,
    pub password: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuthResponse {
    pub token: String,
    pub user: UserInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub id: SpaceId,
    pub name: String,
    pub private: bool,
    /// The code others use to join a private space; shown only to its members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite_code: Option<String>,
    /// The map's name (its file in `assets/maps/`, without `.tmx`).
    pub map: String,
    /// How many people are in the space now.
    pub online: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpaceDetail {
    pub space: SpaceInfo,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateSpaceRequest {
    pub name: String,
    #[serde(default)]
    pub private: bool,
    /// The space's own rules; the server's defaults if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<SpaceRules>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JoinSpaceRequest {
    pub invite_code: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A channel of a space: everyone who can enter the space can read and post.
    Space,
    /// A direct-message channel between two users.
    Direct,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelInfo {
    pub id: ChannelId,
    pub kind: ChannelKind,
    /// Set for space channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<SpaceId>,
    /// The channel's name; for a direct channel, the other person's display name.
    pub name: String,
    /// For a direct channel: both users.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<UserId>,
    /// The newest message's id, if any (for unread counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message_id: Option<MessageId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateChannelRequest {
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenDirectRequest {
    pub user_id: UserId,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// An ordinary message.
    #[default]
    Text,
    /// An action, from `/me`: shown as "* name body".
    Me,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: MessageId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    /// The author's display name when the message was sent.
    pub author_name: String,
    pub kind: MessageKind,
    pub body: String,
    /// Milliseconds since the Unix epoch, server clock.
    pub created_at: i64,
}

/// A page of history: oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<ChatMessage>,
    /// True if older messages exist (ask again with `before` = the first id here).
    pub has_more: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    pub version: String,
}

/// The body of every REST error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_messages_are_type_tagged_snake_case() {
        let m: ClientMessage = serde_json::from_value(json!({
            "type": "chat_send", "channel_id": 3, "client_msg_id": "a1", "body": "hi"
        }))
        .unwrap();
        assert_eq!(
            m,
            ClientMessage::ChatSend {
                channel_id: ChannelId(3),
                client_msg_id: "a1".into(),
                body: "hi".into()
            }
        );
        let m: ClientMessage =
            serde_json::from_value(json!({"type": "move", "x": 1, "y": 2, "facing": "left"}))
                .unwrap();
        assert_eq!(
            m,
            ClientMessage::Move {
                x: 1,
                y: 2,
                facing: Facing::Left
            }
        );
        let m: ClientMessage = serde_json::from_value(json!({"type": "leave"})).unwrap();
        assert_eq!(m, ClientMessage::Leave);
        assert!(serde_json::from_value::<ClientMessage>(json!({"type": "fly"})).is_err());
    }

    #[test]
    fn server_messages_round_trip() {
        let m = ServerMessage::Proximity {
            peers: vec![Peer {
                user_id: UserId(7),
                offerer: true,
            }],
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"type":"proximity","peers":[{"user_id":7,"offerer":true}]}"#
        );
        assert_eq!(serde_json::from_str::<ServerMessage>(&text).unwrap(), m);
        let e = ServerMessage::Error {
            code: ErrorCode::NotPeer,
            message: "x".into(),
            client_msg_id: None,
        };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"type": "error", "code": "not_peer", "message": "x"})
        );
    }

    #[test]
    fn space_rules_are_checked() {
        let good = SpaceRules {
            proximity: ProximityConfig::default(),
            max_steps_per_second: 8.0,
            step_burst: 4.0,
        };
        assert_eq!(good.validate(), Ok(()));
        let mut bad = good;
        bad.proximity.enter_radius = 7.0;
        assert!(bad.validate().is_err(), "enter beyond leave");
        let mut bad = good;
        bad.proximity.leave_radius = f32::NAN;
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.proximity.max_peers = 0;
        assert!(bad.validate().is_err());
        let mut bad = good;
        bad.max_steps_per_second = 1000.0;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn status_words() {
        assert_eq!(Status::parse("AFK"), Some(Status::Away));
        assert_eq!(Status::parse("busy"), Some(Status::Busy));
        assert_eq!(Status::parse("sleepy"), None);
    }
}
