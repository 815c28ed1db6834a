//! Chat over REST: paged history and direct-message channels. Sending happens
//! over the WebSocket (`chat_send`).

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::spaces::channel_info;
use crate::access::{AuthUser, accessible_channel};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use hallway_shared::protocol::{ChannelInfo, MessagePage, OpenDirectRequest};
use hallway_shared::{ChannelId, MessageId};
use serde::Deserialize;

/// The largest page of history one request returns.
pub const MAX_PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/channels/{id}/messages", get(messages))
        .route("/api/dms", get(list_direct).post(open_direct))
}

#[derive(Deserialize)]
struct PageQuery {
    before: Option<i64>,
    limit: Option<usize>,
}

async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let channel = accessible_channel(&state, auth.user.id, ChannelId(id)).await?;
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let (messages, has_more) = state
        .store
        .messages(channel.id, q.before.map(MessageId), limit)
        .await?;
    Ok(Json(MessagePage { messages, has_more }))
}

async fn list_direct(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<ChannelInfo>>, ApiError> {
    let rows = state.store.direct_channels(auth.user.id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(row, other)| channel_info(row, Some(other)))
            .collect(),
    ))
}

async fn open_direct(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<OpenDirectRequest>,
) -> Result<Json<ChannelInfo>, ApiError> {
    if req.user_id == auth.user.id {
        return Err(ApiError::BadRequest("you cannot message yourself".into()));
    }
    let other = state
        .store
        .user(req.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let row = state.store.open_direct(auth.user.id, req.user_id).await?;
    Ok(Json(channel_info(row, Some(other.info.display_name))))
}
