//! The Bevy-free core: REST calls, the WebSocket session with reconnects, the
//! state a client keeps about its space and chat, remembered settings, and a
//! server hosted in-process. The desktop app wraps it in Bevy resources; a
//! headless bot and the tests use it directly.

pub mod api;
pub mod host;
pub mod net;
pub mod settings;
pub mod state;
