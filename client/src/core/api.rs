//! The REST API, typed with the shared protocol. Every call is async and runs
//! on the network runtime, never on Bevy's threads.

use hallway_shared::protocol::{
    AuthResponse, ChannelInfo, CreateChannelRequest, CreateSpaceRequest, ErrorBody, ErrorCode,
    GuestRequest, Health, JoinSpaceRequest, LoginRequest, MessagePage, OpenDirectRequest,
    RegisterRequest, SpaceDetail, SpaceInfo, UpgradeRequest, UserInfo,
};
use hallway_shared::{ChannelId, MapModel, MessageId, SpaceId, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// What went wrong with a REST call. Cloneable (replies travel to the UI),
/// so the causes are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the server: {0}")]
    Network(#[source] Arc<reqwest::Error>),
    #[error("{message}")]
    Server {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
    },
    #[error("the server sent something unexpected: {0}")]
    Decode(#[source] Arc<serde_json::Error>),
}

impl ApiError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ApiError::Server { code, .. } => *code,
            _ => None,
        }
    }

    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ApiError::Server { status: 401, .. })
    }
}

/// A REST client for one server, optionally logged in.
#[derive(Clone, Debug)]
pub struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

/// Turns what a person types ("localhost:8080", "http://10.0.0.5:8080/") into a base URL.
pub fn normalize_server(input: &str) -> String {
    let s = input.trim().trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    }
}

impl Api {
    pub fn new(server: &str) -> Api {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        Api {
            base: normalize_server(server),
            http,
            token: None,
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Api {
        self.token = Some(token.into());
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The WebSocket URL of this server.
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/ws")
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, ApiError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| ApiError::Network(Arc::new(e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Network(Arc::new(e)))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(Arc::new(e)));
        }
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ApiError::Server {
                status: status.as_u16(),
                code: Some(body.error.code),
                message: body.error.message,
            }),
            Err(_) => Err(ApiError::Server {
                status: status.as_u16(),
                code: None,
                message: format!("HTTP {status}"),
            }),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn health(&self) -> Result<Health, ApiError> {
        self.get("/health").await
    }

    pub async fn guest(&self, display_name: &str) -> Result<AuthResponse, ApiError> {
        self.post(
            "/api/auth/guest",
            &GuestRequest {
                display_name: display_name.to_owned(),
            },
        )
        .await
    }

    pub async fn register(
        &self,
        username: &str,
        password: &str,
        display_name: &str,
    ) -> Result<AuthResponse, ApiError> {
        self.post(
            "/api/auth/register",
            &RegisterRequest {
                username: username.to_owned(),
                password: password.to_owned(),
                display_name: display_name.to_owned(),
            },
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        self.post(
            "/api/auth/login",
            &LoginRequest {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )
        .await
    }

    pub async fn upgrade(&self, username: &str, password: &str) -> Result<AuthResponse, ApiError> {
        self.post(
            "/api/auth/upgrade",
            &UpgradeRequest {
                username: username.to_owned(),
                password: password.to_owned(),
            },
        )
        .await
    }

    pub async fn me(&self) -> Result<UserInfo, ApiError> {
        self.get("/api/me").await
    }

    pub async fn user(&self, id: UserId) -> Result<UserInfo, ApiError> {
        self.get(&format!("/api/users/{id}")).await
    }

    pub async fn spaces(&self) -> Result<Vec<SpaceInfo>, ApiError> {
        self.get("/api/spaces").await
    }

    pub async fn create_space(&self, name: &str, private: bool) -> Result<SpaceInfo, ApiError> {
        self.post(
            "/api/spaces",
            &CreateSpaceRequest {
                name: name.to_owned(),
                private,
                rules: None,
            },
        )
        .await
    }

    pub async fn join_by_invite(&self, code: &str) -> Result<SpaceInfo, ApiError> {
        self.post(
            "/api/spaces/join",
            &JoinSpaceRequest {
                invite_code: code.to_owned(),
            },
        )
        .await
    }

    pub async fn space(&self, id: SpaceId) -> Result<SpaceDetail, ApiError> {
        self.get(&format!("/api/spaces/{id}")).await
    }

    pub async fn map(&self, id: SpaceId) -> Result<MapModel, ApiError> {
        self.get(&format!("/api/spaces/{id}/map")).await
    }

    pub async fn channels(&self, space: SpaceId) -> Result<Vec<ChannelInfo>, ApiError> {
        self.get(&format!("/api/spaces/{space}/channels")).await
    }

    pub async fn create_channel(
        &self,
        space: SpaceId,
        name: &str,
    ) -> Result<ChannelInfo, ApiError> {
        self.post(
            &format!("/api/spaces/{space}/channels"),
            &CreateChannelRequest {
                name: name.to_owned(),
            },
        )
        .await
    }

    pub async fn messages(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<MessagePage, ApiError> {
        let mut path = format!("/api/channels/{channel}/messages?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.get(&path).await
    }

    pub async fn direct_channels(&self) -> Result<Vec<ChannelInfo>, ApiError> {
        self.get("/api/dms").await
    }

    pub async fn open_direct(&self, user: UserId) -> Result<ChannelInfo, ApiError> {
        self.post("/api/dms", &OpenDirectRequest { user_id: user })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_normalized() {
        assert_eq!(normalize_server("localhost:8080"), "http://localhost:8080");
        assert_eq!(
            normalize_server(" http://10.0.0.5:8080/ "),
            "http://10.0.0.5:8080"
        );
        let api = Api::new("https://hallway.example.org");
        assert_eq!(api.ws_url(), "wss://hallway.example.org/ws");
        assert_eq!(Api::new("127.0.0.1:9").ws_url(), "ws://127.0.0.1:9/ws");
    }
}
