//! Extractors: JSON, path and query wrappers whose rejections use our error
//! body, the authenticated user, and the client's address.

use crate::auth::hash_token;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hallway_shared::protocol::UserInfo;
use std::net::SocketAddr;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

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

/// The client's IP address, for rate limits ("unknown" when not served over TCP).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}
