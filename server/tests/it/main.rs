//! Integration tests: a real server on port 0 with a fresh database, real HTTP
//! and WebSocket clients speaking the shared protocol types.
#![allow(clippy::unwrap_used)]

mod common;

mod auth;
mod chat;
mod cli;
mod proximity;
mod relay;
mod robustness;
mod signaling;
mod spaces;
