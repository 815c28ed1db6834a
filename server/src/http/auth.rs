//! Accounts and sessions: guests, registration, login, upgrading a guest,
//! logout, and who am I.

use super::extract::{ApiJson, ApiPath, ClientAddr};
use crate::access::AuthUser;
use crate::auth::{dummy_hash, hash_password, hash_token, new_token, verify_password};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Upgrade;
use crate::validate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use hallway_shared::UserId;
use hallway_shared::protocol::{
    AuthResponse, GuestRequest, LoginRequest, RegisterRequest, UpgradeRequest, UserInfo,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/guest", post(guest))
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/upgrade", post(upgrade))
        .route("/api/auth/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/users/{id}", get(user))
}

async fn start_session(state: &AppState, user: UserInfo) -> Result<AuthResponse, ApiError> {
    let token = new_token();
    state
        .store
        .create_session(user.id, hash_token(&token))
        .await?;
    Ok(AuthResponse { token, user })
}

async fn hash_blocking(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
}

async fn guest(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<GuestRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    if !state.guest_limiter.check(&addr) {
        return Err(ApiError::RateLimited);
    }
    let name = validate::display_name(&req.display_name)?;
    let user = state
        .store
        .create_user(None, None, name)
        .await?
        .ok_or_else(|| ApiError::internal("guest insert failed"))?;
    Ok((
        StatusCode::CREATED,
        Json(start_session(&state, user).await?),
    ))
}

async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<AuthResponse>), ApiError> {
    if !state.address_limiter.check(&addr) {
        return Err(ApiError::RateLimited);
    }
    let username = validate::username(&req.username)?;
    validate::password(&req.password)?;
    let name = validate::display_name(&req.display_name)?;
    let hash = hash_blocking(req.password).await?;
    let user = state
        .store
        .create_user(Some(username), Some(hash), name)
        .await?
        .ok_or(ApiError::Conflict("that username is taken"))?;
    Ok((
        StatusCode::CREATED,
        Json(start_session(&state, user).await?),
    ))
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let by_user = state
        .login_limiter
        .check(&format!("user:{}", req.username.to_lowercase()));
    let by_addr = state.address_limiter.check(&addr);
    if !by_user || !by_addr {
        return Err(ApiError::RateLimited);
    }
    let row = state.store.user_by_username(req.username).await?;
    // Verify against a dummy hash for unknown users so both cost the same.
    let hash = row
        .as_ref()
        .and_then(|r| r.password_hash.clone())
        .unwrap_or_else(|| dummy_hash().to_owned());
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match row {
        Some(row) if ok && row.password_hash.is_some() => {
            Ok(Json(start_session(&state, row.info).await?))
        }
        _ => Err(ApiError::Unauthorized("wrong username or password")),
    }
}

async fn upgrade(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<UpgradeRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    if !auth.user.guest {
        return Err(ApiError::BadRequest(
            "this account is already registered".into(),
        ));
    }
    let username = validate::username(&req.username)?;
    validate::password(&req.password)?;
    let hash = hash_blocking(req.password).await?;
    match state
        .store
        .upgrade_guest(auth.user.id, username, hash)
        .await?
    {
        Upgrade::Done => {}
        Upgrade::UsernameTaken => return Err(ApiError::Conflict("that username is taken")),
        Upgrade::NotAGuest => {
            return Err(ApiError::BadRequest(
                "this account is already registered".into(),
            ));
        }
    }
    let user = state
        .store
        .user(auth.user.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?
        .info;
    Ok(Json(AuthResponse {
        token: auth.token,
        user,
    }))
}

async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    state.store.delete_session(hash_token(&auth.token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(auth: AuthUser) -> Json<UserInfo> {
    Json(auth.user)
}

async fn user(
    State(state): State<AppState>,
    _auth: AuthUser,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<UserInfo>, ApiError> {
    let row = state
        .store
        .user(UserId(id))
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(row.info))
}
