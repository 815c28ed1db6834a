use crate::common::*;
use hallway_shared::TilePos;
use hallway_shared::protocol::{ClientMessage, ErrorCode, ServerMessage};
use serde_json::json;
use std::time::Duration;

fn offer() -> serde_json::Value {
    json!({"kind": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"})
}

#[tokio::test]
async fn signals_are_relayed_between_peers_with_the_true_sender() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let (a, b) = (ann.user, bob.user);
    ann.await_peers("[bob]", |p| p == [b]).await;
    ann.send(&ClientMessage::Signal {
        to: b,
        payload: offer(),
    })
    .await;
    let m = bob
        .expect("the offer", |m| matches!(m, ServerMessage::Signal { .. }))
        .await;
    assert_eq!(
        m,
        ServerMessage::Signal {
            from: a,
            payload: offer()
        }
    );
    // A client cannot claim to be someone else: `from` comes from the session.
    ann.send_text(
        json!({"type": "signal", "to": b.0, "from": 4242, "payload": {"kind": "candidate"}})
            .to_string(),
    )
    .await;
    let m = bob
        .expect("the candidate", |m| {
            matches!(m, ServerMessage::Signal { .. })
        })
        .await;
    let ServerMessage::Signal { from, .. } = m else {
        unreachable!()
    };
    assert_eq!(from, a);
    // Oversized payloads are refused.
    ann.send(&ClientMessage::Signal {
        to: b,
        payload: json!({"sdp": "x".repeat(40_000)}),
    })
    .await;
    assert_eq!(ann.error().await.0, ErrorCode::TooLarge);
    // Signaling yourself is a bad request.
    ann.send(&ClientMessage::Signal {
        to: a,
        payload: offer(),
    })
    .await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
}

#[tokio::test]
async fn signals_to_non_peers_are_refused() {
    let s = TestServer::start_with(|c| c.proximity.signal_grace_ms = 300).await;
    let mut ann = s.joined("Ann").await;
    let mut carl = s.joined("Carl").await;
    let map = s.map(&ann.token).await;
    carl.walk_to(&map, TilePos::new(40, 9)).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    // Wait out the grace period of the link they had at the spawn.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ann.send(&ClientMessage::Signal {
        to: carl.user,
        payload: offer(),
    })
    .await;
    assert_eq!(ann.error().await.0, ErrorCode::NotPeer);
    carl.expect_none("a refused signal", Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::Signal { .. })
    })
    .await;
    // Someone who is not in the space at all.
    ann.send(&ClientMessage::Signal {
        to: hallway_shared::UserId(9999),
        payload: offer(),
    })
    .await;
    assert_eq!(ann.error().await.0, ErrorCode::NotPeer);
}

#[tokio::test]
async fn signals_pass_within_the_grace_period_and_not_after() {
    let s = TestServer::start_with(|c| c.proximity.signal_grace_ms = 1000).await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let map = s.map(&ann.token).await;
    let b = bob.user;
    ann.await_peers("[bob]", |p| p == [b]).await;
    bob.walk_to(&map, TilePos::new(40, 9)).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    // Just unlinked: a closing message (e.g. an ICE candidate in flight) still passes.
    ann.send(&ClientMessage::Signal {
        to: b,
        payload: json!({"kind": "bye"}),
    })
    .await;
    bob.expect("the signal in grace", |m| {
        matches!(m, ServerMessage::Signal { .. })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    ann.send(&ClientMessage::Signal {
        to: b,
        payload: json!({"kind": "late"}),
    })
    .await;
    assert_eq!(ann.error().await.0, ErrorCode::NotPeer);
}
