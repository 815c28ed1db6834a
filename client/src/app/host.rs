//! "This computer": the server crate run inside the app, on the network
//! runtime, reachable from the local network. It lives with the app: the
//! core and the bot know nothing of the server.

use hallway_server::{Config, RunningServer, ServeError};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Why "This computer" could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("no data directory on this system")]
    NoDataDir,
    #[error(transparent)]
    Server(#[from] ServeError),
}

/// The preferred port; if taken, any free one.
pub const PREFERRED_PORT: u16 = 8080;

pub struct HostedServer {
    /// How this app reaches it.
    pub local_url: String,
    /// How others on the network can reach it.
    pub lan_urls: Vec<String>,
    pub data_dir: PathBuf,
    server: RunningServer,
}

impl HostedServer {
    /// Starts a server on all interfaces, keeping its data in `data_dir`.
    pub async fn start(data_dir: PathBuf) -> Result<HostedServer, ServeError> {
        let config = Config::new(&data_dir);
        let preferred: SocketAddr = (IpAddr::from([0, 0, 0, 0]), PREFERRED_PORT).into();
        let server = match RunningServer::start(preferred, config.clone()).await {
            Ok(s) => s,
            Err(_) => RunningServer::start((IpAddr::from([0, 0, 0, 0]), 0).into(), config).await?,
        };
        let port = server.addr.port();
        let lan_urls = lan_addresses()
            .into_iter()
            .map(|ip| format!("http://{ip}:{port}"))
            .collect();
        Ok(HostedServer {
            local_url: format!("http://127.0.0.1:{port}"),
            lan_urls,
            data_dir,
            server,
        })
    }

    pub async fn stop(self) -> Result<(), ServeError> {
        self.server.stop().await
    }
}

/// This machine's non-loopback IPv4 addresses.
fn lan_addresses() -> Vec<IpAddr> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback())
        .map(|i| i.ip())
        .filter(IpAddr::is_ipv4)
        .collect()
}
