//! Spaces: list, create, join by invite, details with who is online, the map,
//! and the space's channels.

use super::extract::{ApiJson, ApiPath};
use crate::access::{AuthUser, accessible_space};
use crate::auth::new_invite_code;
use crate::error::ApiError;
use crate::maps::DEFAULT_MAP;
use crate::state::AppState;
use crate::store::{ChannelRow, SpaceRow};
use crate::validate;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hallway_shared::SpaceId;
use hallway_shared::protocol::{
    ChannelInfo, CreateChannelRequest, CreateSpaceRequest, JoinSpaceRequest, SpaceDetail, SpaceInfo,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/spaces", get(list).post(create))
        .route("/api/spaces/join", post(join_by_invite))
        .route("/api/spaces/{id}", get(detail))
        .route("/api/spaces/{id}/map", get(map))
        .route(
            "/api/spaces/{id}/channels",
            get(channels).post(create_channel),
        )
}

pub fn space_info(state: &AppState, row: SpaceRow) -> SpaceInfo {
    let online = state.spaces.get(row.id).map_or(0, |h| h.online());
    SpaceInfo {
        id: row.id,
        name: row.name,
        private: row.private,
        // Only members ever get a private space's row, so they may see the code.
        invite_code: row.invite_code,
        map: row.map,
        online,
    }
}

pub fn channel_info(row: ChannelRow, direct_name: Option<String>) -> ChannelInfo {
    ChannelInfo {
        id: row.id,
        kind: row.kind,
        space_id: row.space_id,
        name: direct_name.or(row.name).unwrap_or_default(),
        members: row.direct.map(|(a, b)| vec![a, b]).unwrap_or_default(),
        last_message_id: row.last_message_id,
    }
}

async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<Vec<SpaceInfo>>, ApiError> {
    let rows = state.store.spaces_for(auth.user.id).await?;
    Ok(Json(
        rows.into_iter().map(|r| space_info(&state, r)).collect(),
    ))
}

async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateSpaceRequest>,
) -> Result<(StatusCode, Json<SpaceInfo>), ApiError> {
    let name = validate::space_name(&req.name)?;
    if let Some(rules) = &req.rules {
        rules.validate().map_err(ApiError::BadRequest)?;
    }
    let code = req.private.then(new_invite_code);
    let row = state
        .store
        .create_space(
            name,
            req.private,
            code,
            DEFAULT_MAP.to_owned(),
            auth.user.id,
            req.rules,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(space_info(&state, row))))
}

async fn join_by_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<JoinSpaceRequest>,
) -> Result<Json<SpaceInfo>, ApiError> {
    let code = req.invite_code.trim().to_lowercase();
    let row = state
        .store
        .space_by_invite(code)
        .await?
        .ok_or(ApiError::NotFound("invite code"))?;
    state.store.add_space_member(row.id, auth.user.id).await?;
    Ok(Json(space_info(&state, row)))
}

async fn detail(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<SpaceDetail>, ApiError> {
    let row = accessible_space(&state, auth.user.id, SpaceId(id)).await?;
    let members = match state.spaces.get(row.id) {
        Some(h) => h.members().await,
        None => Vec::new(),
    };
    Ok(Json(SpaceDetail {
        space: space_info(&state, row),
        members,
    }))
}

async fn map(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let row = accessible_space(&state, auth.user.id, SpaceId(id)).await?;
    let map = state
        .maps
        .get(&row.map)
        .ok_or_else(|| ApiError::internal(format!("space {id} uses unknown map {}", row.map)))?;
    // Serialized per request: the map is small next to its tileset image, and
    // clients fetch it once per join.
    let body = serde_json::to_vec(map.as_ref()).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn channels(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Vec<ChannelInfo>>, ApiError> {
    let row = accessible_space(&state, auth.user.id, SpaceId(id)).await?;
    let rows = state.store.space_channels(row.id).await?;
    Ok(Json(
        rows.into_iter().map(|c| channel_info(c, None)).collect(),
    ))
}

async fn create_channel(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
    ApiJson(req): ApiJson<CreateChannelRequest>,
) -> Result<(StatusCode, Json<ChannelInfo>), ApiError> {
    let row = accessible_space(&state, auth.user.id, SpaceId(id)).await?;
    let name = validate::channel_name(&req.name)?;
    let channel = state
        .store
        .create_channel(row.id, name)
        .await?
        .ok_or(ApiError::Conflict("a channel with that name exists"))?;
    Ok((StatusCode::CREATED, Json(channel_info(channel, None))))
}
