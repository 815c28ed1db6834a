//! The Hallway desktop client: a Bevy-free [`core`] (REST, the WebSocket
//! session, client state, settings, an in-process server), proximity
//! [`voice`] ([`media`] pipeline and [`rtc`] peers), a headless [`bot`], and
//! the Bevy [`app`] on top of it.
#![forbid(unsafe_code)]
// Bevy queries name their filters in their types; aliases would hide them.
#![allow(clippy::type_complexity)]

pub mod app;
pub mod bot;
pub mod core;
pub mod media;
pub mod rtc;
pub mod voice;

pub use hallway_shared as shared;
