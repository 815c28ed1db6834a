//! One WebSocket connection: a read loop that checks, limits and dispatches
//! each message, and a writer task fed by the connection's bounded [`Outbox`].

use super::chat::{self, ChatInput};
use super::decode;
use crate::access::{accessible_channel, accessible_space};
use crate::error::ApiError;
use crate::outbox::{
    CLOSE_BAD_UTF8, CLOSE_IDLE, CLOSE_NORMAL, CLOSE_PROTOCOL, CLOSE_SHUTDOWN, CLOSE_SLOW,
    CLOSE_TOO_BIG, CloseReason, Outbox, encode,
};
use crate::rate::TokenBucket;
use crate::space::{Joiner, SpaceHandle};
use crate::state::AppState;
use crate::store::NewMessage;
use crate::validate;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hallway_shared::protocol::{
    ChannelKind, ClientMessage, ErrorCode, MAX_CHAT_CHARS, MAX_CLIENT_MSG_ID_BYTES,
    MAX_FRAME_BYTES, MAX_SIGNAL_PAYLOAD_BYTES, ServerMessage, SpaceInfo, Status, UserInfo,
};
use hallway_shared::{ChannelId, SpaceId};
use std::time::Duration;
use tokio::sync::mpsc;

pub async fn run(socket: WebSocket, state: AppState, user: UserInfo) {
    let kill = state.shutdown.child_token();
    let (outbox, rx) = Outbox::new(state.config.outbox_capacity, kill);
    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        rx,
        outbox.clone(),
        state.config.ping_interval,
        state.shutdown.clone(),
    ));
    state.hub.register(user.id, outbox.clone());
    tracing::debug!(user = %user.id, conn = outbox.conn.0, "connected");

    let mut session = Session {
        messages: TokenBucket::new(state.config.messages_per_second, state.config.message_burst),
        chats: TokenBucket::new(state.config.chats_per_second, state.config.chat_burst),
        state,
        user,
        outbox,
        space: None,
    };
    session.read_loop(stream).await;

    if let Some(space) = session.space.take() {
        space.leave(session.user.id, session.outbox.conn).await;
    }
    session
        .state
        .hub
        .unregister(session.user.id, session.outbox.conn);
    // The first reason given wins: a reason set while reading (slow, too big,
    // idle, ...) stays. Otherwise a shutdown is 1001 even though the read loop
    // saw it first, and anything else is a normal end.
    session
        .outbox
        .close(if session.state.shutdown.is_cancelled() {
            CLOSE_SHUTDOWN
        } else {
            CLOSE_NORMAL
        });
    let _ = writer.await;
    log_close(&session.user, &session.outbox);
}

/// One line per ended connection; the cuts an operator should know about
/// (a slow or dead client, an oversized or broken frame) at warn.
fn log_close(user: &UserInfo, outbox: &Outbox) {
    let reason = outbox.close_reason().unwrap_or(CLOSE_NORMAL);
    let (user, conn, code, why) = (user.id, outbox.conn.0, reason.code, reason.reason);
    if [
        CLOSE_SLOW,
        CLOSE_TOO_BIG,
        CLOSE_IDLE,
        CLOSE_BAD_UTF8,
        CLOSE_PROTOCOL,
    ]
    .contains(&reason)
    {
        tracing::warn!(%user, conn, code, "connection cut: {why}");
    } else if reason.code == 1012 {
        tracing::info!(%user, conn, code, "connection closed: {why}");
    } else {
        tracing::debug!(%user, conn, code, "disconnected");
    }
}

/// The close a failed read calls for, if the server has a reason to give: an
/// oversized message (1009), a text frame that is not UTF-8 (1007), a broken
/// frame (1002). A vanished client gets none (there is nobody to tell).
fn read_error_close(e: axum::Error) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::Error;
    match *e.into_inner().downcast::<Error>().ok()? {
        Error::Capacity(_) => Some(CLOSE_TOO_BIG),
        Error::Utf8(_) => Some(CLOSE_BAD_UTF8),
        Error::Protocol(_) => Some(CLOSE_PROTOCOL),
        _ => None,
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    outbox: Outbox,
    ping_every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let kill = outbox.closed().clone();
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    loop {
        let message = tokio::select! {
            biased;
            () = kill.cancelled() => break,
            frame = rx.recv() => match frame {
                Some(frame) => Message::Text(frame),
                None => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        let sent = tokio::select! {
            r = sink.send(message) => r.is_ok(),
            () = kill.cancelled() => false,
        };
        if !sent {
            break;
        }
    }
    // Deliver what is already queued (e.g. the error saying why we close),
    // unless the client is too slow to take it.
    if outbox.close_reason() != Some(CLOSE_SLOW) {
        let flush = async {
            while let Ok(frame) = rx.try_recv() {
                if sink.send(Message::Text(frame)).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
    }
    let reason = outbox.close_reason().unwrap_or(if shutdown.is_cancelled() {
        CLOSE_SHUTDOWN
    } else {
        CloseReason {
            code: 1000,
            reason: "",
        }
    });
    let close = Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: reason.reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(close)).await;
}

impl Session {
    fn refresh_ice_servers(&self) {
        if self.space.is_some() {
            self.outbox.send_msg(&ServerMessage::IceServers {
                ice_servers: self.state.ice.for_user(self.user.id),
            });
        }
    }
}

struct Session {
    state: AppState,
    user: UserInfo,
    outbox: Outbox,
    space: Option<SpaceHandle>,
    messages: TokenBucket,
    chats: TokenBucket,
}

impl Session {
    async fn read_loop(&mut self, mut stream: SplitStream<WebSocket>) {
        let kill = self.outbox.closed().clone();
        let idle = self.state.config.idle_timeout;
        let mut idle_until = tokio::time::Instant::now() + idle;
        // Relay credentials expire: a joined client gets fresh ones in time.
        let every = self
            .state
            .ice
            .refresh_every()
            .unwrap_or(Duration::from_secs(1 << 30));
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = tokio::select! {
                () = kill.cancelled() => return,
                next = tokio::time::timeout_at(idle_until, stream.next()) => next,
                _ = refresh.tick() => {
                    self.refresh_ice_servers();
                    continue;
                }
            };
            idle_until = tokio::time::Instant::now() + idle;
            let message = match next {
                Err(_) => {
                    self.outbox.close(CLOSE_IDLE);
                    return;
                }
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    tracing::debug!(user = %self.user.id, "websocket read failed: {e}");
                    if let Some(reason) = read_error_close(e) {
                        self.outbox.close(reason);
                    }
                    return;
                }
                Ok(Some(Ok(m))) => m,
            };
            match message {
                Message::Text(text) => self.on_text(text.as_str()).await,
                Message::Binary(_) if !self.messages.try_take() => {
                    self.api_error(&ApiError::RateLimited, None);
                }
                Message::Binary(_) => self.error(
                    ErrorCode::BadRequest,
                    "binary frames are not supported; send JSON text",
                ),
                Message::Ping(_) | Message::Pong(_) => {}
                Message::Close(_) => return,
            }
        }
    }

    fn error(&self, code: ErrorCode, message: impl Into<String>) {
        self.outbox.send_msg(&ServerMessage::Error {
            code,
            message: message.into(),
            client_msg_id: None,
        });
    }

    fn chat_error(&self, code: ErrorCode, message: impl Into<String>, client_msg_id: &str) {
        self.outbox.send_msg(&ServerMessage::Error {
            code,
            message: message.into(),
            client_msg_id: Some(client_msg_id.to_owned()),
        });
    }

    fn api_error(&self, e: &ApiError, client_msg_id: Option<&str>) {
        if let ApiError::Internal(cause) = e {
            tracing::error!("internal error: {cause}");
        }
        self.outbox.send_msg(&ServerMessage::Error {
            code: e.code(),
            message: e.to_string(),
            client_msg_id: client_msg_id.map(str::to_owned),
        });
    }

    async fn on_text(&mut self, text: &str) {
        if text.len() > MAX_FRAME_BYTES {
            return self.error(
                ErrorCode::TooLarge,
                format!(
                    "message is {} bytes; the limit is {MAX_FRAME_BYTES}",
                    text.len()
                ),
            );
        }
        let message = match decode::decode(text) {
            Ok(m) => m,
            Err(_) if !self.messages.try_take() => {
                return self.api_error(&ApiError::RateLimited, None);
            }
            Err(rejected) => return self.error(rejected.code, rejected.message),
        };
        // Moves are limited by the space's step rate instead, which answers
        // every refused step with the true position.
        if !matches!(message, ClientMessage::Move { .. }) && !self.messages.try_take() {
            let client_msg_id = match &message {
                ClientMessage::ChatSend { client_msg_id, .. } if !client_msg_id.is_empty() => {
                    Some(client_msg_id.as_str())
                }
                _ => None,
            };
            return self.api_error(&ApiError::RateLimited, client_msg_id);
        }
        match message {
            ClientMessage::Join {
                space_id,
                x,
                y,
                instance,
            } => {
                let at = x.zip(y).map(|(x, y)| hallway_shared::TilePos::new(x, y));
                self.join(space_id, at, instance).await;
            }
            ClientMessage::Move { x, y, facing } => match &self.space {
                Some(space) => {
                    space
                        .step(self.user.id, self.outbox.conn, x, y, facing)
                        .await
                }
                None => self.error(ErrorCode::NotInSpace, "join a space first"),
            },
            ClientMessage::ChatSend {
                channel_id,
                client_msg_id,
                body,
            } => self.chat(channel_id, client_msg_id, body).await,
            ClientMessage::Signal { to, payload } => {
                let Some(space) = &self.space else {
                    return self.error(ErrorCode::NotInSpace, "join a space first");
                };
                if to == self.user.id {
                    return self.error(ErrorCode::BadRequest, "cannot signal yourself");
                }
                let size = serde_json::to_string(&payload).map_or(usize::MAX, |s| s.len());
                if size > MAX_SIGNAL_PAYLOAD_BYTES {
                    return self.error(
                        ErrorCode::TooLarge,
                        format!("signal payload is {size} bytes; the limit is {MAX_SIGNAL_PAYLOAD_BYTES}"),
                    );
                }
                space
                    .signal(self.user.id, self.outbox.conn, to, payload)
                    .await;
            }
            ClientMessage::SetStatus { status, text } => {
                if let Err(e) = self.set_status(status, text.as_deref()).await {
                    self.api_error(&e, None);
                }
            }
            ClientMessage::Leave => {
                if let Some(space) = self.space.take() {
                    space.leave(self.user.id, self.outbox.conn).await;
                }
            }
        }
    }

    async fn join(
        &mut self,
        space_id: SpaceId,
        at: Option<hallway_shared::TilePos>,
        instance: Option<u64>,
    ) {
        let state = self.state.clone();
        let space = match accessible_space(&state, self.user.id, space_id).await {
            Ok(s) => s,
            Err(e) => return self.api_error(&e, None),
        };
        let Some(map) = state.maps.get(&space.map) else {
            let e =
                ApiError::internal(format!("space {} uses unknown map {}", space.id, space.map));
            return self.api_error(&e, None);
        };
        // Fresh details: another connection may have changed name or status.
        match state.store.user(self.user.id).await {
            Ok(Some(row)) => self.user = row.info,
            Ok(None) => {
                return self.api_error(
                    &ApiError::Unauthorized("this account no longer exists"),
                    None,
                );
            }
            Err(e) => return self.api_error(&e.into(), None),
        }
        if let Some(current) = self.space.take_if(|s| s.id != space.id) {
            // Returns once the old space will send this connection nothing
            // more, so its messages cannot follow the new `welcome`.
            current.leave(self.user.id, self.outbox.conn).await;
        }
        let rules = space.rules.unwrap_or_else(|| state.config.default_rules());
        let info = SpaceInfo {
            id: space.id,
            name: space.name,
            private: space.private,
            invite_code: space.invite_code,
            map: space.map,
            online: 0,
        };
        let Some(handle) = state.spaces.get_or_start(info, map, rules) else {
            return self.api_error(&ApiError::internal("space registry poisoned"), None);
        };
        let joiner = Joiner {
            user_id: self.user.id,
            display_name: self.user.display_name.clone(),
            status: self.user.status,
            status_text: self.user.status_text.clone(),
            outbox: self.outbox.clone(),
            at,
            instance,
        };
        match handle.join(joiner).await {
            Ok(()) => self.space = Some(handle),
            // The space restarted while taking the join: say so, so the client
            // can try again instead of waiting for a `welcome`.
            Err(e) => self.error(ErrorCode::Unavailable, format!("cannot join: {e}")),
        }
    }

    async fn set_status(&mut self, status: Status, text: Option<&str>) -> Result<(), ApiError> {
        let text = validate::status_text(text)?;
        self.state
            .store
            .set_status(self.user.id, status, text.clone())
            .await?;
        self.user.status = status;
        self.user.status_text.clone_from(&text);
        if let Some(space) = &self.space {
            space.update(self.user.id, None, Some((status, text))).await;
        }
        Ok(())
    }

    async fn chat(&mut self, channel_id: ChannelId, client_msg_id: String, body: String) {
        if client_msg_id.is_empty() || client_msg_id.len() > MAX_CLIENT_MSG_ID_BYTES {
            let e = ApiError::BadRequest(format!(
                "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes"
            ));
            return self.api_error(
                &e,
                Some(&client_msg_id)
                    .filter(|id| !id.is_empty())
                    .map(|id| id.as_str()),
            );
        }
        if !self.chats.try_take() {
            return self.chat_error(
                ErrorCode::RateLimited,
                "too many chat messages; slow down",
                &client_msg_id,
            );
        }
        if body.trim().is_empty() || body.chars().count() > MAX_CHAT_CHARS {
            return self.chat_error(
                ErrorCode::BadRequest,
                format!("a message has 1 to {MAX_CHAT_CHARS} characters"),
                &client_msg_id,
            );
        }
        let (kind, text) = match chat::parse(&body) {
            ChatInput::Message(kind, text) => (kind, text),
            ChatInput::Nick(name) => {
                let result = self.nick(&name).await;
                return self.command_done(result, &client_msg_id);
            }
            ChatInput::Status(status, text) => {
                let result = self.set_status(status, text.as_deref()).await;
                return self.command_done(result, &client_msg_id);
            }
            ChatInput::Usage(usage) => {
                return self.chat_error(ErrorCode::BadRequest, usage, &client_msg_id);
            }
            ChatInput::Unknown(name) => {
                return self.chat_error(
                    ErrorCode::UnknownCommand,
                    format!("unknown command /{name}; {}", chat::HELP),
                    &client_msg_id,
                );
            }
        };
        if let Err(e) = self.post(channel_id, &client_msg_id, kind, text).await {
            self.api_error(&e, Some(&client_msg_id));
        }
    }

    fn command_done(&self, result: Result<(), ApiError>, client_msg_id: &str) {
        match result {
            Ok(()) => {
                self.outbox.send_msg(&ServerMessage::ChatAck {
                    client_msg_id: client_msg_id.to_owned(),
                    message_id: None,
                });
            }
            Err(e) => self.api_error(&e, Some(client_msg_id)),
        }
    }

    async fn nick(&mut self, name: &str) -> Result<(), ApiError> {
        let name = validate::display_name(name)?;
        self.state
            .store
            .set_display_name(self.user.id, name.clone())
            .await?;
        self.user.display_name.clone_from(&name);
        if let Some(space) = &self.space {
            space.update(self.user.id, Some(name), None).await;
        }
        Ok(())
    }

    /// Stores a message, acknowledges it, then delivers it to the channel's
    /// audience (a repeated `client_msg_id` is acknowledged, not delivered again).
    async fn post(
        &mut self,
        channel_id: ChannelId,
        client_msg_id: &str,
        kind: hallway_shared::protocol::MessageKind,
        body: String,
    ) -> Result<(), ApiError> {
        let state = self.state.clone();
        let channel = accessible_channel(&state, self.user.id, channel_id).await?;
        let space_handle = match (channel.kind, channel.space_id) {
            (ChannelKind::Space, Some(space)) => match &self.space {
                Some(h) if h.id == space => Some(h.clone()),
                _ => return Err(ApiError::NotInSpace),
            },
            _ => None,
        };
        let stored = state
            .store
            .insert_message(NewMessage {
                channel_id,
                author_id: self.user.id,
                kind,
                body,
                client_msg_id: client_msg_id.to_owned(),
            })
            .await?;
        self.outbox.send_msg(&ServerMessage::ChatAck {
            client_msg_id: client_msg_id.to_owned(),
            message_id: Some(stored.message.id),
        });
        if stored.duplicate {
            return Ok(());
        }
        let frame = encode(&ServerMessage::ChatMessage {
            message: stored.message,
        });
        match (space_handle, channel.direct) {
            (Some(space), _) => space.broadcast(frame).await,
            (None, Some((a, b))) => {
                state.hub.send_to_user(a, &frame);
                state.hub.send_to_user(b, &frame);
            }
            (None, None) => {}
        }
        Ok(())
    }
}
