use crate::common::*;
use hallway_shared::protocol::{
    ChannelInfo, ChannelKind, CreateChannelRequest, CreateSpaceRequest, JoinSpaceRequest,
    OpenDirectRequest, ServerMessage, SpaceDetail, SpaceInfo,
};
use reqwest::StatusCode;

#[tokio::test]
async fn a_new_server_has_the_office_with_its_map() {
    let s = TestServer::start().await;
    let a = s.guest("Ann").await;
    let (status, _, spaces) = s.get::<Vec<SpaceInfo>>(&a.token, "/api/spaces").await;
    assert_eq!(status, StatusCode::OK);
    let spaces = spaces.unwrap();
    assert_eq!(spaces.len(), 1);
    assert_eq!(spaces[0].name, "Office");
    assert!(!spaces[0].private);
    let map = s.map(&a.token).await;
    assert!(map.width >= 40 && map.height >= 30);
    assert!(map.zones.len() >= 2);
    assert!(!map.layers.is_empty() && !map.tilesets.is_empty());
}

#[tokio::test]
async fn private_spaces_are_joined_by_invite_only() {
    let s = TestServer::start().await;
    let owner = s.guest("Owner").await;
    let other = s.guest("Other").await;
    let (status, body, space) = s
        .post::<SpaceInfo>(
            Some(&owner.token),
            "/api/spaces",
            &CreateSpaceRequest {
                name: "Secret lab".into(),
                private: true,
                rules: None,
            },
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let space = space.unwrap();
    let code = space
        .invite_code
        .clone()
        .expect("the owner sees the invite code");

    // Invisible and inaccessible to others, over REST and WebSocket.
    let (_, _, list) = s.get::<Vec<SpaceInfo>>(&other.token, "/api/spaces").await;
    assert!(list.unwrap().iter().all(|sp| sp.id != space.id));
    let path = format!("/api/spaces/{}", space.id);
    assert_eq!(
        s.get::<()>(&other.token, &path).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get::<()>(&other.token, &format!("{path}/map")).await.0,
        StatusCode::NOT_FOUND
    );
    let mut ws = Client::connect(s.addr, &other.token).await.unwrap();
    ws.send(&hallway_shared::protocol::ClientMessage::join(space.id))
        .await;
    let (code_err, _) = ws.error().await;
    assert_eq!(code_err, hallway_shared::protocol::ErrorCode::NotFound);

    // A wrong code is refused; the right one lets them in.
    let (status, _, _) = s
        .post::<()>(
            Some(&other.token),
            "/api/spaces/join",
            &JoinSpaceRequest {
                invite_code: "wrongcode1".into(),
            },
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, joined) = s
        .post::<SpaceInfo>(
            Some(&other.token),
            "/api/spaces/join",
            &JoinSpaceRequest {
                invite_code: code.to_uppercase(),
            },
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(joined.unwrap().id, space.id);
    let (_, _, list) = s.get::<Vec<SpaceInfo>>(&other.token, "/api/spaces").await;
    assert!(list.unwrap().iter().any(|sp| sp.id == space.id));
    ws.join(space.id).await;

    // Details list who is online.
    let (_, _, detail) = s.get::<SpaceDetail>(&owner.token, &path).await;
    let detail = detail.unwrap();
    assert_eq!(detail.space.online, 1);
    assert_eq!(detail.members.len(), 1);
    assert_eq!(detail.members[0].user_id, other.user.id);
}

#[tokio::test]
async fn channels_are_listed_created_and_unique() {
    let s = TestServer::start().await;
    let a = s.guest("Ann").await;
    let (_, _, channels) = s
        .get::<Vec<ChannelInfo>>(&a.token, "/api/spaces/1/channels")
        .await;
    let names: Vec<String> = channels.unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["general", "random"]);
    let make = |name: &str| CreateChannelRequest { name: name.into() };
    let (status, _, created) = s
        .post::<ChannelInfo>(Some(&a.token), "/api/spaces/1/channels", &make("#Design"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let created = created.unwrap();
    assert_eq!(created.name, "design");
    assert_eq!(created.kind, ChannelKind::Space);
    let (status, _, _) = s
        .post::<()>(Some(&a.token), "/api/spaces/1/channels", &make("design"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = s
        .post::<()>(Some(&a.token), "/api/spaces/1/channels", &make("two words"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = s
        .post::<()>(Some(&a.token), "/api/spaces/99/channels", &make("x"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn direct_messages_reach_both_users_only() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let mut eve = s.joined("Eve").await;
    let (status, body, dm) = s
        .post::<ChannelInfo>(
            Some(&ann.token),
            "/api/dms",
            &OpenDirectRequest { user_id: bob.user },
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let dm = dm.unwrap();
    assert_eq!(dm.kind, ChannelKind::Direct);
    assert_eq!(dm.name, "Bob");
    // Opening it again from the other side gives the same channel.
    let (_, _, again) = s
        .post::<ChannelInfo>(
            Some(&bob.token),
            "/api/dms",
            &OpenDirectRequest { user_id: ann.user },
        )
        .await;
    let again = again.unwrap();
    assert_eq!(again.id, dm.id);
    assert_eq!(again.name, "Ann");
    let (_, _, list) = s.get::<Vec<ChannelInfo>>(&bob.token, "/api/dms").await;
    assert_eq!(list.unwrap().len(), 1);

    ann.send(&hallway_shared::protocol::ClientMessage::ChatSend {
        channel_id: dm.id,
        client_msg_id: "dm-1".into(),
        body: "psst".into(),
    })
    .await;
    for c in [&mut ann, &mut bob] {
        c.expect(
            "the direct message",
            |m| matches!(m, ServerMessage::ChatMessage { message } if message.body == "psst"),
        )
        .await;
    }
    eve.expect_none(
        "someone else's DM",
        std::time::Duration::from_millis(300),
        |m| matches!(m, ServerMessage::ChatMessage { .. }),
    )
    .await;
    // Eve cannot read it or post to it.
    let path = format!("/api/channels/{}/messages", dm.id);
    assert_eq!(
        s.get::<()>(&eve.token, &path).await.0,
        StatusCode::NOT_FOUND
    );
    eve.send(&hallway_shared::protocol::ClientMessage::ChatSend {
        channel_id: dm.id,
        client_msg_id: "x".into(),
        body: "let me in".into(),
    })
    .await;
    let (code, _) = eve.error().await;
    assert_eq!(code, hallway_shared::protocol::ErrorCode::NotFound);
    // Self-DMs and unknown users are refused.
    let (status, _, _) = s
        .post::<()>(
            Some(&ann.token),
            "/api/dms",
            &OpenDirectRequest { user_id: ann.user },
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = s
        .post::<()>(
            Some(&ann.token),
            "/api/dms",
            &OpenDirectRequest {
                user_id: hallway_shared::UserId(999),
            },
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
