//! `GET /ws`: authenticate, upgrade, and run the connection.

mod chat;
mod connection;
pub mod decode;

use crate::access::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequestParts, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// The hard limit tungstenite enforces before we see a message at all; frames
/// between [`hallway_shared::protocol::MAX_FRAME_BYTES`] and this get an
/// `error` reply and the connection stays, beyond it the connection closes (1009).
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// Like [`AuthUser`], but also accepts `?token=`.
pub struct WsUser(AuthUser);

impl FromRequestParts<AppState> for WsUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        AuthUser::from_parts(parts, state, true).await.map(WsUser)
    }
}

/// `GET /ws`.
pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

async fn upgrade(
    State(state): State<AppState>,
    WsUser(auth): WsUser,
    ws: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return ApiError::Unavailable.into_response();
    };
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| {
            let tracker = state.tracker.clone();
            tracker.track_future(async move {
                connection::run(socket, state, auth.user).await;
                drop(permit);
            })
        })
}
