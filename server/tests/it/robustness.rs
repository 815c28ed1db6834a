use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use hallway_shared::Facing;
use hallway_shared::TilePos;
use hallway_shared::protocol::{ClientMessage, ErrorCode, MoveRejection, ServerMessage};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::{self, Message};

async fn rejection(c: &mut Client) -> (MoveRejection, TilePos) {
    match c
        .expect("move_rejected", |m| {
            matches!(m, ServerMessage::MoveRejected { .. })
        })
        .await
    {
        ServerMessage::MoveRejected { x, y, reason, .. } => (reason, TilePos::new(x, y)),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn walls_teleports_and_diagonals_are_rejected_with_the_true_position() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let map = s.map(&ann.token).await;
    // Walk next to the outer wall on the left.
    ann.walk_to(&map, TilePos::new(1, 9)).await;
    ann.send(&ClientMessage::Move {
        x: 0,
        y: 9,
        facing: Facing::Left,
    })
    .await;
    assert_eq!(
        rejection(&mut ann).await,
        (MoveRejection::Blocked, TilePos::new(1, 9))
    );
    ann.send(&ClientMessage::Move {
        x: 5,
        y: 9,
        facing: Facing::Right,
    })
    .await;
    assert_eq!(
        rejection(&mut ann).await,
        (MoveRejection::TooFar, TilePos::new(1, 9))
    );
    ann.send(&ClientMessage::Move {
        x: 2,
        y: 10,
        facing: Facing::Right,
    })
    .await;
    assert_eq!(
        rejection(&mut ann).await,
        (MoveRejection::TooFar, TilePos::new(1, 9))
    );
    ann.send(&ClientMessage::Move {
        x: -1,
        y: 9,
        facing: Facing::Left,
    })
    .await;
    assert_eq!(rejection(&mut ann).await.0, MoveRejection::TooFar);
    // A legal step still works afterwards, and turning in place is fine.
    ann.walk_to(&map, TilePos::new(2, 9)).await;
    ann.send(&ClientMessage::Move {
        x: 2,
        y: 9,
        facing: Facing::Up,
    })
    .await;
    let me = ann.user;
    ann.expect("the turn", |m| {
        matches!(m, ServerMessage::Presence { moved, .. }
            if moved.iter().any(|mv| mv.user_id == me && mv.facing == Facing::Up))
    })
    .await;
}

#[tokio::test]
async fn moving_faster_than_the_step_rate_is_rejected() {
    let s = TestServer::start_with(|c| {
        c.max_steps_per_second = 8.0;
        c.step_burst = 4.0;
    })
    .await;
    let mut ann = s.joined("Ann").await;
    let map = s.map(&ann.token).await;
    let start = ann.pos;
    let next = [(1, 0), (-1, 0), (0, 1), (0, -1)]
        .into_iter()
        .map(|(dx, dy)| TilePos::new(start.x + dx, start.y + dy))
        .find(|p| map.is_walkable(*p))
        .unwrap();
    for i in 0..20 {
        let to = if i % 2 == 0 { next } else { start };
        ann.send(&ClientMessage::Move {
            x: to.x,
            y: to.y,
            facing: Facing::Down,
        })
        .await;
    }
    assert_eq!(rejection(&mut ann).await.0, MoveRejection::TooFast);
}

#[tokio::test]
async fn malformed_unknown_and_invalid_messages_get_errors_and_the_connection_stays() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    ann.send_text("{not json".into()).await;
    assert_eq!(ann.error().await.0, ErrorCode::Malformed);
    ann.send_text("[1,2,3]".into()).await;
    assert_eq!(ann.error().await.0, ErrorCode::Malformed);
    ann.send_text(json!({"type": "teleport", "x": 1}).to_string())
        .await;
    assert_eq!(ann.error().await.0, ErrorCode::UnknownType);
    ann.send_text(json!({"type": "move", "x": "left"}).to_string())
        .await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    ann.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    // Over 64 KiB: refused, connection kept.
    ann.send_text(json!({"type": "leave", "pad": "x".repeat(70_000)}).to_string())
        .await;
    let (code, message) = ann.error().await;
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(message.contains("65536"), "{message}");
    // Still connected and working.
    ann.join(OFFICE).await;
}

#[tokio::test]
async fn a_huge_frame_closes_the_connection() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let _ = ann
        .ws
        .send(Message::text("x".repeat(2 * 1024 * 1024)))
        .await;
    ann.drain(Duration::from_secs(2)).await;
    assert_eq!(
        ann.closed,
        Some(Some(1009)),
        "the server closes on a frame over its hard limit"
    );
}

/// The tile next to `from` that one can step onto.
fn step_from(map: &hallway_shared::MapModel, from: TilePos) -> TilePos {
    [(1, 0), (-1, 0), (0, 1), (0, -1)]
        .map(|(dx, dy)| TilePos::new(from.x + dx, from.y + dy))
        .into_iter()
        .find(|p| map.is_walkable(*p))
        .expect("a walkable neighbour")
}

#[tokio::test]
async fn extreme_coordinates_are_refused_and_the_space_goes_on() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let start = ann.pos;
    // The move that once killed the space's actor, and its relatives.
    for (x, y) in [
        (i32::MIN, i32::MIN),
        (i32::MAX, i32::MAX),
        (i32::MIN, start.y),
        (start.x, i32::MAX),
        (i32::MAX, i32::MIN),
    ] {
        ann.send_text(format!(
            r#"{{"type":"move","x":{x},"y":{y},"facing":"up"}}"#
        ))
        .await;
        assert_eq!(
            rejection(&mut ann).await,
            (MoveRejection::TooFar, start),
            "move to ({x}, {y})"
        );
    }
    ann.send(&ClientMessage::Join {
        space_id: OFFICE,
        x: Some(i32::MIN),
        y: Some(i32::MAX),
        instance: None,
    })
    .await;
    ann.expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
        .await;
    // The space still answers: a newcomer is welcomed and sees Ann, Ann's
    // steps still reach others, and REST counts both.
    let mut bob = s.joined("Bob").await;
    assert!(bob.members.contains_key(&ann.user));
    let (_, _, detail) = s
        .get::<hallway_shared::protocol::SpaceDetail>(&ann.token, "/api/spaces/1")
        .await;
    assert_eq!(detail.unwrap().members.len(), 2);
    let map = s.map(&ann.token).await;
    let next = step_from(&map, start);
    ann.send(&ClientMessage::Move {
        x: next.x,
        y: next.y,
        facing: Facing::Up,
    })
    .await;
    let ann_id = ann.user;
    bob.expect("Ann's step", |m| {
        matches!(m, ServerMessage::Presence { moved, .. }
            if moved.iter().any(|mv| mv.user_id == ann_id && (mv.x, mv.y) == (next.x, next.y)))
    })
    .await;
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let frame = Frame::message(vec![b'"', 0xff, 0xfe, b'"'], OpCode::Data(Data::Text), true);
    ann.ws.send(Message::Frame(frame)).await.unwrap();
    ann.drain(Duration::from_secs(2)).await;
    assert_eq!(ann.closed, Some(Some(1007)));
}

#[tokio::test]
async fn a_lone_surrogate_is_malformed_and_named() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    ann.send_text(
        r#"{"type":"chat_send","channel_id":1,"client_msg_id":"c1","body":"\ud800"}"#.into(),
    )
    .await;
    let (code, message) = ann.error().await;
    assert_eq!(code, ErrorCode::Malformed);
    assert!(
        message.contains("surrogate") && !message.contains("hex escape"),
        "{message}"
    );
    ann.join(OFFICE).await;
}

#[tokio::test]
async fn joining_again_repeats_the_state_and_leaving_empties_the_peer_list() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let (a, b) = (ann.user, bob.user);
    ann.await_peers("[bob]", |p| p == [b]).await;
    bob.await_peers("[ann]", |p| p == [a]).await;
    bob.drain(Duration::from_millis(100)).await;
    // Joining the space you are in sends welcome and your peers again, and
    // does not disturb anyone else.
    ann.join(OFFICE).await;
    ann.expect(
        "proximity again",
        |m| matches!(m, ServerMessage::Proximity { peers } if peers.len() == 1),
    )
    .await;
    bob.expect_none("a change", Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::Proximity { .. })
    })
    .await;
    assert_eq!(bob.peer_ids(), [a]);
    // Leaving ends with an empty list for the leaver.
    ann.send(&ClientMessage::Leave).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    bob.await_peers("empty", |p| p.is_empty()).await;
}

#[tokio::test]
async fn messages_before_joining_say_so() {
    let s = TestServer::start().await;
    let auth = s.guest("Ann").await;
    let mut c = Client::connect(s.addr, &auth.token).await.unwrap();
    c.send(&ClientMessage::Move {
        x: 1,
        y: 1,
        facing: Facing::Up,
    })
    .await;
    assert_eq!(c.error().await.0, ErrorCode::NotInSpace);
    c.send(&ClientMessage::join(hallway_shared::SpaceId(77)))
        .await;
    assert_eq!(c.error().await.0, ErrorCode::NotFound);
}

#[tokio::test]
async fn unauthorized_websockets_get_401() {
    let s = TestServer::start().await;
    for token in ["", "wrong-token"] {
        match Client::connect(s.addr, token).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connected without a valid token"),
        }
    }
    let url = format!("ws://{}/ws", s.addr);
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // A token in the query works (for clients that cannot set headers).
    let auth = s.guest("Ann").await;
    let url = format!("ws://{}/ws?token={}", s.addr, auth.token);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.send(Message::text(
        json!({"type": "join", "space_id": 1}).to_string(),
    ))
    .await
    .unwrap();
    let Some(Ok(Message::Text(t))) = ws.next().await else {
        panic!("no welcome")
    };
    assert!(t.as_str().contains("\"welcome\""));
}

#[tokio::test]
async fn message_floods_are_rate_limited() {
    let s = TestServer::start_with(|c| {
        c.messages_per_second = 1.0;
        c.message_burst = 20.0;
    })
    .await;
    let mut ann = s.joined("Ann").await;
    for _ in 0..60 {
        ann.send(&ClientMessage::Leave).await;
    }
    assert_eq!(ann.error().await.0, ErrorCode::RateLimited);
    // A chat message caught by the limit is named in the error.
    ann.send(&ClientMessage::ChatSend {
        channel_id: hallway_shared::ChannelId(1),
        client_msg_id: "flood-1".into(),
        body: "hi".into(),
    })
    .await;
    let m = ann
        .expect("the chat's error", |m| {
            matches!(
                m,
                ServerMessage::Error {
                    client_msg_id: Some(_),
                    ..
                }
            )
        })
        .await;
    assert!(
        matches!(m, ServerMessage::Error { code: ErrorCode::RateLimited, client_msg_id: Some(ref id), .. } if id == "flood-1"),
        "{m:?}"
    );
}

#[tokio::test]
async fn silent_clients_are_dropped_and_ponging_ones_kept() {
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(600);
    })
    .await;
    let mut silent = s.joined("Silent").await;
    let mut awake = s.joined("Awake").await;
    // `awake` keeps reading, so its WebSocket library answers pings; `silent`
    // reads nothing, so it never answers.
    awake.drain(Duration::from_millis(1500)).await;
    assert!(awake.closed.is_none(), "a client answering pings stays");
    let (_, _, detail) = s
        .get::<hallway_shared::protocol::SpaceDetail>(&awake.token, "/api/spaces/1")
        .await;
    let present: Vec<_> = detail.unwrap().members.iter().map(|m| m.user_id).collect();
    assert_eq!(present, [awake.user], "the silent client was dropped");
    silent.drain(Duration::from_millis(500)).await;
    assert!(silent.closed.is_some(), "its connection is closed");
    awake.join(OFFICE).await;
}

#[tokio::test]
async fn a_slow_reader_is_disconnected_instead_of_buffered() {
    let s = TestServer::start_with(|c| c.outbox_capacity = 16).await;
    let mut slow = s.joined("Slow").await;
    let mut fast = s.joined("Fast").await;
    let target = slow.user;
    fast.await_peers("[slow]", |p| p == [target]).await;
    // Signals at a client that reads nothing, far more than socket buffers
    // hold, until the server drops it (and so unlinks it from `fast`).
    let payload = json!({"kind": "candidate", "pad": "x".repeat(30_000)});
    let mut sent = 0;
    while !fast.peers.is_empty() {
        assert!(sent < 3000, "the slow reader was never dropped");
        for _ in 0..8 {
            fast.send(&ClientMessage::Signal {
                to: target,
                payload: payload.clone(),
            })
            .await;
        }
        sent += 8;
        fast.drain(Duration::from_millis(5)).await;
    }
    // The slow client finds its connection closed after what was already in flight.
    let mut received = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), slow.ws.next()).await {
            Ok(Some(Ok(Message::Text(_)))) => received += 1,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("still connected and idle after {received} frames"),
        }
    }
    assert!(received < sent, "dropped after {received} of {sent} frames");
    // The sender is unaffected.
    assert!(fast.closed.is_none());
    fast.join(OFFICE).await;
}

#[tokio::test]
async fn a_second_connection_of_the_same_user_takes_over() {
    let s = TestServer::start().await;
    let mut first = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let a = first.user;
    bob.await_peers("[ann]", |p| p == [a]).await;
    let mut second = Client::connect(s.addr, &first.token).await.unwrap();
    second.user = first.user;
    second.join(OFFICE).await;
    assert_eq!(first.error().await.0, ErrorCode::SessionReplaced);
    first.drain(Duration::from_millis(500)).await;
    assert_eq!(
        first.closed,
        Some(Some(4001)),
        "the old connection is closed"
    );
    // Bob's peer list drops Ann's old connection and takes the new one.
    bob.expect(
        "ann unlinked",
        |m| matches!(m, ServerMessage::Proximity { peers } if peers.is_empty()),
    )
    .await;
    bob.await_peers("[ann]", |p| p == [a]).await;
    second.await_peers("[bob]", |p| p.len() == 1).await;
    // The old connection closing does not take the user out of the space.
    let token = first.token.clone();
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, _, detail) = s
        .get::<hallway_shared::protocol::SpaceDetail>(&token, "/api/spaces/1")
        .await;
    assert_eq!(detail.unwrap().members.len(), 2);
    drop(second);
}

#[tokio::test]
async fn the_same_client_reconnecting_resumes_and_its_peers_keep_their_calls() {
    let s = TestServer::start().await;
    let ann = s.guest("Ann").await;
    let join = ClientMessage::Join {
        space_id: OFFICE,
        x: None,
        y: None,
        instance: Some(77),
    };
    let mut first = Client::connect(s.addr, &ann.token).await.unwrap();
    first.user = ann.user.id;
    first.send(&join).await;
    first
        .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
        .await;
    let mut bob = s.joined("Bob").await;
    let a = first.user;
    bob.await_peers("[ann]", |p| p == [a]).await;
    first.await_peers("[bob]", |p| p.len() == 1).await;
    // Ann's network changes: a new connection, the same client run.
    let mut second = Client::connect(s.addr, &ann.token).await.unwrap();
    second.user = a;
    second.send(&join).await;
    second
        .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
        .await;
    second.await_peers("[bob]", |p| p == [bob.user]).await;
    // Bob's list never changes: his call with Ann goes on.
    bob.expect_none("a new peer list", Duration::from_millis(500), |m| {
        matches!(m, ServerMessage::Proximity { .. })
    })
    .await;
    // The old connection is closed, without the takeover error.
    first.drain(Duration::from_millis(300)).await;
    assert_eq!(first.closed, Some(Some(4001)));
    assert!(
        !first
            .inbox
            .iter()
            .any(|m| matches!(m, ServerMessage::Error { .. })),
        "{:?}",
        first.inbox
    );
    // Signals reach the new connection.
    bob.send(&ClientMessage::Signal {
        to: a,
        payload: serde_json::json!({"kind": "offer", "sdp": "v=0"}),
    })
    .await;
    second
        .expect("the signal", |m| matches!(m, ServerMessage::Signal { .. }))
        .await;
    // Another run of the same user (another instance) still takes over.
    let mut third = Client::connect(s.addr, &ann.token).await.unwrap();
    third.user = a;
    third
        .send(&ClientMessage::Join {
            space_id: OFFICE,
            x: None,
            y: None,
            instance: Some(78),
        })
        .await;
    assert_eq!(second.error().await.0, ErrorCode::SessionReplaced);
    bob.expect(
        "ann unlinked",
        |m| matches!(m, ServerMessage::Proximity { peers } if peers.is_empty()),
    )
    .await;
}

#[tokio::test]
async fn shutdown_closes_websockets_as_going_away() {
    // Once raced to 1000 in most shutdowns, so: many shutdowns, several
    // connections each, some idle and some in the middle of walking.
    for round in 0..8 {
        let mut s = TestServer::start().await;
        let mut clients = Vec::new();
        for i in 0..4 {
            clients.push(s.joined(&format!("P{round}x{i}")).await);
        }
        let map = s.map(&clients[0].token).await;
        for c in clients.iter_mut().take(2) {
            let next = step_from(&map, c.pos);
            c.send(&ClientMessage::Move {
                x: next.x,
                y: next.y,
                facing: Facing::Up,
            })
            .await;
        }
        s.stop().await;
        for c in &mut clients {
            c.drain(Duration::from_secs(2)).await;
            assert_eq!(c.closed, Some(Some(1001)), "round {round}, user {}", c.user);
        }
    }
}

#[tokio::test]
async fn join_can_ask_for_a_walkable_position() {
    let s = TestServer::start().await;
    let auth = s.guest("Ann").await;
    let mut ann = Client::connect(s.addr, &auth.token).await.unwrap();
    let welcome_at = |m: ServerMessage| match m {
        ServerMessage::Welcome { you, .. } => TilePos::new(you.x, you.y),
        _ => unreachable!(),
    };
    let welcome = |m: &ServerMessage| matches!(m, ServerMessage::Welcome { .. });
    // Into a wall: ignored, a spawn point instead.
    ann.send(&ClientMessage::Join {
        space_id: OFFICE,
        x: Some(0),
        y: Some(0),
        instance: None,
    })
    .await;
    let map = s.map(&auth.token).await;
    let at = welcome_at(ann.expect("welcome", welcome).await);
    assert!(map.spawns.contains(&at), "{at:?} is a spawn point");
    ann.send(&ClientMessage::Leave).await;
    ann.drain(Duration::from_millis(100)).await;
    // A fresh server does not know where Bob was, so his wish is granted.
    let bob = s.guest("Bob").await;
    let mut bob = Client::connect(s.addr, &bob.token).await.unwrap();
    bob.send(&ClientMessage::Join {
        space_id: OFFICE,
        x: Some(12),
        y: Some(9),
        instance: None,
    })
    .await;
    assert_eq!(
        welcome_at(bob.expect("welcome", welcome).await),
        TilePos::new(12, 9)
    );
    // Where the server remembers someone leaving, that wins over the wish.
    ann.send(&ClientMessage::Join {
        space_id: OFFICE,
        x: Some(20),
        y: Some(9),
        instance: None,
    })
    .await;
    assert_eq!(welcome_at(ann.expect("welcome", welcome).await), at);
}

/// What the server logs on this thread: a `#[tokio::test]` runtime has one
/// thread, so the server's tasks log here too.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buf) = self.0.lock() {
            buf.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

impl Log {
    /// Waits (up to 5 s: the writer may take 2 s to give up on a client) for
    /// a warn line saying `user`'s connection was cut with `code` for `why`.
    async fn has_cut(&self, user: hallway_shared::UserId, why: &str, code: u16) -> bool {
        for _ in 0..50 {
            let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
            let found = text.lines().any(|l| {
                l.contains("WARN")
                    && l.contains(&format!("connection cut: {why}"))
                    && l.contains(&format!("user={user}"))
                    && l.contains(&format!("code={code}"))
            });
            if found {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

#[tokio::test]
async fn cut_connections_are_logged_at_warn() {
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A dead client (it never answers pings) and an oversized frame.
    let s = TestServer::start_with(|c| {
        c.ping_interval = Duration::from_millis(100);
        c.idle_timeout = Duration::from_millis(600);
    })
    .await;
    let silent = s.joined("Silent").await;
    let mut big = s.joined("Big").await;
    let _ = big
        .ws
        .send(Message::text("x".repeat(2 * 1024 * 1024)))
        .await;
    big.drain(Duration::from_millis(500)).await;
    assert!(log.has_cut(big.user, "message too big", 1009).await);
    assert!(log.has_cut(silent.user, "idle timeout", 1001).await);

    // A slow consumer: signals at a client that reads nothing.
    let s = TestServer::start_with(|c| c.outbox_capacity = 16).await;
    let slow = s.joined("Slow").await;
    let mut fast = s.joined("Fast").await;
    let target = slow.user;
    fast.await_peers("[slow]", |p| p == [target]).await;
    let payload = json!({"kind": "candidate", "pad": "x".repeat(30_000)});
    for _ in 0..375 {
        if fast.peers.is_empty() {
            break;
        }
        for _ in 0..8 {
            fast.send(&ClientMessage::Signal {
                to: target,
                payload: payload.clone(),
            })
            .await;
        }
        fast.drain(Duration::from_millis(5)).await;
    }
    assert!(log.has_cut(slow.user, "slow consumer", 1008).await);
    drop(silent);
}
