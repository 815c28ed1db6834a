//! `hallway-server`: parses settings, sets up logging, binds, serves until
//! Ctrl-C or SIGTERM.

use anyhow::Context;
use clap::Parser;
use hallway_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

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
