use crate::common::*;
use hallway_shared::protocol::ServerMessage;
use hallway_shared::{MapModel, TilePos, UserId};
use std::time::Duration;

const SETTLE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn link_at_five_tiles_stay_at_six_unlink_at_seven() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let map = s.map(&ann.token).await;
    ann.walk_to(&map, TilePos::new(10, 9)).await;
    bob.walk_to(&map, TilePos::new(20, 9)).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    bob.await_peers("empty", |p| p.is_empty()).await;

    bob.walk_to(&map, TilePos::new(16, 9)).await;
    ann.drain(SETTLE).await;
    assert!(ann.peers.is_empty(), "6 tiles apart is too far to link");

    bob.walk_to(&map, TilePos::new(15, 9)).await;
    let (a, b) = (ann.user, bob.user);
    ann.await_peers("[bob]", |p| p == [b]).await;
    bob.await_peers("[ann]", |p| p == [a]).await;
    assert_eq!(ann.peers[0].offerer, a < b, "the lower id offers");
    assert_eq!(bob.peers[0].offerer, b < a);

    bob.walk_to(&map, TilePos::new(16, 9)).await;
    ann.drain(SETTLE).await;
    assert_eq!(ann.peer_ids(), [b], "still linked at 6 tiles");
    assert_eq!(bob.peer_ids(), [a]);

    bob.walk_to(&map, TilePos::new(17, 9)).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    bob.await_peers("empty", |p| p.is_empty()).await;
}

#[tokio::test]
async fn the_peer_cap_is_symmetric_in_a_crowd_of_eight() {
    let s = TestServer::start().await;
    let mut clients = vec![];
    for i in 0..8 {
        clients.push(s.joined(&format!("P{i}")).await);
    }
    let map = s.map(&clients[0].token).await;
    for (i, c) in clients.iter_mut().enumerate() {
        let spot = TilePos::new(10 + (i as i32 % 4), 9 + (i as i32 / 4));
        c.walk_to(&map, spot).await;
    }
    for c in &mut clients {
        c.drain(SETTLE).await;
    }
    let lists: Vec<(UserId, Vec<UserId>)> =
        clients.iter().map(|c| (c.user, c.peer_ids())).collect();
    for (me, peers) in &lists {
        assert!(peers.len() <= 6, "{me} has {} peers", peers.len());
        assert!(!peers.contains(me));
        for p in peers {
            let theirs = &lists.iter().find(|(u, _)| u == p).unwrap().1;
            assert!(
                theirs.contains(me),
                "{me} lists {p} but {p} does not list {me}: {lists:?}"
            );
        }
    }
    // Everyone is within 5 tiles of everyone: no two people with a free slot are left unlinked.
    for (a, pa) in &lists {
        for (b, pb) in &lists {
            if a < b && !pa.contains(b) {
                assert!(
                    pa.len() == 6 || pb.len() == 6,
                    "{a} and {b} both have room: {lists:?}"
                );
            }
        }
    }
    let total: usize = lists.iter().map(|(_, p)| p.len()).sum();
    assert!(total >= 40, "the crowd is well connected: {lists:?}");
}

/// Walkable tiles inside a zone, sorted by x + y.
fn zone_tiles(map: &MapModel, name: &str) -> Vec<TilePos> {
    let zone = map.zones.iter().find(|z| z.name == name).unwrap();
    let mut tiles: Vec<TilePos> = (zone.y..zone.y + zone.height)
        .flat_map(|y| (zone.x..zone.x + zone.width).map(move |x| TilePos::new(x, y)))
        .filter(|p| map.is_walkable(*p))
        .collect();
    tiles.sort_by_key(|p| p.x + p.y);
    tiles
}

#[tokio::test]
async fn a_meeting_zone_joins_everyone_inside_and_nobody_outside() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let mut carl = s.joined("Carl").await;
    let mut dan = s.joined("Dan").await;
    let map = s.map(&ann.token).await;
    let room = zone_tiles(&map, "Meeting Room A");
    let (near, far) = (room[0], *room.last().unwrap());
    assert!(
        near.distance(far) > 6.0,
        "the test needs two far-apart spots"
    );

    ann.walk_to(&map, near).await;
    bob.walk_to(&map, far).await;
    // Carl stands in the corridor right outside the door, close to Bob through the wall.
    let outside = TilePos::new(far.x, 9);
    carl.walk_to(&map, outside).await;
    dan.walk_to(&map, TilePos::new(far.x + 2, 9)).await;
    assert!(outside.distance(far) <= 5.0);

    let (a, b, c, d) = (ann.user, bob.user, carl.user, dan.user);
    ann.await_peers("[bob]", |p| p == [b]).await;
    bob.await_peers("[ann]", |p| p == [a]).await;
    carl.await_peers("[dan]", |p| p == [d]).await;
    dan.await_peers("[carl]", |p| p == [c]).await;

    // Walking out through the door leaves the room's link.
    let door = map
        .zones
        .iter()
        .find(|z| z.name == "Meeting Room A")
        .map(|z| TilePos::new(z.x + 4, z.y + z.height))
        .unwrap();
    assert!(map.is_walkable(door), "door at {door:?}");
    bob.walk_to(&map, door).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    bob.walk_to(&map, TilePos::new(outside.x - 3, 9)).await;
    bob.await_peers("carl", |p| p.contains(&c)).await;
}

#[tokio::test]
async fn leaving_the_space_unlinks_at_once() {
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let b = bob.user;
    ann.await_peers("[bob]", |p| p == [b]).await;
    bob.send(&hallway_shared::protocol::ClientMessage::Leave)
        .await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    ann.expect(
        "bob left",
        |m| matches!(m, ServerMessage::Presence { left, .. } if left.contains(&b)),
    )
    .await;
    // Disconnecting does the same.
    bob.join(OFFICE).await;
    ann.await_peers("[bob]", |p| p == [b]).await;
    drop(bob);
    ann.await_peers("empty", |p| p.is_empty()).await;
}

#[tokio::test]
async fn a_space_can_have_its_own_rules() {
    use hallway_shared::protocol::{CreateSpaceRequest, SpaceInfo, SpaceRules};
    use hallway_shared::proximity::ProximityConfig;
    let s = TestServer::start().await;
    let mut ann = s.joined("Ann").await;
    let mut bob = s.joined("Bob").await;
    let rules = SpaceRules {
        proximity: ProximityConfig {
            enter_radius: 2.0,
            leave_radius: 3.0,
            full_volume_radius: 1.0,
            ..ProximityConfig::default()
        },
        max_steps_per_second: 30.0,
        step_burst: 30.0,
    };
    let create = |rules| CreateSpaceRequest {
        name: "Library".into(),
        private: false,
        rules: Some(rules),
    };
    let mut bad = rules;
    bad.proximity.enter_radius = 9.0;
    let (status, body, _) = s
        .post::<()>(Some(&ann.token), "/api/spaces", &create(bad))
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    let (status, _, space) = s
        .post::<SpaceInfo>(Some(&ann.token), "/api/spaces", &create(rules))
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    let space = space.unwrap().id;

    ann.send(&hallway_shared::protocol::ClientMessage::join(space))
        .await;
    let welcome = ann
        .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
        .await;
    let ServerMessage::Welcome { rules: got, .. } = welcome else {
        unreachable!()
    };
    assert_eq!(got, rules, "welcome carries the space's rules");
    bob.join(space).await;
    let map = s.map(&ann.token).await;
    ann.walk_to(&map, TilePos::new(10, 9)).await;
    bob.walk_to(&map, TilePos::new(13, 9)).await;
    ann.await_peers("empty", |p| p.is_empty()).await;
    let b = bob.user;
    bob.walk_to(&map, TilePos::new(12, 9)).await;
    ann.await_peers("[bob] at 2 tiles", |p| p == [b]).await;
    bob.walk_to(&map, TilePos::new(13, 9)).await;
    ann.drain(SETTLE).await;
    assert_eq!(ann.peer_ids(), [b], "still linked at 3 tiles");
    bob.walk_to(&map, TilePos::new(14, 9)).await;
    ann.await_peers("empty beyond 3", |p| p.is_empty()).await;
}
