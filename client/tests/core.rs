//! The Bevy-free core against a real server: login, join, walking, seeing a
//! second client, chat, and reconnecting after the server restarts.
#![allow(clippy::unwrap_used)]

use hallway_client::core::api::Api;
use hallway_client::core::chat::ChatState;
use hallway_client::core::net::{self, NetEvent, NetHandle};
use hallway_client::core::space::SpaceState;
use hallway_server::{Config, RunningServer};
use hallway_shared::protocol::{ClientMessage, ServerMessage};
use hallway_shared::{Facing, SpaceId, TilePos, UserId};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const OFFICE: SpaceId = SpaceId(1);

/// The server's settings, with a step rate that lets tests walk quickly.
fn fast_config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.max_steps_per_second = 500.0;
    c.step_burst = 100.0;
    c
}

struct Harness {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    server: Option<RunningServer>,
    addr: SocketAddr,
}

impl Harness {
    fn start() -> Harness {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server = rt
            .block_on(RunningServer::start(
                "127.0.0.1:0".parse().unwrap(),
                fast_config(dir.path()),
            ))
            .unwrap();
        let addr = server.addr;
        Harness {
            rt,
            dir,
            server: Some(server),
            addr,
        }
    }

    fn restart(&mut self) {
        let server = self.server.take().unwrap();
        self.rt.block_on(server.stop()).unwrap();
        let server = self
            .rt
            .block_on(RunningServer::start(
                self.addr,
                fast_config(self.dir.path()),
            ))
            .unwrap();
        self.server = Some(server);
    }

    fn api(&self) -> Api {
        Api::new(&self.addr.to_string())
    }
}

/// A client: a session plus the state it builds.
struct Client {
    net: NetHandle,
    space: SpaceState,
    chat: ChatState,
    me: UserId,
    api: Api,
}

impl Client {
    fn new(h: &Harness, name: &str) -> Client {
        let api = h.api();
        let auth = h.rt.block_on(api.guest(name)).unwrap();
        let api = api.with_token(auth.token.clone());
        let net = net::spawn(h.rt.handle(), api.ws_url(), auth.token);
        Client {
            net,
            space: SpaceState::default(),
            chat: ChatState::new(),
            me: auth.user.id,
            api,
        }
    }

    /// Feeds events into the state until `pred` holds for one of them.
    fn wait<F: FnMut(&NetEvent, &SpaceState) -> bool>(
        &mut self,
        what: &str,
        mut pred: F,
    ) -> NetEvent {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let Some(event) = self.net.recv_timeout(Duration::from_millis(100)) else {
                continue;
            };
            if let NetEvent::Message(m) = &event {
                self.space.apply(m);
                self.chat.apply(m, Some(self.me));
            }
            if pred(&event, &self.space) {
                return event;
            }
        }
        panic!("{} never saw {what}", self.me);
    }

    /// Waits until the state satisfies `pred` (checking what is known first).
    fn wait_state<F: FnMut(&SpaceState) -> bool>(&mut self, what: &str, mut pred: F) {
        if pred(&self.space) {
            return;
        }
        self.wait(what, |_, s| pred(s));
    }

    fn join(&mut self) {
        self.net.send(ClientMessage::join(OFFICE));
        self.wait("welcome", |e, _| {
            matches!(e, NetEvent::Message(m) if matches!(**m, ServerMessage::Welcome { .. }))
        });
    }

    fn walk(&mut self, path: &[(i32, i32)]) {
        for &(x, y) in path {
            self.net.send(ClientMessage::Move {
                x,
                y,
                facing: Facing::Right,
            });
        }
        let &(x, y) = path.last().unwrap();
        let me = self.me;
        self.wait_state("own position", |s| {
            s.members.get(&me).is_some_and(|m| (m.x, m.y) == (x, y))
        });
    }
}

/// A shortest walkable path from `from` to `to`, using the app's own path finding.
fn path(map: &hallway_shared::MapModel, from: TilePos, to: TilePos) -> Vec<(i32, i32)> {
    use hallway_client::core::walk::{direction_towards, step};
    let mut out = vec![];
    let mut p = from;
    while p != to {
        let dir = direction_towards(map, p, to).expect("a way there");
        p = step(p, dir);
        out.push((p.x, p.y));
    }
    out
}

fn to_corridor(h: &Harness, c: &Client) -> Vec<(i32, i32)> {
    let map = h.rt.block_on(c.api.map(OFFICE)).unwrap();
    let from = c.space.my_member().map(|m| TilePos::new(m.x, m.y)).unwrap();
    path(&map, from, TilePos::new(12, 9))
}

#[test]
fn login_join_walk_and_see_each_other() {
    let h = Harness::start();
    let mut ann = Client::new(&h, "Ann");
    ann.wait("connected", |e, _| *e == NetEvent::Connected);
    ann.join();
    let mut bob = Client::new(&h, "Bob");
    bob.join();
    let (a, b) = (ann.me, bob.me);
    ann.wait_state("bob joined", |s| s.members.contains_key(&b));
    assert!(bob.space.members.contains_key(&a), "welcome lists ann");
    ann.wait_state("bob as a peer", |s| s.is_peer(b));

    let path = to_corridor(&h, &ann);
    ann.walk(&path);
    let &(x, y) = path.last().unwrap();
    bob.wait_state("ann's move", |s| {
        s.members.get(&a).is_some_and(|m| (m.x, m.y) == (x, y))
    });
    let me = h.rt.block_on(ann.api.me()).unwrap();
    assert_eq!(me.id, a);
}

#[test]
fn chat_is_acknowledged_delivered_and_in_history() {
    let h = Harness::start();
    let mut ann = Client::new(&h, "Ann");
    ann.join();
    let mut bob = Client::new(&h, "Bob");
    bob.join();
    let channels = h.rt.block_on(ann.api.channels(OFFICE)).unwrap();
    ann.chat.set_channels(channels.clone());
    bob.chat.set_channels(channels);
    let general = ann.chat.active.unwrap();
    let send = ann.chat.compose(general, "hello from the core");
    ann.net.send(send);
    ann.wait(
        "ack",
        |e, _| matches!(e, NetEvent::Message(m) if matches!(**m, ServerMessage::ChatAck { .. })),
    );
    assert!(ann.chat.pending.is_empty());
    bob.wait("message", |e, _| {
        matches!(e, NetEvent::Message(m) if matches!(**m, ServerMessage::ChatMessage { .. }))
    });
    bob.chat.open(hallway_shared::ChannelId(999));
    let page = h.rt.block_on(bob.api.messages(general, None, 10)).unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].body, "hello from the core");
    assert_eq!(bob.chat.channels[&general].messages.len(), 1);
}

#[test]
fn reconnects_after_a_server_restart_and_rejoins_where_it_was() {
    let mut h = Harness::start();
    let mut ann = Client::new(&h, "Ann");
    ann.join();
    let path = to_corridor(&h, &ann);
    ann.walk(&path);
    let &(x, y) = path.last().unwrap();

    h.restart();
    ann.wait("disconnected", |e, _| {
        matches!(e, NetEvent::Disconnected { .. })
    });
    // Back without doing anything: same space, same tile (the restarted server
    // does not remember it; the client asks for it).
    let me = ann.me;
    ann.wait(
        "welcome again",
        |e, _| matches!(e, NetEvent::Message(m) if matches!(**m, ServerMessage::Welcome { .. })),
    );
    let m = ann.space.members.get(&me).unwrap();
    assert_eq!((m.x, m.y), (x, y), "rejoined where it was");
    // And it works: a step goes through.
    ann.walk(&[(x + 1, y)]);
}

#[test]
fn a_refused_token_stops_the_session() {
    let h = Harness::start();
    let net = net::spawn(h.rt.handle(), h.api().ws_url(), "not-a-token".into());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no Unauthorized");
        if net.recv_timeout(Duration::from_millis(100)) == Some(NetEvent::Unauthorized) {
            break;
        }
    }
}

/// Hosting lives with the app (the `app` feature).
#[cfg(feature = "app")]
#[test]
fn this_computer_hosts_a_server_others_can_reach() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hosted = rt
        .block_on(hallway_client::app::host::HostedServer::start(
            dir.path().to_owned(),
        ))
        .unwrap();
    let health = rt.block_on(Api::new(&hosted.local_url).health()).unwrap();
    assert_eq!(health.status, "ok");
    assert!(
        dir.path().join("hallway.db").exists(),
        "data kept in the given directory"
    );
    // It listens on every interface, so the LAN addresses (if any) answer too.
    for url in &hosted.lan_urls {
        assert!(url.starts_with("http://"), "{url}");
    }
    rt.block_on(hosted.stop()).unwrap();
}
