//! The WebSocket session: connects, keeps the connection up with backoff and
//! jitter, rejoins the space you were in, and hands every server message to
//! whoever holds the [`NetHandle`]. It runs as a task on the network runtime;
//! the handle's calls never block, so Bevy systems can use it every frame.

use futures_util::{SinkExt, StreamExt};
use hallway_shared::protocol::{ClientMessage, ServerMessage};
use hallway_shared::{SpaceId, TilePos};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum NetEvent {
    /// Trying to connect (attempt 1 is the first try).
    Connecting {
        attempt: u32,
    },
    Connected,
    /// A message from the server (boxed: most events are small).
    Message(Box<ServerMessage>),
    /// The connection dropped; the next attempt starts after `retry_in`.
    Disconnected {
        reason: String,
        retry_in: Duration,
    },
    /// The token was refused (HTTP 401): log in again. The session has stopped.
    Unauthorized,
    /// Another connection of this user took over the space (close code 4001).
    /// The session has stopped and must not reconnect by itself.
    Replaced,
}

#[derive(Debug)]
enum Command {
    Send(ClientMessage),
    /// Check now that the connection still carries (see [`NetSender::probe`]).
    Probe,
    Stop,
}

/// How long a probe waits for any frame back before the connection counts
/// as dead.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// After an established connection broke, retries stay quick this long.
const QUICK_RETRIES_FOR: Duration = Duration::from_secs(10);

/// The non-blocking end of a session.
#[derive(Debug)]
pub struct NetHandle {
    commands: mpsc::UnboundedSender<Command>,
    events: crossbeam_channel::Receiver<NetEvent>,
}

impl NetHandle {
    /// Queues a message. `join` is also remembered, so that a reconnect rejoins
    /// the same space (at the position last seen); `leave` forgets it. While
    /// disconnected, messages other than `join`/`leave` are dropped: chat is
    /// resent from the client's pending list once a new `welcome` arrives.
    pub fn send(&self, msg: ClientMessage) {
        let _ = self.commands.send(Command::Send(msg));
    }

    /// A cloneable sender for other threads and tasks (voice signaling).
    pub fn sender(&self) -> NetSender {
        NetSender(self.commands.clone())
    }

    /// The next event, if one is waiting.
    pub fn try_recv(&self) -> Option<NetEvent> {
        self.events.try_recv().ok()
    }

    /// The events themselves, to wait on together with other channels.
    pub fn events(&self) -> &crossbeam_channel::Receiver<NetEvent> {
        &self.events
    }

    /// Waits up to `timeout` for the next event (for bots and tests, not Bevy).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<NetEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }
}

impl Drop for NetHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends through a session from anywhere; never blocks.
#[derive(Debug, Clone)]
pub struct NetSender(mpsc::UnboundedSender<Command>);

impl NetSender {
    pub fn send(&self, msg: ClientMessage) {
        let _ = self.0.send(Command::Send(msg));
    }

    /// The network may have changed under us (a call's path broke): ping
    /// the server now, and if nothing comes back within [`PROBE_TIMEOUT`]
    /// (or the socket errors, as a TCP connection whose NAT mapping is gone
    /// does at once), reconnect without waiting. Otherwise a dead TCP
    /// connection goes unnoticed for as long as nothing is sent on it.
    pub fn probe(&self) {
        let _ = self.0.send(Command::Probe);
    }
}

/// The far end of a session that is not connected to anything: tests see
/// what the app sends and feed it events, through the same [`NetHandle`].
#[derive(Debug)]
pub struct Detached {
    commands: mpsc::UnboundedReceiver<Command>,
    events: crossbeam_channel::Sender<NetEvent>,
}

impl Detached {
    /// Everything sent through the handle since the last call.
    pub fn sent(&mut self) -> Vec<ClientMessage> {
        let mut out = Vec::new();
        while let Ok(cmd) = self.commands.try_recv() {
            if let Command::Send(msg) = cmd {
                out.push(msg);
            }
        }
        out
    }

    pub fn deliver(&self, event: NetEvent) {
        let _ = self.events.send(event);
    }
}

/// A handle with nothing behind it but a [`Detached`] end.
pub fn detached() -> (NetHandle, Detached) {
    let (commands, rx) = mpsc::unbounded_channel();
    let (tx, events) = crossbeam_channel::unbounded();
    (
        NetHandle { commands, events },
        Detached {
            commands: rx,
            events: tx,
        },
    )
}

/// Delay before reconnect attempt `attempt` (1-based): 0.5 s doubling to 10 s,
/// with ±25% jitter so that a restarted server is not hit by everyone at once.
pub fn backoff(attempt: u32) -> Duration {
    let base = 0.5 * 2f64.powi(attempt.saturating_sub(1).min(5) as i32);
    let base = base.min(10.0);
    let jitter = 0.75 + rand::random::<f64>() * 0.5;
    Duration::from_secs_f64(base * jitter)
}

/// Starts a session on `rt` for `ws_url` (`ws://host:port/ws`) with `token`.
pub fn spawn(rt: &tokio::runtime::Handle, ws_url: String, token: String) -> NetHandle {
    let (commands, rx) = mpsc::unbounded_channel();
    let (tx, events) = crossbeam_channel::unbounded();
    // This run's number (below 2^53, exact in any JSON reader): joins from a
    // reconnect carry it, so the server resumes us instead of taking over.
    let instance = rand::random::<u64>() >> 11;
    rt.spawn(run(ws_url, token, instance, rx, tx));
    NetHandle { commands, events }
}

/// Where to rejoin after a reconnect.
#[derive(Clone, Copy, Debug, Default)]
struct Rejoin {
    space: Option<SpaceId>,
    at: Option<TilePos>,
}

impl Rejoin {
    fn observe_out(&mut self, msg: &ClientMessage) {
        match msg {
            ClientMessage::Join { space_id, .. } => {
                if self.space != Some(*space_id) {
                    self.at = None;
                }
                self.space = Some(*space_id);
            }
            ClientMessage::Leave => *self = Rejoin::default(),
            _ => {}
        }
    }

    fn observe_in(&mut self, msg: &ServerMessage, me: &mut Option<hallway_shared::UserId>) {
        match msg {
            ServerMessage::Welcome { you, .. } => {
                *me = Some(you.user_id);
                self.at = Some(TilePos::new(you.x, you.y));
            }
            ServerMessage::Presence { moved, .. } => {
                if let Some(m) = moved.iter().find(|m| Some(m.user_id) == *me) {
                    self.at = Some(TilePos::new(m.x, m.y));
                }
            }
            ServerMessage::MoveRejected { x, y, .. } => self.at = Some(TilePos::new(*x, *y)),
            _ => {}
        }
    }

    fn join_message(&self, instance: u64) -> Option<ClientMessage> {
        self.space.map(|space_id| ClientMessage::Join {
            space_id,
            x: self.at.map(|p| p.x),
            y: self.at.map(|p| p.y),
            instance: Some(instance),
        })
    }
}

/// `msg`, with this run's instance if it is a join.
fn stamped(mut msg: ClientMessage, run: u64) -> ClientMessage {
    if let ClientMessage::Join { instance, .. } = &mut msg {
        instance.get_or_insert(run);
    }
    msg
}

async fn run(
    url: String,
    token: String,
    instance: u64,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: crossbeam_channel::Sender<NetEvent>,
) {
    let mut rejoin = Rejoin::default();
    let mut me = None;
    let mut attempt = 0u32;
    // When an established connection last broke under us (see below).
    let mut lost_at: Option<tokio::time::Instant> = None;
    loop {
        attempt += 1;
        let _ = events.send(NetEvent::Connecting { attempt });
        let outcome = match connect(&url, &token).await {
            Err(ConnectError::Unauthorized) => {
                let _ = events.send(NetEvent::Unauthorized);
                return;
            }
            Err(ConnectError::Other(e)) => (e, false),
            Ok(ws) => {
                attempt = 0;
                lost_at = None;
                tracing::debug!("connected to {url}");
                let _ = events.send(NetEvent::Connected);
                let (mut sink, mut stream) = ws.split();
                let mut reason = String::from("connection closed");
                let mut lost = false;
                if let Some(join) = rejoin.join_message(instance) {
                    let _ = sink.send(encode(&join)).await;
                }
                // An unanswered probe's deadline.
                let mut probe: Option<tokio::time::Instant> = None;
                loop {
                    let probe_due = async {
                        match probe {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = probe_due => {
                            reason = "no answer from the server (the network changed?)".into();
                            lost = true;
                            break;
                        }
                        cmd = commands.recv() => match cmd {
                            Some(Command::Send(msg)) => {
                                let msg = stamped(msg, instance);
                                rejoin.observe_out(&msg);
                                if let Err(e) = sink.send(encode(&msg)).await {
                                    reason = e.to_string();
                                    break;
                                }
                            }
                            Some(Command::Probe) => {
                                if probe.is_none() {
                                    probe = Some(tokio::time::Instant::now() + PROBE_TIMEOUT);
                                    if let Err(e) = sink.send(Message::Ping(Default::default())).await {
                                        reason = e.to_string();
                                        lost = true;
                                        break;
                                    }
                                }
                            }
                            Some(Command::Stop) | None => {
                                let _ = sink.send(Message::Close(None)).await;
                                return;
                            }
                        },
                        frame = stream.next() => match frame {
                            Some(Ok(Message::Text(text))) => {
                                probe = None;
                                match serde_json::from_str::<ServerMessage>(text.as_str()) {
                                    Ok(msg) => {
                                        rejoin.observe_in(&msg, &mut me);
                                        let _ = events.send(NetEvent::Message(Box::new(msg)));
                                    }
                                    // A newer server's message type: ignore, as the protocol asks.
                                    Err(e) => tracing::debug!("ignoring a message: {e}"),
                                }
                            }
                            Some(Ok(Message::Close(frame))) => {
                                if frame.as_ref().is_some_and(|f| f.code == CloseCode::Library(4001)) {
                                    let _ = events.send(NetEvent::Replaced);
                                    return;
                                }
                                reason = frame.map_or_else(|| "closed".into(), |f| format!("closed: {} {}", u16::from(f.code), f.reason));
                                break;
                            }
                            // Pings and pongs: the connection carries.
                            Some(Ok(_)) => probe = None,
                            // A broken socket (reset, timed out) rather than a
                            // close: most often our own network changed.
                            Some(Err(e)) => {
                                reason = e.to_string();
                                lost = true;
                                break;
                            }
                            None => break,
                        },
                    }
                }
                (reason, lost)
            }
        };
        let (reason, lost) = outcome;
        let now = tokio::time::Instant::now();
        if lost && attempt == 0 {
            lost_at = Some(now);
        }
        // A connection that broke under us (a probe unanswered, a reset: our
        // network changed, or the server died without a goodbye) is tried
        // again almost at once, then every half second or so for
        // `QUICK_RETRIES_FOR` (a restarting server is back within seconds,
        // and calls wait on it); jitter spreads everyone's attempts. A server
        // that closed (restarting: 1001, 1012) or keeps refusing gets the
        // backoff, so that its clients come back spread out.
        let retry_in = match lost_at {
            _ if lost && attempt == 0 => Duration::from_secs_f64(rand::random::<f64>() * 0.25),
            Some(at) if now.duration_since(at) < QUICK_RETRIES_FOR => {
                Duration::from_secs_f64(0.25 + rand::random::<f64>() * 0.5)
            }
            _ => backoff(attempt.max(1)),
        };
        tracing::info!("connection to the server lost ({reason}); retrying in {retry_in:?}");
        let _ = events.send(NetEvent::Disconnected { reason, retry_in });
        // Wait, but keep taking commands: a join or leave while offline
        // changes where we go on reconnect.
        let sleep = tokio::time::sleep(retry_in);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => break,
                cmd = commands.recv() => match cmd {
                    Some(Command::Send(msg)) => rejoin.observe_out(&msg),
                    Some(Command::Probe) => {}
                    Some(Command::Stop) | None => return,
                },
            }
        }
    }
}

fn encode(msg: &ClientMessage) -> Message {
    Message::text(serde_json::to_string(msg).unwrap_or_default())
}

enum ConnectError {
    Unauthorized,
    Other(String),
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, token: &str) -> Result<Socket, ConnectError> {
    let mut req = url
        .into_client_request()
        .map_err(|e| ConnectError::Other(e.to_string()))?;
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| ConnectError::Unauthorized)?;
    req.headers_mut().insert("Authorization", value);
    let connecting = tokio_tungstenite::connect_async(req);
    match tokio::time::timeout(Duration::from_secs(10), connecting).await {
        Err(_) => Err(ConnectError::Other("timed out".into())),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) if resp.status() == 401 => {
            Err(ConnectError::Unauthorized)
        }
        Ok(Err(e)) => Err(ConnectError::Other(e.to_string())),
        Ok(Ok((ws, _))) => {
            if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
                let _ = tcp.set_nodelay(true);
            }
            Ok(ws)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_a_ceiling() {
        for attempt in 1..20 {
            let d = backoff(attempt).as_secs_f64();
            let base = (0.5 * 2f64.powi((attempt - 1).min(5) as i32)).min(10.0);
            assert!(
                d >= base * 0.75 - 1e-9 && d <= base * 1.25 + 1e-9,
                "{attempt}: {d}"
            );
        }
        assert!(backoff(30) <= Duration::from_millis(12_500));
    }
}
