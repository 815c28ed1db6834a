//! The Hallway desktop client: a Bevy-free [`core`] (REST, the WebSocket
//! session, client state, settings, walking, the message pump), the proximity
//! [`call`] (voice and video: the [`media`] pipeline and the [`rtc`] peers), a
//! headless [`bot`], and the Bevy `app` on top of them (the `app` feature,
//! with the in-process server).
#![forbid(unsafe_code)]
// Bevy queries name their filters in their types; aliases would hide them.
#![allow(clippy::type_complexity)]

#[cfg(feature = "app")]
pub mod app;
pub mod bot;
pub mod call;
pub mod client;
pub mod core;
pub mod media;
pub mod rtc;

pub use hallway_shared as shared;

/// Logs to stderr for the headless tools (bot, benchmarks), filtered by
/// `RUST_LOG`, else by `default_filter`. The desktop app uses Bevy's logging.
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
