//! Hallway's server: REST for accounts, spaces and chat history; a WebSocket
//! per client for presence, proximity, chat and WebRTC signaling; SQLite for
//! everything that must last. Usable as a library so that tests and the desktop
//! app can run it in-process.
#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod maps;
pub mod outbox;
pub mod rate;
pub mod relay;
pub mod routes;
pub mod space;
pub mod state;
pub mod store;
pub mod validate;
pub mod ws;

pub use config::Config;

use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The name of the space a new server creates.
pub const DEFAULT_SPACE: &str = "Office";

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create data directory {0}: {1}")]
    DataDir(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot open the database in {0}: {1}")]
    Database(std::path::PathBuf, #[source] store::StoreError),
    #[error("cannot create the default space: {0}")]
    DefaultSpace(#[source] store::StoreError),
    #[error(transparent)]
    Maps(#[from] maps::MapError),
    #[error("cannot listen: {0}")]
    Listen(#[source] std::io::Error),
    #[error(transparent)]
    Relay(#[from] relay::RelayError),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Serves on `listener` until `shutdown` completes, then closes every
/// WebSocket (code 1001) and waits briefly for connections to finish.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServeError::DataDir(config.data_dir.clone(), e))?;
    let store = store::Store::open(&config.data_dir)
        .map_err(|e| ServeError::Database(config.data_dir.clone(), e))?;
    let maps = maps::MapStore::load(config.maps_dir.as_deref())?;
    store
        .ensure_default_space(DEFAULT_SPACE, maps::DEFAULT_MAP)
        .await
        .map_err(ServeError::DefaultSpace)?;

    let (relay, ice) = match &config.turn {
        Some(turn) => {
            let secret = relay::credentials::load_or_create_secret(&config.data_dir)
                .map_err(|e| relay::RelayError::Secret(config.data_dir.clone(), e))?;
            let http_ip = listener.local_addr().map_err(ServeError::Listen)?.ip();
            let (relay, ice) =
                relay::Relay::start(turn, http_ip, &secret, config.ice_servers.clone()).await?;
            (Some(relay), ice)
        }
        None => (
            None,
            relay::IceServers::external(config.ice_servers.clone()),
        ),
    };

    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let state = state::AppState::new(config, store, maps, ice, stop.clone(), tracker.clone());
    let app = routes::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
    });
    let stopping = stop.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.cancel();
        })
        .await
        .map_err(ServeError::Listen)?;
    stop.cancel();
    if let Some(relay) = relay {
        relay.close().await;
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    Ok(())
}

/// A server running on its own task, for tests and for hosting in-process.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl RunningServer {
    /// Binds `bind` (port 0 for any free port) and starts serving.
    pub async fn start(bind: SocketAddr, config: Config) -> Result<RunningServer, ServeError> {
        let listener = TcpListener::bind(bind).await.map_err(ServeError::Listen)?;
        let addr = listener.local_addr().map_err(ServeError::Listen)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }
}
