//! Chat messages: stored once per `(author, client_msg_id)`, read back in pages.

use super::{Store, StoreError, now_ms};
use hallway_shared::protocol::{ChatMessage, MessageKind};
use hallway_shared::{ChannelId, MessageId, UserId};
use rusqlite::{OptionalExtension, Row, params};

#[derive(Clone, Debug)]
pub struct NewMessage {
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub kind: MessageKind,
    pub body: String,
    pub client_msg_id: String,
}

/// A message as stored; `duplicate` is true if this `client_msg_id` was stored before.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub message: ChatMessage,
    pub duplicate: bool,
}

const MESSAGE_COLUMNS: &str = "id, channel_id, author_id, author_name, kind, body, created_at";

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    let kind: String = r.get(4)?;
    Ok(ChatMessage {
        id: MessageId(r.get(0)?),
        channel_id: ChannelId(r.get(1)?),
        author_id: UserId(r.get(2)?),
        author_name: r.get(3)?,
        kind: if kind == "me" {
            MessageKind::Me
        } else {
            MessageKind::Text
        },
        body: r.get(5)?,
        created_at: r.get(6)?,
    })
}

impl Store {
    /// Stores `m` under the author's current display name and returns it once
    /// committed (the database is in `synchronous=FULL` mode, so it is on
    /// disk). A repeated `(author, client_msg_id)` returns the first message
    /// instead: ids are unique per author across all channels.
    pub async fn insert_message(&self, m: NewMessage) -> Result<StoredMessage, StoreError> {
        self.call(move |c| {
            let kind = match m.kind {
                MessageKind::Text => "text",
                MessageKind::Me => "me",
            };
            let inserted = c.execute(
                "INSERT INTO messages (channel_id, author_id, author_name, kind, body, client_msg_id, created_at)
                 SELECT ?1, ?2, display_name, ?3, ?4, ?5, ?6 FROM users WHERE id = ?2
                 ON CONFLICT (author_id, client_msg_id) DO NOTHING",
                params![m.channel_id.0, m.author_id.0, kind, m.body, m.client_msg_id, now_ms()],
            )?;
            let message = c.query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = ?1 AND client_msg_id = ?2"),
                params![m.author_id.0, m.client_msg_id],
                message_from_row,
            )?;
            Ok(StoredMessage { message, duplicate: inserted == 0 })
        })
        .await
    }

    /// Up to `limit` messages of `channel` older than `before` (newest if `None`),
    /// returned oldest first, and whether older ones exist.
    pub async fn messages(
        &self,
        channel: ChannelId,
        before: Option<MessageId>,
        limit: usize,
    ) -> Result<(Vec<ChatMessage>, bool), StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE channel_id = ?1 AND id < ?2
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let before = before.map_or(i64::MAX, |b| b.0);
            let mut rows = stmt
                .query_map(
                    params![channel.0, before, limit as i64 + 1],
                    message_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let has_more = rows.len() > limit;
            rows.truncate(limit);
            rows.reverse();
            Ok((rows, has_more))
        })
        .await
    }

    pub async fn message(&self, id: MessageId) -> Result<Option<ChatMessage>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
                [id.0],
                message_from_row,
            )
            .optional()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedup_and_paging() {
        let store = Store::open_in_memory().unwrap();
        let user = store
            .create_user(None, None, "Ann".into())
            .await
            .unwrap()
            .unwrap();
        store
            .ensure_default_space("Office", "office")
            .await
            .unwrap();
        let space = store.spaces_for(user.id).await.unwrap()[0].clone();
        let channel = store.space_channels(space.id).await.unwrap()[0].id;
        let mut ids = vec![];
        for i in 0..5 {
            let m = NewMessage {
                channel_id: channel,
                author_id: user.id,
                kind: MessageKind::Text,
                body: format!("m{i}"),
                client_msg_id: format!("c{i}"),
            };
            let stored = store.insert_message(m.clone()).await.unwrap();
            assert!(!stored.duplicate);
            let again = store.insert_message(m).await.unwrap();
            assert!(again.duplicate);
            assert_eq!(again.message.id, stored.message.id);
            ids.push(stored.message.id);
        }
        let (page, more) = store.messages(channel, None, 2).await.unwrap();
        assert!(more);
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids[3..]);
        let (page, more) = store.messages(channel, Some(ids[3]), 10).await.unwrap();
        assert!(!more);
        assert_eq!(page.iter().map(|m| m.id).collect::<Vec<_>>(), ids[..3]);
    }
}
