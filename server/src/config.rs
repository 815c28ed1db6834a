//! Server settings. The binary fills them from flags and environment variables;
//! tests and the desktop app (which can host a server in-process) build them directly.

use hallway_shared::protocol::IceServer;
use hallway_shared::proximity::ProximityConfig;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the SQLite database lives (created if missing).
    pub data_dir: PathBuf,
    /// Extra Tiled maps (`*.tmx`) beside the built-in ones.
    pub maps_dir: Option<PathBuf>,
    /// Proximity rules for every space.
    pub proximity: ProximityConfig,
    /// Sustained steps per second a client may take.
    pub max_steps_per_second: f32,
    /// Steps a client may take in a burst above that rate (network jitter).
    pub step_burst: f32,
    /// External STUN/TURN servers handed to clients for WebRTC (after the
    /// built-in relay's, if it runs).
    pub ice_servers: Vec<IceServer>,
    /// The built-in STUN/TURN relay; `None` runs none (the binary runs it
    /// unless `--no-turn`).
    pub turn: Option<crate::relay::TurnConfig>,
    /// How often the server pings each WebSocket.
    pub ping_interval: Duration,
    /// A WebSocket silent this long (not even a pong) is closed.
    pub idle_timeout: Duration,
    /// Messages queued for one client before it is dropped as too slow.
    pub outbox_capacity: usize,
    /// WebSocket messages a second per connection, sustained and burst.
    pub messages_per_second: f64,
    pub message_burst: f64,
    /// Chat messages a second per connection, sustained and burst.
    pub chats_per_second: f64,
    pub chat_burst: f64,
    /// Login attempts per username each minute.
    pub login_attempts_per_minute: u32,
    /// Login and registration attempts per client address each minute (an
    /// office behind one NAT shares an address).
    pub login_attempts_per_address_minute: u32,
    /// Guest accounts created per client address each minute.
    pub guests_per_minute: u32,
    /// Open WebSocket connections at most.
    pub max_connections: usize,
    /// Presence updates are batched and sent this often.
    pub tick: Duration,
}

impl Config {
    /// The rules of a space that has none of its own.
    pub fn default_rules(&self) -> hallway_shared::protocol::SpaceRules {
        hallway_shared::protocol::SpaceRules {
            proximity: self.proximity,
            max_steps_per_second: self.max_steps_per_second,
            step_burst: self.step_burst,
        }
    }

    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            maps_dir: None,
            proximity: ProximityConfig::default(),
            max_steps_per_second: 8.0,
            step_burst: 4.0,
            ice_servers: Vec::new(),
            turn: None,
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            outbox_capacity: 512,
            messages_per_second: 40.0,
            message_burst: 80.0,
            chats_per_second: 3.0,
            chat_burst: 10.0,
            login_attempts_per_minute: 10,
            login_attempts_per_address_minute: 60,
            guests_per_minute: 120,
            max_connections: 10_000,
            tick: Duration::from_millis(50),
        }
    }
}

/// Reads an ICE server from a URL: `turn:user:pass@host:port` becomes a TURN
/// server with credentials, anything else (`stun:host:port`) is used as is.
pub fn parse_ice_server(s: &str) -> IceServer {
    let (scheme, rest) = s.split_once(':').unwrap_or((s, ""));
    if let Some((creds, host)) = rest.rsplit_once('@')
        && let Some((user, pass)) = creds.split_once(':')
    {
        return IceServer {
            urls: vec![format!("{scheme}:{host}")],
            username: Some(user.to_owned()),
            credential: Some(pass.to_owned()),
        };
    }
    IceServer {
        urls: vec![s.to_owned()],
        username: None,
        credential: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_server_urls() {
        let stun = parse_ice_server("stun:stun.example.org:3478");
        assert_eq!(stun.urls, ["stun:stun.example.org:3478"]);
        assert_eq!(stun.username, None);
        let turn = parse_ice_server("turn:ann:s3cret@turn.example.org:3478");
        assert_eq!(turn.urls, ["turn:turn.example.org:3478"]);
        assert_eq!(turn.username.as_deref(), Some("ann"));
        assert_eq!(turn.credential.as_deref(), Some("s3cret"));
    }
}
