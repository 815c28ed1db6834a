//! Test harness: a real server on 127.0.0.1:0 with a fresh data directory, a
//! REST helper, and a WebSocket client that speaks the shared protocol types.
#![allow(dead_code, clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use hallway_server::{Config, RunningServer};
use hallway_shared::protocol::{
    AuthResponse, ClientMessage, GuestRequest, Member, Peer, ServerMessage,
};
use hallway_shared::{Facing, MapModel, SpaceId, TilePos, UserId};
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const OFFICE: SpaceId = SpaceId(1);
pub const WAIT: Duration = Duration::from_secs(5);

/// Settings for tests: generous rate limits so tests can walk quickly.
pub fn test_config(dir: &std::path::Path) -> Config {
    let mut c = Config::new(dir);
    c.max_steps_per_second = 500.0;
    c.step_burst = 100.0;
    c.messages_per_second = 2000.0;
    c.message_burst = 2000.0;
    c.chats_per_second = 200.0;
    c.chat_burst = 200.0;
    c.guests_per_minute = 10_000;
    c
}

pub struct TestServer {
    pub dir: TempDir,
    pub config: Config,
    pub server: Option<RunningServer>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let server = RunningServer::start("127.0.0.1:0".parse().unwrap(), config.clone())
            .await
            .unwrap();
        let addr = server.addr;
        TestServer {
            dir,
            config,
            server: Some(server),
            addr,
            http: reqwest::Client::new(),
        }
    }

    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().stop().await.unwrap();
        let server = RunningServer::start("127.0.0.1:0".parse().unwrap(), self.config.clone())
            .await
            .unwrap();
        self.addr = server.addr;
        self.server = Some(server);
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await.unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        token: &str,
        path: &str,
    ) -> (StatusCode, serde_json::Value, Option<T>) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        Self::decode(r).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        token: Option<&str>,
        path: &str,
        body: &impl Serialize,
    ) -> (StatusCode, serde_json::Value, Option<T>) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::decode(req.send().await.unwrap()).await
    }

    async fn decode<T: DeserializeOwned>(
        r: reqwest::Response,
    ) -> (StatusCode, serde_json::Value, Option<T>) {
        let status = r.status();
        let text = r.text().await.unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        let typed = serde_json::from_value(value.clone()).ok();
        (status, value, typed)
    }

    pub async fn guest(&self, name: &str) -> AuthResponse {
        let (status, body, auth) = self
            .post::<AuthResponse>(
                None,
                "/api/auth/guest",
                &GuestRequest {
                    display_name: name.into(),
                },
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        auth.unwrap()
    }

    pub async fn map(&self, token: &str) -> MapModel {
        let (status, body, map) = self.get::<MapModel>(token, "/api/spaces/1/map").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        map.unwrap()
    }

    /// A guest connected over WebSocket and joined to the Office.
    pub async fn joined(&self, name: &str) -> Client {
        let auth = self.guest(name).await;
        let mut c = Client::connect(self.addr, &auth.token).await.unwrap();
        c.user = auth.user.id;
        c.token = auth.token;
        c.join(OFFICE).await;
        c
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Socket,
    pub user: UserId,
    pub token: String,
    pub pos: TilePos,
    /// Everything received and not yet consumed, in order.
    pub inbox: VecDeque<ServerMessage>,
    /// The latest peer list.
    pub peers: Vec<Peer>,
    pub members: HashMap<UserId, Member>,
    pub closed: Option<Option<u16>>,
}

impl Client {
    pub async fn connect(
        addr: SocketAddr,
        token: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
        Ok(Client {
            ws,
            user: UserId(0),
            token: token.to_owned(),
            pos: TilePos::new(0, 0),
            inbox: VecDeque::new(),
            peers: Vec::new(),
            members: HashMap::new(),
            closed: None,
        })
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        self.send_text(serde_json::to_string(msg).unwrap()).await;
    }

    pub async fn send_text(&mut self, text: String) {
        if let Err(e) = self.ws.send(Message::text(text)).await {
            let mut rest = vec![];
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(500), self.ws.next()).await
            {
                rest.push(format!("{m:?}").chars().take(200).collect::<String>());
            }
            panic!(
                "user {}: send failed: {e}; then received {rest:?}",
                self.user
            );
        }
    }

    /// Reads one frame into the inbox (false on timeout or close).
    async fn pump(&mut self, timeout: Duration) -> bool {
        if self.closed.is_some() {
            return false;
        }
        match tokio::time::timeout(timeout, self.ws.next()).await {
            Err(_) => false,
            Ok(None) | Ok(Some(Err(_))) => {
                self.closed.get_or_insert(None);
                false
            }
            Ok(Some(Ok(Message::Text(t)))) => {
                let msg: ServerMessage = serde_json::from_str(t.as_str())
                    .unwrap_or_else(|e| panic!("server sent something off-protocol: {e}: {t}"));
                self.observe(&msg);
                self.inbox.push_back(msg);
                true
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                self.closed = Some(frame.map(|f| f.code.into()));
                false
            }
            Ok(Some(Ok(_))) => true,
        }
    }

    fn observe(&mut self, msg: &ServerMessage) {
        match msg {
            ServerMessage::Welcome { you, members, .. } => {
                self.pos = TilePos::new(you.x, you.y);
                self.members = members.iter().map(|m| (m.user_id, m.clone())).collect();
            }
            ServerMessage::Proximity { peers } => self.peers.clone_from(peers),
            ServerMessage::Presence {
                joined,
                moved,
                updated,
                left,
            } => {
                for m in joined.iter().chain(updated) {
                    self.members.insert(m.user_id, m.clone());
                }
                for m in moved {
                    if let Some(member) = self.members.get_mut(&m.user_id) {
                        member.x = m.x;
                        member.y = m.y;
                        member.facing = m.facing;
                    }
                }
                for u in left {
                    self.members.remove(u);
                }
            }
            ServerMessage::MoveRejected { x, y, .. } => self.pos = TilePos::new(*x, *y),
            _ => {}
        }
    }

    /// Waits for the first message matching `pred`, consuming everything before it.
    pub async fn expect<F: FnMut(&ServerMessage) -> bool>(
        &mut self,
        what: &str,
        mut pred: F,
    ) -> ServerMessage {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            while let Some(m) = self.inbox.pop_front() {
                if pred(&m) {
                    return m;
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "user {} never got {what}", self.user);
            if !self.pump(left).await && self.closed.is_some() && self.inbox.is_empty() {
                panic!(
                    "user {} never got {what}: closed {:?}",
                    self.user, self.closed
                );
            }
        }
    }

    /// Asserts that nothing matching `pred` arrives within `within`.
    pub async fn expect_none<F: FnMut(&ServerMessage) -> bool>(
        &mut self,
        what: &str,
        within: Duration,
        mut pred: F,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(m) = self.inbox.pop_front() {
                assert!(!pred(&m), "user {} got {what}: {m:?}", self.user);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero()
                || (!self.pump(left).await && self.closed.is_some() && self.inbox.is_empty())
            {
                return;
            }
        }
    }

    /// Reads everything that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) {
        self.expect_none("nothing", within, |_| false).await;
    }

    pub async fn join(&mut self, space: SpaceId) {
        self.send(&ClientMessage::join(space)).await;
        let me = self.user;
        let msg = self
            .expect("welcome", |m| matches!(m, ServerMessage::Welcome { .. }))
            .await;
        if let ServerMessage::Welcome { you, .. } = msg {
            if me == UserId(0) {
                self.user = you.user_id;
            } else {
                assert_eq!(you.user_id, me);
            }
        }
    }

    pub async fn error(&mut self) -> (hallway_shared::protocol::ErrorCode, String) {
        match self
            .expect("error", |m| matches!(m, ServerMessage::Error { .. }))
            .await
        {
            ServerMessage::Error { code, message, .. } => (code, message),
            _ => unreachable!(),
        }
    }

    /// Walks to `target` along a shortest path and waits until the server has applied it.
    pub async fn walk_to(&mut self, map: &MapModel, target: TilePos) {
        let path = path(map, self.pos, target)
            .unwrap_or_else(|| panic!("no path {:?} → {target:?}", self.pos));
        for step in path {
            let facing = facing(self.pos, step);
            self.send(&ClientMessage::Move {
                x: step.x,
                y: step.y,
                facing,
            })
            .await;
            self.pos = step;
        }
        let me = self.user;
        self.expect("own move applied", |m| match m {
            ServerMessage::Presence { moved, .. } => moved
                .iter()
                .any(|mv| mv.user_id == me && TilePos::new(mv.x, mv.y) == target),
            ServerMessage::MoveRejected { .. } => {
                panic!("move rejected on the way to {target:?}: {m:?}")
            }
            _ => false,
        })
        .await;
    }

    pub fn peer_ids(&self) -> Vec<UserId> {
        let mut ids: Vec<UserId> = self.peers.iter().map(|p| p.user_id).collect();
        ids.sort();
        ids
    }

    /// Waits until the peer list satisfies `pred`.
    pub async fn await_peers<F: Fn(&[UserId]) -> bool>(&mut self, what: &str, pred: F) {
        if pred(&self.peer_ids()) {
            return;
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            self.inbox.clear();
            if pred(&self.peer_ids()) {
                return;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "user {}: peers never became {what}; now {:?}",
                self.user,
                self.peer_ids()
            );
            self.pump(left.min(Duration::from_millis(200))).await;
        }
    }
}

pub fn facing(from: TilePos, to: TilePos) -> Facing {
    match (to.x - from.x, to.y - from.y) {
        (1, _) => Facing::Right,
        (-1, _) => Facing::Left,
        (_, -1) => Facing::Up,
        _ => Facing::Down,
    }
}

/// Breadth-first shortest path over walkable tiles (excluding `from`).
pub fn path(map: &MapModel, from: TilePos, to: TilePos) -> Option<Vec<TilePos>> {
    let mut prev: HashMap<TilePos, TilePos> = HashMap::new();
    let mut queue = VecDeque::from([from]);
    prev.insert(from, from);
    while let Some(p) = queue.pop_front() {
        if p == to {
            let mut out = vec![];
            let mut cur = to;
            while cur != from {
                out.push(cur);
                cur = prev[&cur];
            }
            out.reverse();
            return Some(out);
        }
        for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
            let n = TilePos::new(p.x + dx, p.y + dy);
            if map.is_walkable(n) && !prev.contains_key(&n) {
                prev.insert(n, p);
                queue.push_back(n);
            }
        }
    }
    None
}
