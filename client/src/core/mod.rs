//! The Bevy-free core: REST calls, the WebSocket session with reconnects, the
//! state a client keeps about its space and chat, when to play a sound, remembered settings, and
//! walking. It knows nothing of media, Bevy or the server; the call, the
//! message pump ([`crate::client`]), the bot and the app build on it.

pub mod api;
pub mod chat;
pub mod cues;
pub mod net;
pub mod settings;
pub mod space;
pub mod walk;
