//! The built-in STUN and TURN relay (RFC 8489 binding, RFC 8656 relay, by the
//! `turn` crate of the webrtc-rs family) on UDP, so that two people behind
//! home routers can call without anyone installing coturn. Only users with a
//! Hallway session get credentials (see [`credentials`]); the [`gate`] keeps
//! the relay from being an open proxy (per-user allocation and bandwidth caps,
//! a deny list of peer addresses).

pub mod credentials;
pub mod gate;

pub use credentials::{CredentialError, Credentials};
pub use gate::{GateStats, Policy};

use async_trait::async_trait;
use hallway_shared::UserId;
use hallway_shared::protocol::IceServer;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use turn::relay::RelayAddressGenerator;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

/// The realm in the TURN long-term credential mechanism.
pub const REALM: &str = "hallway";

/// How the relay runs (the binary's `--turn-*` flags).
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// UDP address for STUN and TURN.
    pub bind: SocketAddr,
    /// The address the relay tells clients about; `None` works it out (see
    /// [`public_ip`]).
    pub public_ip: Option<IpAddr>,
    /// Ports for relayed addresses, inclusive.
    pub relay_ports: (u16, u16),
    /// How long an issued credential is valid. Fresh ones are sent when half
    /// of it is gone.
    pub credential_ttl: Duration,
    pub max_allocations_per_user: usize,
    /// Per user and direction.
    pub user_kbps: u32,
    /// Peers the relay never sends to or takes from.
    pub deny_peers: Vec<IpNet>,
}

impl TurnConfig {
    pub fn new(bind: SocketAddr) -> TurnConfig {
        TurnConfig {
            bind,
            public_ip: None,
            relay_ports: (49152, 65535),
            credential_ttl: Duration::from_secs(24 * 3600),
            max_allocations_per_user: 32,
            user_kbps: 20_000,
            deny_peers: default_deny(),
        }
    }
}

/// The server's own loopback, link-local, "this network" and multicast
/// ranges: what a relay must never be used to reach.
pub fn default_deny() -> Vec<IpNet> {
    [
        "127.0.0.0/8",
        "0.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::1/128",
        "::/128",
        "fe80::/10",
        "ff00::/8",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect()
}

/// Parses `a-b` (inclusive, 1..=65535, a ≤ b).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected a port range like 49152-65535"))?;
    let a: u16 = a.trim().parse().map_err(|e| format!("{a:?}: {e}"))?;
    let b: u16 = b.trim().parse().map_err(|e| format!("{b:?}: {e}"))?;
    if a == 0 || a > b {
        return Err(format!("{s:?}: need 1 ≤ first ≤ last"));
    }
    Ok((a, b))
}

/// The address to advertise: `--public-ip`, else the relay's or the HTTP
/// server's bind address when it is a specific one, else the first
/// non-loopback IPv4 interface, else loopback.
pub fn public_ip(config: &TurnConfig, http_bind: IpAddr) -> IpAddr {
    if let Some(ip) = config.public_ip {
        return ip;
    }
    for ip in [config.bind.ip(), http_bind] {
        if !ip.is_unspecified() {
            return ip;
        }
    }
    if_addrs::get_if_addrs()
        .ok()
        .and_then(|ifs| {
            ifs.into_iter()
                .map(|i| i.ip())
                .find(|ip| ip.is_ipv4() && !ip.is_loopback())
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Why the relay did not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("cannot read or create the TURN secret in {0}: {1}")]
    Secret(std::path::PathBuf, #[source] std::io::Error),
    #[error(
        "cannot listen for STUN/TURN on UDP {0}: {1} (another TURN server? use --turn-bind or --no-turn)"
    )]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("relay ports {0}-{1}: need 1 ≤ first ≤ last")]
    Ports(u16, u16),
    #[error("the TURN server did not start: {0}")]
    Turn(#[source] turn::Error),
}

/// What `welcome` and `ice_servers` carry: the built-in relay's STUN and TURN
/// URLs with a credential for the user, then any external servers.
#[derive(Clone, Debug)]
pub struct IceServers {
    own: Option<Arc<Own>>,
    external: Vec<IceServer>,
}

#[derive(Debug)]
struct Own {
    urls: Vec<String>,
    credentials: Credentials,
}

impl IceServers {
    pub fn external(external: Vec<IceServer>) -> IceServers {
        IceServers {
            own: None,
            external,
        }
    }

    pub fn for_user(&self, user: UserId) -> Vec<IceServer> {
        let mut servers = Vec::with_capacity(self.external.len() + 1);
        if let Some(own) = &self.own {
            let issued = own.credentials.issue(user, SystemTime::now());
            servers.push(IceServer {
                urls: own.urls.clone(),
                username: Some(issued.username),
                credential: Some(issued.password),
            });
        }
        servers.extend(self.external.iter().cloned());
        servers
    }

    /// How often a joined client is sent fresh credentials, if ours expire.
    pub fn refresh_every(&self) -> Option<Duration> {
        self.own
            .as_ref()
            .map(|o| (o.credentials.ttl() / 2).max(Duration::from_millis(500)))
    }
}

/// The running relay.
pub struct Relay {
    server: Server,
    gate: Arc<gate::Gate>,
    pub addr: SocketAddr,
    pub public_ip: IpAddr,
}

impl Relay {
    /// Binds the UDP socket and starts serving. `secret` is the HMAC key.
    pub async fn start(
        config: &TurnConfig,
        http_bind: IpAddr,
        secret: &[u8],
        external: Vec<IceServer>,
    ) -> Result<(Relay, IceServers), RelayError> {
        let (first, last) = config.relay_ports;
        if first == 0 || first > last {
            return Err(RelayError::Ports(first, last));
        }
        let socket = UdpSocket::bind(config.bind)
            .await
            .map_err(|e| RelayError::Bind(config.bind, e))?;
        let addr = socket
            .local_addr()
            .map_err(|e| RelayError::Bind(config.bind, e))?;
        let public_ip = public_ip(config, http_bind);
        let policy = Policy {
            max_allocations_per_user: config.max_allocations_per_user,
            user_bytes_per_second: f64::from(config.user_kbps) * 125.0,
            deny_peers: config.deny_peers.clone(),
        };
        let gate = Arc::new(gate::Gate::new(Arc::new(socket), policy));
        let credentials = Credentials::new(secret, config.credential_ttl);
        let (closed_tx, mut closed_rx) = mpsc::channel(256);
        let conn: Arc<dyn Conn + Send + Sync> = gate.clone();
        let server = Server::new(ServerConfig {
            conn_configs: vec![ConnConfig {
                conn,
                relay_addr_generator: Box::new(Ports {
                    bind_ip: config.bind.ip(),
                    public_ip,
                    range: config.relay_ports,
                }),
            }],
            realm: REALM.to_owned(),
            auth_handler: Arc::new(Auth(credentials.clone())),
            channel_bind_timeout: Duration::ZERO,
            alloc_close_notify: Some(closed_tx),
        })
        .await
        .map_err(RelayError::Turn)?;
        let watcher = Arc::downgrade(&gate);
        tokio::spawn(async move {
            while let Some(info) = closed_rx.recv().await {
                let Some(gate) = watcher.upgrade() else { break };
                gate.closed(info.five_tuple.src_addr);
            }
        });
        let port = addr.port();
        let ice = IceServers {
            own: Some(Arc::new(Own {
                urls: vec![
                    format!("stun:{public_ip}:{port}"),
                    format!("turn:{public_ip}:{port}?transport=udp"),
                ],
                credentials,
            })),
            external,
        };
        tracing::info!(
            "STUN/TURN relay on udp {addr}, advertised as {public_ip}:{port}, relay ports {}-{}",
            config.relay_ports.0,
            config.relay_ports.1
        );
        Ok((
            Relay {
                server,
                gate,
                addr,
                public_ip,
            },
            ice,
        ))
    }

    pub fn stats(&self) -> GateStats {
        self.gate.stats()
    }

    pub async fn close(self) {
        if let Err(e) = self.server.close().await {
            tracing::debug!("closing the relay: {e}");
        }
    }
}

/// Checks a username before the crate checks the message integrity with the
/// key this returns.
struct Auth(Credentials);

impl turn::auth::AuthHandler for Auth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        match Credentials::check(username, SystemTime::now()) {
            Ok(_) => Ok(turn::auth::generate_auth_key(
                username,
                realm,
                &self.0.password(username),
            )),
            Err(e) => {
                tracing::info!(%src_addr, "TURN request refused: credential {e}");
                Err(turn::Error::Other(e.to_string()))
            }
        }
    }
}

/// Relayed addresses: a random free port of the range on the bind address,
/// advertised with the public address.
struct Ports {
    bind_ip: IpAddr,
    public_ip: IpAddr,
    range: (u16, u16),
}

#[async_trait]
impl RelayAddressGenerator for Ports {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        if !use_ipv4 {
            return Err(turn::Error::Other("IPv6 relaying is not offered".into()));
        }
        let (first, last) = self.range;
        let span = u32::from(last.saturating_sub(first)) + 1;
        let tries: Vec<u16> = if requested_port != 0 {
            vec![requested_port]
        } else {
            (0..32)
                .map(|_| first.saturating_add((rand::random::<u32>() % span) as u16))
                .collect()
        };
        for port in tries {
            if let Ok(socket) = UdpSocket::bind(SocketAddr::new(self.bind_ip, port)).await {
                let local = socket
                    .local_addr()
                    .map_err(|e| turn::Error::Other(e.to_string()))?;
                let conn: Arc<dyn Conn + Send + Sync> = Arc::new(socket);
                return Ok((conn, SocketAddr::new(self.public_ip, local.port())));
            }
        }
        Err(turn::Error::ErrMaxRetriesExceeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("49152-65535"), Ok((49152, 65535)));
        assert_eq!(parse_port_range("5000-5000"), Ok((5000, 5000)));
        for bad in ["", "5000", "0-10", "10-5", "1-70000", "a-b"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_deny_list_covers_loopback_and_link_local() {
        let policy = Policy {
            max_allocations_per_user: 1,
            user_bytes_per_second: 1.0,
            deny_peers: default_deny(),
        };
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(policy.denies(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.2", "8.8.8.8", "2001:db8::1"] {
            assert!(!policy.denies(ip.parse().unwrap()), "{ip}");
        }
    }
}
