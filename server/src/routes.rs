//! Every route of the server, mounted in one place: REST from [`crate::http`],
//! the WebSocket from [`crate::ws`], and what answers everything else.

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;

/// Request bodies larger than this are refused with 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(crate::http::router())
        .merge(crate::ws::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
