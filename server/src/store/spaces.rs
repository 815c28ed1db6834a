//! Spaces, their members (for private spaces) and channels, including
//! direct-message channels.

use super::{Store, StoreError, now_ms};
use hallway_shared::protocol::{ChannelKind, SpaceRules};
use hallway_shared::{ChannelId, MessageId, SpaceId, UserId};
use rusqlite::{Connection, OptionalExtension, Row, params};

#[derive(Clone, Debug, PartialEq)]
pub struct SpaceRow {
    pub id: SpaceId,
    pub name: String,
    pub private: bool,
    pub invite_code: Option<String>,
    pub map: String,
    /// The space's own rules, if it has any.
    pub rules: Option<SpaceRules>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChannelRow {
    pub id: ChannelId,
    pub kind: ChannelKind,
    pub space_id: Option<SpaceId>,
    /// The channel's name (space channels only).
    pub name: Option<String>,
    /// Both users of a direct channel, lower id first.
    pub direct: Option<(UserId, UserId)>,
    pub last_message_id: Option<MessageId>,
}

/// Channels every new space starts with.
pub const DEFAULT_CHANNELS: &[&str] = &["general", "random"];

const SPACE_COLUMNS: &str = "id, name, private, invite_code, map, rules";

fn space_from_row(r: &Row<'_>) -> rusqlite::Result<SpaceRow> {
    Ok(SpaceRow {
        id: SpaceId(r.get(0)?),
        name: r.get(1)?,
        private: r.get(2)?,
        invite_code: r.get(3)?,
        map: r.get(4)?,
        rules: r
            .get::<_, Option<String>>(5)?
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

const CHANNEL_COLUMNS: &str = "c.id, c.kind, c.space_id, c.name, c.dm_low, c.dm_high,
    (SELECT MAX(m.id) FROM messages m WHERE m.channel_id = c.id)";

fn channel_from_row(r: &Row<'_>) -> rusqlite::Result<ChannelRow> {
    let kind: String = r.get(1)?;
    let low: Option<i64> = r.get(4)?;
    let high: Option<i64> = r.get(5)?;
    Ok(ChannelRow {
        id: ChannelId(r.get(0)?),
        kind: if kind == "direct" {
            ChannelKind::Direct
        } else {
            ChannelKind::Space
        },
        space_id: r.get::<_, Option<i64>>(2)?.map(SpaceId),
        name: r.get(3)?,
        direct: low.zip(high).map(|(a, b)| (UserId(a), UserId(b))),
        last_message_id: r.get::<_, Option<i64>>(6)?.map(MessageId),
    })
}

fn insert_space(
    c: &mut Connection,
    name: &str,
    private: bool,
    invite_code: Option<&str>,
    map: &str,
    owner: Option<UserId>,
    rules: Option<SpaceRules>,
) -> Result<SpaceRow, StoreError> {
    let tx = c.transaction()?;
    let now = now_ms();
    let rules_json = rules.and_then(|r| serde_json::to_string(&r).ok());
    tx.execute(
        "INSERT INTO spaces (name, private, invite_code, map, owner_id, created_at, rules)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            private,
            invite_code,
            map,
            owner.map(|o| o.0),
            now,
            rules_json
        ],
    )?;
    let id = tx.last_insert_rowid();
    if let Some(owner) = owner {
        tx.execute(
            "INSERT INTO space_members (space_id, user_id, joined_at) VALUES (?1, ?2, ?3)",
            params![id, owner.0, now],
        )?;
    }
    for channel in DEFAULT_CHANNELS {
        tx.execute(
            "INSERT INTO channels (kind, space_id, name, created_at) VALUES ('space', ?1, ?2, ?3)",
            params![id, channel, now],
        )?;
    }
    tx.commit()?;
    Ok(SpaceRow {
        id: SpaceId(id),
        name: name.to_owned(),
        private,
        invite_code: invite_code.map(str::to_owned),
        map: map.to_owned(),
        rules,
    })
}

impl Store {
    /// Creates the public space `name` on `map` if the server has no space at all.
    pub async fn ensure_default_space(&self, name: &str, map: &str) -> Result<(), StoreError> {
        let (name, map) = (name.to_owned(), map.to_owned());
        self.call(move |c| {
            let any: bool = c.query_row("SELECT EXISTS(SELECT 1 FROM spaces)", [], |r| r.get(0))?;
            if !any {
                insert_space(c, &name, false, None, &map, None, None)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn create_space(
        &self,
        name: String,
        private: bool,
        invite_code: Option<String>,
        map: String,
        owner: UserId,
        rules: Option<SpaceRules>,
    ) -> Result<SpaceRow, StoreError> {
        self.call(move |c| {
            insert_space(
                c,
                &name,
                private,
                invite_code.as_deref(),
                &map,
                Some(owner),
                rules,
            )
        })
        .await
    }

    pub async fn space(&self, id: SpaceId) -> Result<Option<SpaceRow>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE id = ?1"),
                [id.0],
                space_from_row,
            )
            .optional()?)
        })
        .await
    }

    pub async fn space_by_invite(&self, code: String) -> Result<Option<SpaceRow>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {SPACE_COLUMNS} FROM spaces WHERE invite_code = ?1"),
                [code],
                space_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Public spaces and the private spaces `user` belongs to, oldest first.
    pub async fn spaces_for(&self, user: UserId) -> Result<Vec<SpaceRow>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {SPACE_COLUMNS} FROM spaces s WHERE private = 0
                   OR EXISTS(SELECT 1 FROM space_members m WHERE m.space_id = s.id AND m.user_id = ?1)
                 ORDER BY id"
            ))?;
            let rows = stmt.query_map([user.0], space_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    pub async fn is_space_member(&self, space: SpaceId, user: UserId) -> Result<bool, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM space_members WHERE space_id = ?1 AND user_id = ?2)",
                params![space.0, user.0],
                |r| r.get(0),
            )?)
        })
        .await
    }

    pub async fn add_space_member(&self, space: SpaceId, user: UserId) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO space_members (space_id, user_id, joined_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![space.0, user.0, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn space_channels(&self, space: SpaceId) -> Result<Vec<ChannelRow>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.space_id = ?1 ORDER BY c.id"
            ))?;
            let rows = stmt.query_map([space.0], channel_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// Creates a channel in a space; `None` if the name is taken there.
    pub async fn create_channel(
        &self,
        space: SpaceId,
        name: String,
    ) -> Result<Option<ChannelRow>, StoreError> {
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO channels (kind, space_id, name, created_at) VALUES ('space', ?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![space.0, name, now_ms()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            get_channel(c, ChannelId(c.last_insert_rowid()))
        })
        .await
    }

    pub async fn channel(&self, id: ChannelId) -> Result<Option<ChannelRow>, StoreError> {
        self.call(move |c| get_channel(c, id)).await
    }

    /// The direct channel between `a` and `b`, created on first use.
    pub async fn open_direct(&self, a: UserId, b: UserId) -> Result<ChannelRow, StoreError> {
        let (low, high) = if a < b { (a, b) } else { (b, a) };
        self.call(move |c| {
            c.execute(
                "INSERT INTO channels (kind, dm_low, dm_high, created_at) VALUES ('direct', ?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![low.0, high.0, now_ms()],
            )?;
            let id: i64 = c.query_row(
                "SELECT id FROM channels WHERE dm_low = ?1 AND dm_high = ?2",
                params![low.0, high.0],
                |r| r.get(0),
            )?;
            get_channel(c, ChannelId(id))?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
        })
        .await
    }

    /// Direct channels `user` is in, with the other user's display name.
    pub async fn direct_channels(
        &self,
        user: UserId,
    ) -> Result<Vec<(ChannelRow, String)>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CHANNEL_COLUMNS}, u.display_name FROM channels c
                 JOIN users u ON u.id = CASE WHEN c.dm_low = ?1 THEN c.dm_high ELSE c.dm_low END
                 WHERE c.kind = 'direct' AND (c.dm_low = ?1 OR c.dm_high = ?1)
                 ORDER BY c.id"
            ))?;
            let rows = stmt.query_map([user.0], |r| Ok((channel_from_row(r)?, r.get(7)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

fn get_channel(c: &Connection, id: ChannelId) -> Result<Option<ChannelRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {CHANNEL_COLUMNS} FROM channels c WHERE c.id = ?1"),
        [id.0],
        channel_from_row,
    )
    .optional()?)
}
