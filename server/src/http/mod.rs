//! The REST API: one router per module, merged here, plus `/ws`.

mod auth;
mod chat;
mod extract;
mod spaces;
pub mod validate;

pub use chat::accessible_channel;
pub use extract::{AuthUser, ClientAddr};
pub use spaces::accessible_space;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use hallway_shared::protocol::Health;

/// Request bodies larger than this are refused with 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ws", get(crate::ws::upgrade))
        .merge(auth::router())
        .merge(spaces::router())
        .merge(chat::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        protocol: hallway_shared::protocol::PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
