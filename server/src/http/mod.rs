//! The REST API: one router per module, merged here.

mod auth;
mod chat;
mod extract;
mod spaces;

pub use extract::ClientAddr;

use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::routing::get;
use hallway_shared::protocol::Health;

/// Every REST route (mounted with `/ws` in [`crate::routes`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .merge(auth::router())
        .merge(spaces::router())
        .merge(chat::router())
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        protocol: hallway_shared::protocol::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}
