//! The state every handler shares.

use crate::config::Config;
use crate::hub::Hub;
use crate::maps::MapStore;
use crate::rate::WindowLimiter;
use crate::relay::IceServers;
use crate::space::Spaces;
use crate::store::Store;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Arc<Config>,
    pub store: Store,
    pub maps: MapStore,
    /// What clients get in `welcome` and `ice_servers`.
    pub ice: IceServers,
    pub spaces: Spaces,
    pub hub: Hub,
    pub login_limiter: WindowLimiter,
    pub address_limiter: WindowLimiter,
    pub guest_limiter: WindowLimiter,
    pub connections: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        maps: MapStore,
        ice: IceServers,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        let config = Arc::new(config);
        let minute = Duration::from_secs(60);
        AppState(Arc::new(Inner {
            spaces: Spaces::new(
                Arc::clone(&config),
                ice.clone(),
                shutdown.clone(),
                tracker.clone(),
            ),
            ice,
            hub: Hub::default(),
            login_limiter: WindowLimiter::new(config.login_attempts_per_minute, minute),
            address_limiter: WindowLimiter::new(config.login_attempts_per_address_minute, minute),
            guest_limiter: WindowLimiter::new(config.guests_per_minute, minute),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            config,
            store,
            maps,
            shutdown,
            tracker,
        }))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
