//! `hallway-server`: parses settings, sets up logging, binds, serves until
//! Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use hallway_server::Config;
use hallway_server::relay::TurnConfig;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Hallway's server: accounts, spaces, chat, proximity and WebRTC signaling.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address and port to listen on.
    #[arg(long, env = "HALLWAY_BIND", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Directory for the SQLite database (created if missing).
    #[arg(long, env = "HALLWAY_DATA_DIR", default_value = "hallway-data")]
    data_dir: PathBuf,
    /// Directory with extra Tiled maps (*.tmx) besides the built-in office.
    #[arg(long, env = "HALLWAY_MAPS_DIR")]
    maps_dir: Option<PathBuf>,
    /// STUN/TURN server handed to clients, e.g. stun:stun.example.org:3478
    /// (repeatable; a TURN URL may carry credentials as turn:user:pass@host:port).
    #[arg(
        long = "ice-server",
        env = "HALLWAY_ICE_SERVERS",
        value_delimiter = ','
    )]
    ice_servers: Vec<String>,
    /// UDP address of the built-in STUN/TURN relay.
    #[arg(long, env = "HALLWAY_TURN_BIND", default_value = "0.0.0.0:3478")]
    turn_bind: SocketAddr,
    /// The address the relay advertises to clients (behind a cloud NAT: the
    /// public one). Default: --turn-bind's or --bind's address when it is a
    /// specific one, else the first non-loopback interface.
    #[arg(long, env = "HALLWAY_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// UDP ports for relayed addresses (open them in the firewall).
    #[arg(long, env = "HALLWAY_RELAY_PORTS", default_value = "49152-65535", value_parser = parse_ports)]
    relay_ports: (u16, u16),
    /// Run no relay (clients get only the --ice-server list).
    #[arg(long, env = "HALLWAY_NO_TURN")]
    no_turn: bool,
    /// Seconds a relay credential is valid (fresh ones are sent at half).
    #[arg(long, env = "HALLWAY_TURN_CREDENTIAL_TTL", default_value_t = 86_400)]
    turn_credential_ttl: u64,
    /// Relay allocations one user may hold at once.
    #[arg(long, env = "HALLWAY_RELAY_USER_ALLOCATIONS", default_value_t = 32)]
    relay_user_allocations: usize,
    /// Relayed kbit/s per user and direction; more is dropped.
    #[arg(long, env = "HALLWAY_RELAY_USER_KBPS", default_value_t = 20_000)]
    relay_user_kbps: u32,
    /// Peer address ranges the relay never reaches (CIDR, repeatable).
    /// Default: loopback, link-local, 0.0.0.0/8, multicast.
    #[arg(long = "relay-deny", env = "HALLWAY_RELAY_DENY", value_delimiter = ',')]
    relay_deny: Vec<ipnet::IpNet>,
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    hallway_server::relay::parse_port_range(s)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hallway_server=info".into()),
        )
        .init();
    let args = Args::parse();
    let mut config = Config::new(args.data_dir);
    config.maps_dir = args.maps_dir;
    config.ice_servers = args
        .ice_servers
        .iter()
        .map(|s| hallway_server::config::parse_ice_server(s))
        .collect();
    if !args.no_turn {
        let mut turn = TurnConfig::new(args.turn_bind);
        turn.public_ip = args.public_ip;
        turn.relay_ports = args.relay_ports;
        turn.credential_ttl = Duration::from_secs(args.turn_credential_ttl.max(1));
        turn.max_allocations_per_user = args.relay_user_allocations;
        turn.user_kbps = args.relay_user_kbps;
        if !args.relay_deny.is_empty() {
            turn.deny_peers = args.relay_deny;
        }
        config.turn = Some(turn);
    }
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    tracing::info!(
        "listening on http://{} (data in {})",
        listener.local_addr()?,
        config.data_dir.display()
    );
    hallway_server::serve(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
