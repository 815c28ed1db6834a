//! The built-in STUN/TURN relay, driven by the `turn` crate's own client (the
//! one webrtc-rs's ICE agent uses) with the credentials a real `welcome`
//! carries: binding, allocation, relaying both ways, and every refusal.

use crate::common::{OFFICE, TestServer};
use hallway_server::relay::{Credentials, TurnConfig, credentials::SECRET_FILE};
use hallway_shared::protocol::{ClientMessage, IceServer, ServerMessage};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use turn::client::{Client as TurnClient, ClientConfig};
use webrtc_util::Conn;

async fn relay_server(tweak: impl FnOnce(&mut TurnConfig)) -> TestServer {
    TestServer::start_with(|c| {
        let mut turn = TurnConfig::new("127.0.0.1:0".parse().unwrap());
        // Loopback peers are denied by default; these tests relay to them.
        turn.deny_peers.clear();
        tweak(&mut turn);
        c.turn = Some(turn);
    })
    .await
}

/// A joined guest and the ICE servers its welcome carried.
async fn welcomed(server: &TestServer, name: &str) -> (crate::common::Client, Vec<IceServer>) {
    let auth = server.guest(name).await;
    let mut c = crate::common::Client::connect(server.addr, &auth.token)
        .await
        .unwrap();
    c.user = auth.user.id;
    c.send(&ClientMessage::join(OFFICE)).await;
    let ServerMessage::Welcome { ice_servers, .. } = c
        .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
        .await
    else {
        unreachable!()
    };
    (c, ice_servers)
}

/// `host:port` of the `turn:` URL.
fn turn_addr(servers: &[IceServer]) -> String {
    let url = servers[0]
        .urls
        .iter()
        .find(|u| u.starts_with("turn:"))
        .unwrap();
    let rest = url.trim_start_matches("turn:");
    rest.split('?').next().unwrap().to_owned()
}

async fn turn_client(server: &str, username: &str, password: &str) -> TurnClient {
    let conn: Arc<dyn Conn + Send + Sync> = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let client = TurnClient::new(ClientConfig {
        stun_serv_addr: server.to_owned(),
        turn_serv_addr: server.to_owned(),
        username: username.to_owned(),
        password: password.to_owned(),
        realm: String::new(),
        software: String::new(),
        rto_in_ms: 0,
        conn,
        vnet: None,
    })
    .await
    .unwrap();
    client.listen().await.unwrap();
    client
}

fn creds(servers: &[IceServer]) -> (String, String) {
    (
        servers[0].username.clone().unwrap(),
        servers[0].credential.clone().unwrap(),
    )
}

async fn recv_within(socket: &UdpSocket, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(within, socket.recv_from(&mut buf)).await {
        Ok(Ok((n, from))) => Some((buf[..n].to_vec(), from)),
        _ => None,
    }
}

#[tokio::test]
async fn a_welcomed_user_gets_stun_and_a_working_relay() {
    let server = relay_server(|t| t.relay_ports = (41000, 41999)).await;
    let (ann, servers) = welcomed(&server, "Ann").await;
    let urls = &servers[0].urls;
    assert!(urls[0].starts_with("stun:127.0.0.1:"), "{urls:?}");
    assert!(urls[1].starts_with("turn:127.0.0.1:"), "{urls:?}");
    assert!(urls[1].ends_with("?transport=udp"), "{urls:?}");
    let (username, password) = creds(&servers);
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, ann.user.to_string());
    let expiry: u64 = expiry.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        (now + 86_000..=now + 86_401).contains(&expiry),
        "{expiry} vs {now}"
    );

    let addr = turn_addr(&servers);
    let client = turn_client(&addr, &username, &password).await;
    // STUN: the server tells us the address it sees.
    let mapped = client.send_binding_request().await.unwrap();
    assert_eq!(mapped.ip().to_string(), "127.0.0.1");

    // TURN: a relayed address in the configured range, carrying both ways.
    let relayed = client.allocate().await.unwrap();
    let relayed_addr = relayed.local_addr().unwrap();
    assert!(
        (41000..=41999).contains(&relayed_addr.port()),
        "{relayed_addr}"
    );
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    relayed
        .send_to(b"through the relay", peer_addr)
        .await
        .unwrap();
    let (got, from) = recv_within(&peer, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got, b"through the relay");
    assert_eq!(from.port(), relayed_addr.port());
    peer.send_to(b"and back", from).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, back_from) = tokio::time::timeout(Duration::from_secs(2), relayed.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"and back");
    assert_eq!(back_from, peer_addr);
    relayed.close().await.unwrap();
    client.close().await.unwrap();
}

#[tokio::test]
async fn forged_expired_and_foreign_credentials_get_no_allocation() {
    let server = relay_server(|_| {}).await;
    let (ann, servers) = welcomed(&server, "Ann").await;
    let addr = turn_addr(&servers);
    let (username, password) = creds(&servers);
    let secret = std::fs::read_to_string(server.dir.path().join(SECRET_FILE)).unwrap();
    let ours = Credentials::new(secret.trim().as_bytes(), Duration::from_secs(60));

    // A forged password for a real username.
    let forged = turn_client(&addr, &username, "not-the-password").await;
    assert!(
        forged.allocate().await.is_err(),
        "forged password allocated"
    );
    // Ann's name with another user's id keeps Ann's password: wrong.
    let other_user = username.replace(&format!(":{}", ann.user), ":999");
    let swapped = turn_client(&addr, &other_user, &password).await;
    assert!(swapped.allocate().await.is_err(), "swapped user allocated");
    // Properly signed with the server's own secret, but expired.
    let past = SystemTime::now() - Duration::from_secs(120);
    let expired = ours.issue(ann.user, past);
    let late = turn_client(&addr, &expired.username, &expired.password).await;
    assert!(
        late.allocate().await.is_err(),
        "expired credential allocated"
    );
    // Signed with another server's secret.
    let foreign = Credentials::new(
        b"another-servers-secret-0123456789",
        Duration::from_secs(600),
    )
    .issue(ann.user, SystemTime::now());
    let stranger = turn_client(&addr, &foreign.username, &foreign.password).await;
    assert!(
        stranger.allocate().await.is_err(),
        "foreign secret allocated"
    );
    // Someone without a Hallway session at all.
    let nobody = turn_client(&addr, "guest", "guest").await;
    assert!(nobody.allocate().await.is_err(), "a stranger allocated");

    // The same server's fresh credential for Ann does work (the refusals
    // above are about the credentials, not the relay).
    let fresh = ours.issue(ann.user, SystemTime::now());
    let good = turn_client(&addr, &fresh.username, &fresh.password).await;
    good.allocate().await.unwrap();
}

#[tokio::test]
async fn a_user_holds_at_most_the_allocation_quota() {
    let server = relay_server(|t| t.max_allocations_per_user = 2).await;
    let (_ann, servers) = welcomed(&server, "Ann").await;
    let addr = turn_addr(&servers);
    let (username, password) = creds(&servers);
    let mut held = Vec::new();
    for _ in 0..2 {
        let c = turn_client(&addr, &username, &password).await;
        let relayed = c.allocate().await.unwrap();
        held.push((c, relayed));
    }
    let third = turn_client(&addr, &username, &password).await;
    let err = third.allocate().await.err().expect("a third allocation");
    assert!(
        err.to_string().contains("486") || err.to_string().to_lowercase().contains("quota"),
        "{err}"
    );
    // Another user is not affected.
    let (_bob, bob_servers) = welcomed(&server, "Bob").await;
    let (bu, bp) = creds(&bob_servers);
    turn_client(&addr, &bu, &bp).await.allocate().await.unwrap();
    // Freeing one makes room again.
    let (c, relayed) = held.pop().unwrap();
    relayed.close().await.unwrap();
    c.close().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let again = turn_client(&addr, &username, &password).await;
        if again.allocate().await.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed allocation was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn denied_peer_addresses_are_never_reached() {
    // The default deny list: the server's own loopback among others.
    let server = TestServer::start_with(|c| {
        c.turn = Some(TurnConfig::new("127.0.0.1:0".parse().unwrap()));
    })
    .await;
    let (_ann, servers) = welcomed(&server, "Ann").await;
    let (username, password) = creds(&servers);
    let client = turn_client(&turn_addr(&servers), &username, &password).await;
    let relayed = client.allocate().await.unwrap();
    let target = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sent = relayed
        .send_to(b"probe", target.local_addr().unwrap())
        .await;
    assert!(sent.is_err(), "a permission to loopback was granted");
    assert!(
        recv_within(&target, Duration::from_millis(500))
            .await
            .is_none(),
        "the relay reached a denied address"
    );
}

#[tokio::test]
async fn relayed_bandwidth_is_capped_per_user() {
    // 80 kbit/s = 10 000 bytes a second, bursts of one second.
    let server = relay_server(|t| t.user_kbps = 80).await;
    let (_ann, servers) = welcomed(&server, "Ann").await;
    let (username, password) = creds(&servers);
    let client = turn_client(&turn_addr(&servers), &username, &password).await;
    let relayed = client.allocate().await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let peer_addr = peer.local_addr().unwrap();
    relayed.send_to(&[0u8; 100], peer_addr).await.unwrap();
    recv_within(&peer, Duration::from_secs(2)).await.unwrap();
    // 100 kB in half a second: ten times the cap.
    let payload = [7u8; 1000];
    for _ in 0..100 {
        relayed.send_to(&payload, peer_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut received = 0usize;
    while let Some((data, _)) = recv_within(&peer, Duration::from_millis(300)).await {
        received += data.len();
    }
    assert!(
        (5_000..=30_000).contains(&received),
        "received {received} bytes of 100 000 under a 10 000 B/s cap"
    );
}

#[tokio::test]
async fn fresh_credentials_arrive_before_the_old_ones_expire() {
    let server = relay_server(|t| t.credential_ttl = Duration::from_secs(2)).await;
    let (mut ann, servers) = welcomed(&server, "Ann").await;
    let (first, first_password) = creds(&servers);
    let msg = ann
        .expect("ice_servers", |m| {
            matches!(m, ServerMessage::IceServers { .. })
        })
        .await;
    let ServerMessage::IceServers { ice_servers } = msg else {
        unreachable!()
    };
    let (second, _) = creds(&ice_servers);
    let expiry = |u: &str| u.split_once(':').unwrap().0.parse::<u64>().unwrap();
    assert!(
        expiry(&second) > expiry(&first),
        "{second} is not newer than {first}"
    );
    assert_eq!(ice_servers[0].urls, servers[0].urls);
    // Once expired, the welcome's credential allocates nothing (a user who
    // logged out keeps theirs only this long).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = turn_client(&turn_addr(&servers), &first, &first_password).await;
    assert!(
        late.allocate().await.is_err(),
        "an expired credential allocated"
    );
}

#[tokio::test]
async fn without_the_relay_welcome_lists_only_external_servers() {
    let server = TestServer::start_with(|c| {
        c.ice_servers = vec![hallway_server::config::parse_ice_server(
            "stun:stun.example.org:3478",
        )];
    })
    .await;
    let (_ann, servers) = welcomed(&server, "Ann").await;
    assert_eq!(servers.len(), 1);
    assert_eq!(servers[0].urls, ["stun:stun.example.org:3478"]);
}

#[tokio::test]
async fn a_bad_relay_port_range_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = hallway_server::Config::new(dir.path());
    let mut turn = TurnConfig::new("127.0.0.1:0".parse().unwrap());
    turn.relay_ports = (5000, 4000);
    config.turn = Some(turn);
    let server = hallway_server::RunningServer::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let err = server.stop().await.unwrap_err();
    assert!(err.to_string().contains("relay ports 5000-4000"), "{err}");
}
