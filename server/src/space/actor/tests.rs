//! The actor driven directly, with real outboxes and the built-in map: any
//! message a client can send, and a panic in the middle of the space.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::maps::{DEFAULT_MAP, MapStore};
use crate::outbox::CLOSE_RESTARTED;
use crate::ws::decode::decode;
use hallway_shared::SpaceId;
use hallway_shared::protocol::ClientMessage;
use proptest::prelude::*;

struct Harness {
    actor: SpaceActor,
    members: Vec<(UserId, Outbox, mpsc::Receiver<Utf8Bytes>)>,
}

impl Harness {
    fn new() -> Harness {
        let map = MapStore::load(None).unwrap().get(DEFAULT_MAP).unwrap();
        let config = Config::new("unused");
        let info = SpaceInfo {
            id: SpaceId(1),
            name: "Office".into(),
            private: false,
            invite_code: None,
            map: DEFAULT_MAP.into(),
            online: 0,
        };
        let rules = config.default_rules();
        let actor = SpaceActor::new(
            info,
            map,
            rules,
            &config,
            IceServers::external(Vec::new()),
            Arc::default(),
        );
        Harness {
            actor,
            members: Vec::new(),
        }
    }

    /// A connection for `user` (4096 frames deep, so nothing is cut as slow).
    fn connect(&mut self, user: i64) -> usize {
        let (outbox, rx) = Outbox::new(4096, CancellationToken::new());
        self.members.push((UserId(user), outbox, rx));
        self.members.len() - 1
    }

    fn joiner(&self, conn: usize, at: Option<TilePos>) -> Joiner {
        let (user, outbox, _) = &self.members[conn];
        Joiner {
            user_id: *user,
            display_name: format!("user {user}"),
            status: Status::Available,
            status_text: None,
            outbox: outbox.clone(),
            at,
            instance: None,
        }
    }

    fn join(&mut self, conn: usize, at: Option<TilePos>) {
        let (reply, _) = oneshot::channel();
        let joiner = self.joiner(conn, at);
        self.actor.handle(Command::Join { joiner, reply });
    }

    /// What a connection would hand the actor for `msg` (ws/connection.rs);
    /// messages the actor never sees give `None`.
    fn command(&self, conn: usize, msg: ClientMessage) -> Option<Command> {
        let (user, outbox, _) = &self.members[conn];
        let (user, conn_id) = (*user, outbox.conn);
        Some(match msg {
            ClientMessage::Join { x, y, .. } => Command::Join {
                joiner: self.joiner(conn, x.zip(y).map(|(x, y)| TilePos::new(x, y))),
                reply: oneshot::channel().0,
            },
            ClientMessage::Move { x, y, facing } => Command::Move {
                user,
                conn: conn_id,
                x,
                y,
                facing,
            },
            ClientMessage::Signal { to, payload } => Command::Signal {
                from: user,
                conn: conn_id,
                to,
                payload,
            },
            ClientMessage::SetStatus { status, text } => Command::Update {
                user,
                display_name: None,
                status: Some((status, text)),
            },
            ClientMessage::Leave => Command::Leave {
                user,
                conn: conn_id,
                done: oneshot::channel().0,
            },
            ClientMessage::ChatSend { .. } => return None,
        })
    }

    /// Every frame queued for a connection so far.
    fn received(&mut self, conn: usize) -> Vec<ServerMessage> {
        let rx = &mut self.members[conn].2;
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|frame| serde_json::from_str(frame.as_str()).unwrap())
            .collect()
    }
}

#[test]
fn the_overflow_move_is_refused_as_too_far() {
    let mut h = Harness::new();
    let ann = h.connect(1);
    h.join(ann, None);
    h.received(ann);
    let cmd = h
        .command(
            ann,
            decode(r#"{"type":"move","x":-2147483648,"y":-2147483648,"facing":"up"}"#).unwrap(),
        )
        .unwrap();
    h.actor.handle(cmd);
    assert!(matches!(
        h.received(ann).as_slice(),
        [ServerMessage::MoveRejected {
            reason: MoveRejection::TooFar,
            ..
        }]
    ));
}

#[test]
fn a_panic_restarts_the_space_and_tells_its_members() {
    let mut h = Harness::new();
    let (ann, bob) = (h.connect(1), h.connect(2));
    h.join(ann, None);
    h.join(bob, None);
    let bob_at = h.actor.members[&UserId(2)].member.clone();
    h.received(ann);
    h.received(bob);

    h.actor.guarded(|a| a.handle(Command::Panic));

    for conn in [ann, bob] {
        let got = h.received(conn);
        assert!(
            matches!(
                got.as_slice(),
                [ServerMessage::Error {
                    code: ErrorCode::Unavailable,
                    ..
                }]
            ),
            "{got:?}"
        );
        assert_eq!(h.members[conn].1.close_reason(), Some(CLOSE_RESTARTED));
    }
    assert!(h.actor.members.is_empty());
    assert_eq!(h.actor.online.load(Ordering::Relaxed), 0);
    assert!(h.actor.graph.is_empty());

    // The space goes on: Bob reconnects and is put back where he stood.
    let again = h.connect(2);
    h.join(again, None);
    let got = h.received(again);
    let Some(ServerMessage::Welcome { you, members, .. }) = got.first() else {
        panic!("no welcome after the restart: {got:?}");
    };
    assert_eq!((you.x, you.y), (bob_at.x, bob_at.y));
    assert_eq!(members.len(), 1);
}

/// Coordinates a client could send: anywhere in i32, often at the edges or
/// next to the spawn area of the built-in map.
fn coordinate() -> impl Strategy<Value = i32> {
    prop_oneof![Just(i32::MIN), Just(i32::MAX), 0i32..40, any::<i32>(),]
}

fn facing() -> impl Strategy<Value = Facing> {
    prop_oneof![
        Just(Facing::Up),
        Just(Facing::Down),
        Just(Facing::Left),
        Just(Facing::Right)
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::Available),
        Just(Status::Busy),
        Just(Status::Away)
    ]
}

/// Any client message, every field over its whole range.
fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        1 => (any::<i64>(), proptest::option::of(coordinate()), proptest::option::of(coordinate()))
            .prop_map(|(s, x, y)| ClientMessage::Join {
                space_id: SpaceId(s),
                x,
                y,
                instance: None,
            }),
        4 => (coordinate(), coordinate(), facing())
            .prop_map(|(x, y, facing)| ClientMessage::Move { x, y, facing }),
        1 => (any::<i64>(), any::<String>(), any::<String>()).prop_map(|(c, id, body)| {
            ClientMessage::ChatSend { channel_id: hallway_shared::ChannelId(c), client_msg_id: id, body }
        }),
        1 => (prop_oneof![0i64..6, any::<i64>()], any::<String>()).prop_map(|(to, s)| {
            ClientMessage::Signal { to: UserId(to), payload: serde_json::json!({ "sdp": s }) }
        }),
        1 => (status(), proptest::option::of(any::<String>()))
            .prop_map(|(status, text)| ClientMessage::SetStatus { status, text }),
        1 => Just(ClientMessage::Leave),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any sequence of messages from a few clients, through the decoder and
    /// into the actor unguarded: nothing panics, and the space still answers.
    #[test]
    fn any_client_messages_are_handled_without_panic(
        script in proptest::collection::vec((0usize..4, client_message()), 1..80),
    ) {
        let mut h = Harness::new();
        for user in 1..=4 {
            let conn = h.connect(user);
            h.join(conn, None);
        }
        for (conn, msg) in script {
            let text = serde_json::to_string(&msg).unwrap();
            let decoded = decode(&text);
            prop_assert_eq!(decoded.as_ref(), Ok(&msg), "{}", text);
            if let Some(cmd) = h.command(conn, msg) {
                h.actor.handle(cmd);
            }
            h.actor.flush();
        }
        // Still alive and consistent: a newcomer is welcomed.
        let late = h.connect(9);
        h.join(late, None);
        let welcomed = h.received(late).iter().any(|m| matches!(m, ServerMessage::Welcome { .. }));
        prop_assert!(welcomed);
        if let Err(e) = h.actor.graph.check_invariants() {
            return Err(TestCaseError::fail(e));
        }
    }
}
