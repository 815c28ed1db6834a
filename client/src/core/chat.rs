//! What a client knows about its chats: channels, loaded history, unread
//! counts, and messages sent but not yet acknowledged. Pure data, updated by
//! applying server messages in order.

use hallway_shared::protocol::{ChannelInfo, ChatMessage, ClientMessage, ServerMessage};
use hallway_shared::{ChannelId, MessageId, UserId};
use std::collections::BTreeMap;

/// One channel as the client shows it.
#[derive(Clone, Debug)]
pub struct ChannelView {
    pub info: ChannelInfo,
    /// Loaded messages, oldest first, without repeats.
    pub messages: Vec<ChatMessage>,
    /// Older messages exist on the server.
    pub has_more: bool,
    /// History has been fetched at least once.
    pub loaded: bool,
    pub unread: usize,
}

/// A message sent but not yet acknowledged.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingChat {
    pub client_msg_id: String,
    pub channel_id: ChannelId,
    pub body: String,
    /// Set when the server refused it.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ChatState {
    pub channels: BTreeMap<ChannelId, ChannelView>,
    pub active: Option<ChannelId>,
    pub pending: Vec<PendingChat>,
    /// Feedback for commands and refusals not tied to a message.
    pub notices: Vec<String>,
    next_id: u64,
    session: u64,
    /// Older pages already asked for, as (channel, before), so scrolling does
    /// not ask twice.
    asked_older: std::collections::HashSet<(ChannelId, MessageId)>,
}

impl ChatState {
    pub fn new() -> Self {
        // Unique per run, so ids never repeat across restarts of the app.
        let session = rand::random::<u64>();
        ChatState {
            session,
            ..ChatState::default()
        }
    }

    /// Adds or refreshes channels (from the REST listings).
    pub fn set_channels(&mut self, channels: impl IntoIterator<Item = ChannelInfo>) {
        for info in channels {
            match self.channels.get_mut(&info.id) {
                Some(view) => view.info = info,
                None => {
                    self.channels.insert(
                        info.id,
                        ChannelView {
                            info,
                            messages: Vec::new(),
                            has_more: true,
                            loaded: false,
                            unread: 0,
                        },
                    );
                }
            }
        }
        if self.active.is_none() {
            self.active = self.channels.keys().next().copied();
        }
    }

    pub fn open(&mut self, channel: ChannelId) {
        self.active = Some(channel);
        if let Some(view) = self.channels.get_mut(&channel) {
            view.unread = 0;
        }
    }

    pub fn total_unread(&self) -> usize {
        self.channels.values().map(|c| c.unread).sum()
    }

    /// Merges a page of history (any order, any overlap).
    pub fn add_history(&mut self, channel: ChannelId, messages: &[ChatMessage], has_more: bool) {
        let Some(view) = self.channels.get_mut(&channel) else {
            return;
        };
        for m in messages {
            insert_sorted(&mut view.messages, m.clone());
        }
        view.has_more = has_more;
        view.loaded = true;
    }

    /// The id to ask older history before (the oldest loaded message).
    pub fn oldest(&self, channel: ChannelId) -> Option<MessageId> {
        self.channels.get(&channel)?.messages.first().map(|m| m.id)
    }

    /// When the reader reaches the top: the `before` id of the next older page
    /// to fetch, unless there is none or it was already asked for.
    pub fn want_older(&mut self, channel: ChannelId) -> Option<MessageId> {
        let view = self.channels.get(&channel)?;
        if !view.loaded || !view.has_more {
            return None;
        }
        let before = view.messages.first()?.id;
        self.asked_older.insert((channel, before)).then_some(before)
    }

    /// Makes a `chat_send` for `body` and remembers it until acknowledged.
    pub fn compose(&mut self, channel: ChannelId, body: &str) -> ClientMessage {
        self.next_id += 1;
        let client_msg_id = format!("{:016x}-{}", self.session, self.next_id);
        self.pending.push(PendingChat {
            client_msg_id: client_msg_id.clone(),
            channel_id: channel,
            body: body.to_owned(),
            error: None,
        });
        ClientMessage::ChatSend {
            channel_id: channel,
            client_msg_id,
            body: body.to_owned(),
        }
    }

    /// What to send again after a reconnect: everything not yet acknowledged
    /// (the server stores each `client_msg_id` once, so resending is safe).
    pub fn resend(&self) -> Vec<ClientMessage> {
        self.pending
            .iter()
            .filter(|p| p.error.is_none())
            .map(|p| ClientMessage::ChatSend {
                channel_id: p.channel_id,
                client_msg_id: p.client_msg_id.clone(),
                body: p.body.clone(),
            })
            .collect()
    }

    /// Applies a chat-related server message. `me` marks my own messages read.
    pub fn apply(&mut self, msg: &ServerMessage, me: Option<UserId>) {
        match msg {
            ServerMessage::ChatMessage { message } => {
                let active = self.active;
                let view = self
                    .channels
                    .entry(message.channel_id)
                    .or_insert_with(|| ChannelView {
                        info: ChannelInfo {
                            id: message.channel_id,
                            kind: hallway_shared::protocol::ChannelKind::Direct,
                            space_id: None,
                            name: message.author_name.clone(),
                            members: Vec::new(),
                            last_message_id: None,
                        },
                        messages: Vec::new(),
                        has_more: true,
                        loaded: false,
                        unread: 0,
                    });
                let new = insert_sorted(&mut view.messages, message.clone());
                view.info.last_message_id = Some(message.id);
                if new && Some(message.author_id) != me && active != Some(message.channel_id) {
                    view.unread += 1;
                }
            }
            ServerMessage::ChatAck { client_msg_id, .. } => {
                self.pending.retain(|p| &p.client_msg_id != client_msg_id);
            }
            ServerMessage::Error {
                message,
                client_msg_id: Some(id),
                ..
            } => match self.pending.iter_mut().find(|p| &p.client_msg_id == id) {
                Some(p) => p.error = Some(message.clone()),
                None => self.notices.push(message.clone()),
            },
            _ => {}
        }
    }
}

/// Inserts keeping id order; false if the id was already there.
fn insert_sorted(messages: &mut Vec<ChatMessage>, m: ChatMessage) -> bool {
    match messages.binary_search_by_key(&m.id, |x| x.id) {
        Ok(_) => false,
        Err(i) => {
            messages.insert(i, m);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallway_shared::SpaceId;
    use hallway_shared::protocol::{ChannelKind, MessageKind};

    fn msg(id: i64, channel: i64, author: i64) -> ChatMessage {
        ChatMessage {
            id: MessageId(id),
            channel_id: ChannelId(channel),
            author_id: UserId(author),
            author_name: "x".into(),
            kind: MessageKind::Text,
            body: format!("m{id}"),
            created_at: 0,
        }
    }

    fn channel(id: i64) -> ChannelInfo {
        ChannelInfo {
            id: ChannelId(id),
            kind: ChannelKind::Space,
            space_id: Some(SpaceId(1)),
            name: format!("c{id}"),
            members: vec![],
            last_message_id: None,
        }
    }

    #[test]
    fn chat_counts_unread_merges_history_and_tracks_pending() {
        let mut c = ChatState::new();
        c.set_channels([channel(1), channel(2)]);
        assert_eq!(c.active, Some(ChannelId(1)));
        c.apply(
            &ServerMessage::ChatMessage {
                message: msg(10, 2, 5),
            },
            Some(UserId(1)),
        );
        c.apply(
            &ServerMessage::ChatMessage {
                message: msg(10, 2, 5),
            },
            Some(UserId(1)),
        );
        c.apply(
            &ServerMessage::ChatMessage {
                message: msg(11, 1, 5),
            },
            Some(UserId(1)),
        );
        c.apply(
            &ServerMessage::ChatMessage {
                message: msg(12, 2, 1),
            },
            Some(UserId(1)),
        );
        assert_eq!(
            c.channels[&ChannelId(2)].unread,
            1,
            "repeats, mine and the open channel don't count"
        );
        c.open(ChannelId(2));
        assert_eq!(c.total_unread(), 0);
        c.add_history(
            ChannelId(2),
            &[msg(3, 2, 5), msg(10, 2, 5), msg(1, 2, 5)],
            false,
        );
        let ids: Vec<i64> = c.channels[&ChannelId(2)]
            .messages
            .iter()
            .map(|m| m.id.0)
            .collect();
        assert_eq!(ids, [1, 3, 10, 12]);
        assert_eq!(c.oldest(ChannelId(2)), Some(MessageId(1)));
        assert_eq!(c.want_older(ChannelId(2)), None, "no more history");
        c.add_history(ChannelId(1), &[msg(20, 1, 5)], true);
        assert_eq!(c.want_older(ChannelId(1)), Some(MessageId(11)));
        assert_eq!(c.want_older(ChannelId(1)), None, "asked once");
        c.add_history(ChannelId(1), &[msg(4, 1, 5)], true);
        assert_eq!(
            c.want_older(ChannelId(1)),
            Some(MessageId(4)),
            "the next page"
        );

        let sent = c.compose(ChannelId(1), "hello");
        let ClientMessage::ChatSend { client_msg_id, .. } = &sent else {
            panic!()
        };
        assert_eq!(c.resend(), vec![sent.clone()]);
        c.apply(
            &ServerMessage::ChatAck {
                client_msg_id: client_msg_id.clone(),
                message_id: Some(MessageId(13)),
            },
            None,
        );
        assert!(c.pending.is_empty());
        let refused = c.compose(ChannelId(1), "/dance");
        let ClientMessage::ChatSend { client_msg_id, .. } = refused else {
            panic!()
        };
        c.apply(
            &ServerMessage::Error {
                code: hallway_shared::protocol::ErrorCode::UnknownCommand,
                message: "unknown command".into(),
                client_msg_id: Some(client_msg_id),
            },
            None,
        );
        assert_eq!(c.pending[0].error.as_deref(), Some("unknown command"));
        assert!(c.resend().is_empty(), "refused messages are not resent");
    }
}
