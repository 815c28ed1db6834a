//! Who may do what: the caller behind a token, and which spaces and channels a
//! user may reach. REST handlers and the WebSocket both ask here, so the two
//! cannot disagree.

use crate::auth::hash_token;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{ChannelRow, SpaceRow};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hallway_shared::protocol::{ChannelKind, UserInfo};
use hallway_shared::{ChannelId, SpaceId, UserId};

/// The user behind the request's `Authorization: Bearer` token.
pub struct AuthUser {
    pub user: UserInfo,
    pub token: String,
}

impl AuthUser {
    /// Resolves a token from the `Authorization` header or, if `allow_query`,
    /// a `token` query parameter (browsers cannot set headers on WebSockets).
    pub async fn from_parts(
        parts: &Parts,
        state: &AppState,
        allow_query: bool,
    ) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_owned());
        let query = || {
            parts.uri.query().and_then(|q| {
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| *k == "token")
                    .map(|(_, v)| v.to_owned())
            })
        };
        let token = header
            .or_else(|| if allow_query { query() } else { None })
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let user = state
            .store
            .user_by_token_hash(hash_token(&token))
            .await?
            .ok_or(ApiError::Unauthorized("invalid token; log in again"))?;
        Ok(AuthUser { user, token })
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        AuthUser::from_parts(parts, state, false).await
    }
}

/// The space if `user` may enter it. A private space the user is not a member
/// of is "not found", so that ids do not reveal private spaces.
pub async fn accessible_space(
    state: &AppState,
    user: UserId,
    id: SpaceId,
) -> Result<SpaceRow, ApiError> {
    let space = state
        .store
        .space(id)
        .await?
        .ok_or(ApiError::NotFound("space"))?;
    if space.private && !state.store.is_space_member(id, user).await? {
        return Err(ApiError::NotFound("space"));
    }
    Ok(space)
}

/// The channel if `user` may read and post in it.
pub async fn accessible_channel(
    state: &AppState,
    user: UserId,
    id: ChannelId,
) -> Result<ChannelRow, ApiError> {
    let channel = state
        .store
        .channel(id)
        .await?
        .ok_or(ApiError::NotFound("channel"))?;
    match (channel.kind, channel.space_id, channel.direct) {
        (ChannelKind::Space, Some(space), _) => {
            accessible_space(state, user, space)
                .await
                .map_err(|_| ApiError::NotFound("channel"))?;
        }
        (ChannelKind::Direct, _, Some((a, b))) if a == user || b == user => {}
        _ => return Err(ApiError::NotFound("channel")),
    }
    Ok(channel)
}
