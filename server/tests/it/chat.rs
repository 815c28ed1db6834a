use crate::common::*;
use hallway_shared::ChannelId;
use hallway_shared::protocol::{
    ChannelInfo, ClientMessage, ErrorCode, MessageKind, MessagePage, ServerMessage, Status,
};
use reqwest::StatusCode;
use std::time::Duration;

async fn general(s: &TestServer, token: &str) -> ChannelId {
    let (_, _, channels) = s
        .get::<Vec<ChannelInfo>>(token, "/api/spaces/1/channels")
        .await;
    channels.unwrap()[0].id
}

fn say(channel: ChannelId, id: &str, body: &str) -> ClientMessage {
    ClientMessage::ChatSend {
        channel_id: channel,
        client_msg_id: id.into(),
        body: body.into(),
    }
}

async fn acked(c: &mut Client, id: &str) -> Option<hallway_shared::MessageId> {
    match c
        .expect(
            "chat_ack",
            |m| matches!(m, ServerMessage::ChatAck { client_msg_id, .. } if client_msg_id == id),
        )
        .await
    {
        ServerMessage::ChatAck { message_id, .. } => message_id,
        _ => unreachable!(),
    }
}

async fn history(s: &TestServer, token: &str, channel: ChannelId, query: &str) -> MessagePage {
    let (status, body, page) = s
        .get::<MessagePage>(token, &format!("/api/channels/{channel}/messages{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    page.unwrap()
}

#[tokio::test]
async fn send_ack_broadcast_and_history() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let ch = general(&s, &ann.token).await;
    ann.send(&say(ch, "m1", "hello office")).await;
    let id = acked(&mut ann, "m1")
        .await
        .expect("a stored message has an id");
    let author = ann.user;
    for c in [&mut ann, &mut bob] {
        let m = c
            .expect("chat_message", |m| {
                matches!(m, ServerMessage::ChatMessage { .. })
            })
            .await;
        let ServerMessage::ChatMessage { message } = m else {
            unreachable!()
        };
        assert_eq!(message.id, id);
        assert_eq!(message.body, "hello office");
        assert_eq!(message.author_id, author);
        assert_eq!(message.author_name, "Ann");
    }
    let page = history(&s, &bob.token, ch, "").await;
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, id);
    assert!(!page.has_more);
}

#[tokio::test]
async fn a_resent_message_is_stored_once() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let ch = general(&s, &ann.token).await;
    ann.send(&say(ch, "same-id", "only once")).await;
    let first = acked(&mut ann, "same-id").await;
    ann.send(&say(ch, "same-id", "only once")).await;
    let second = acked(&mut ann, "same-id").await;
    assert_eq!(first, second, "the resend is acked with the same id");
    bob.expect("the message", |m| {
        matches!(m, ServerMessage::ChatMessage { .. })
    })
    .await;
    bob.expect_none("a second copy", Duration::from_millis(300), |m| {
        matches!(m, ServerMessage::ChatMessage { .. })
    })
    .await;
    assert_eq!(history(&s, &ann.token, ch, "").await.messages.len(), 1);
}

#[tokio::test]
async fn history_pages_backwards_and_survives_a_restart() {
    let mut s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let ch = general(&s, &ann.token).await;
    let mut ids = vec![];
    for i in 0..7 {
        ann.send(&say(ch, &format!("c{i}"), &format!("message {i}")))
            .await;
        ids.push(acked(&mut ann, &format!("c{i}")).await.unwrap());
    }
    let token = ann.token.clone();
    drop(ann);
    s.restart().await;

    let newest = history(&s, &token, ch, "?limit=3").await;
    assert!(newest.has_more);
    assert_eq!(
        newest.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[4..]
    );
    let older = history(&s, &token, ch, &format!("?limit=3&before={}", ids[4])).await;
    assert_eq!(
        older.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[1..4]
    );
    let oldest = history(&s, &token, ch, &format!("?limit=3&before={}", ids[1])).await;
    assert!(!oldest.has_more);
    assert_eq!(oldest.messages[0].body, "message 0");
    let (status, _, _) = s
        .get::<()>(&token, &format!("/api/channels/{ch}/messages?limit=1000"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The token survives the restart too, and a resend after it is still deduplicated.
    let mut again = Client::connect(s.addr, &token).await.unwrap();
    again.join(OFFICE).await;
    again.send(&say(ch, "c6", "message 6")).await;
    assert_eq!(acked(&mut again, "c6").await, Some(ids[6]));
}

#[tokio::test]
async fn text_commands_change_name_status_and_post_actions() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let ch = general(&s, &ann.token).await;

    ann.send(&say(ch, "n1", "/nick Annie")).await;
    assert_eq!(
        acked(&mut ann, "n1").await,
        None,
        "commands store no message"
    );
    let me = ann.user;
    bob.expect("the new name", |m| {
        matches!(m, ServerMessage::Presence { updated, .. }
            if updated.iter().any(|u| u.user_id == me && u.display_name == "Annie"))
    })
    .await;

    ann.send(&say(ch, "s1", "/status busy heads down")).await;
    acked(&mut ann, "s1").await;
    bob.expect("the new status", |m| {
        matches!(m, ServerMessage::Presence { updated, .. }
            if updated.iter().any(|u| u.user_id == me && u.status == Status::Busy
                && u.status_text.as_deref() == Some("heads down")))
    })
    .await;
    let (_, _, info) = s
        .get::<hallway_shared::protocol::UserInfo>(&ann.token, "/api/me")
        .await;
    let info = info.unwrap();
    assert_eq!(info.display_name, "Annie");
    assert_eq!(info.status, Status::Busy);

    ann.send(&say(ch, "a1", "/me waves")).await;
    acked(&mut ann, "a1").await.expect("/me is stored");
    let m = bob
        .expect("the action", |m| {
            matches!(m, ServerMessage::ChatMessage { .. })
        })
        .await;
    let ServerMessage::ChatMessage { message } = m else {
        unreachable!()
    };
    assert_eq!(message.kind, MessageKind::Me);
    assert_eq!(message.body, "waves");
    assert_eq!(message.author_name, "Annie");

    ann.send(&say(ch, "u1", "/dance")).await;
    let m = ann
        .expect("an error", |m| matches!(m, ServerMessage::Error { .. }))
        .await;
    let ServerMessage::Error {
        code,
        client_msg_id,
        ..
    } = m
    else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::UnknownCommand);
    assert_eq!(client_msg_id.as_deref(), Some("u1"));

    // set_status over the protocol, too.
    ann.send(&ClientMessage::SetStatus {
        status: Status::Away,
        text: None,
    })
    .await;
    bob.expect("away", |m| {
        matches!(m, ServerMessage::Presence { updated, .. }
            if updated.iter().any(|u| u.user_id == me && u.status == Status::Away))
    })
    .await;
}

#[tokio::test]
async fn bad_chat_input_is_refused_with_its_id() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let ch = general(&s, &ann.token).await;
    ann.send(&say(ch, "e1", "   ")).await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    ann.send(&say(ch, "e2", &"x".repeat(4001))).await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    ann.send(&say(ChannelId(999), "e3", "hi")).await;
    assert_eq!(ann.error().await.0, ErrorCode::NotFound);
    ann.send(&say(ch, "", "no id")).await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    ann.send(&say(ch, "e4", "/me")).await;
    assert_eq!(ann.error().await.0, ErrorCode::BadRequest);
    // A channel of a space you are not in.
    let (_, _, annex) = s
        .post::<hallway_shared::protocol::SpaceInfo>(
            Some(&ann.token),
            "/api/spaces",
            &hallway_shared::protocol::CreateSpaceRequest {
                name: "Annex".into(),
                private: false,
                rules: None,
            },
        )
        .await;
    let (_, _, chans) = s
        .get::<Vec<ChannelInfo>>(
            &ann.token,
            &format!("/api/spaces/{}/channels", annex.unwrap().id),
        )
        .await;
    let annex_ch = chans.unwrap()[0].id;
    assert_ne!(annex_ch, ch);
    ann.send(&say(annex_ch, "e5", "hello annex")).await;
    assert_eq!(ann.error().await.0, ErrorCode::NotInSpace);
    // Nothing was stored.
    assert!(history(&s, &ann.token, ch, "").await.messages.is_empty());
}
