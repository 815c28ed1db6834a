//! Users and their session tokens. Tokens are stored only as SHA-256 hashes.

use super::{Store, StoreError, now_ms};
use hallway_shared::UserId;
use hallway_shared::protocol::{Status, UserInfo};
use rusqlite::{OptionalExtension, Row, params};

/// What became of a guest's upgrade to an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upgrade {
    Done,
    UsernameTaken,
    /// The user already has an account (e.g. a concurrent upgrade won).
    NotAGuest,
}

#[derive(Clone, Debug)]
pub struct UserRow {
    pub info: UserInfo,
    pub password_hash: Option<String>,
}

const USER_COLUMNS: &str = "id, username, password_hash, display_name, status, status_text";

fn user_from_row(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    let username: Option<String> = r.get(1)?;
    let password_hash: Option<String> = r.get(2)?;
    let status: String = r.get(4)?;
    Ok(UserRow {
        info: UserInfo {
            id: UserId(r.get(0)?),
            guest: password_hash.is_none(),
            username,
            display_name: r.get(3)?,
            status: Status::parse(&status).unwrap_or_default(),
            status_text: r.get(5)?,
        },
        password_hash,
    })
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Available => "available",
        Status::Busy => "busy",
        Status::Away => "away",
    }
}

impl Store {
    pub async fn create_user(
        &self,
        username: Option<String>,
        password_hash: Option<String>,
        display_name: String,
    ) -> Result<Option<UserInfo>, StoreError> {
        self.call(move |c| {
            let inserted = c.execute(
                "INSERT INTO users (username, password_hash, display_name, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![username, password_hash, display_name, now_ms()],
            )?;
            if inserted == 0 {
                return Ok(None); // username taken
            }
            let id = c.last_insert_rowid();
            Ok(Some(get_user(c, UserId(id))?.map(|u| u.info)).flatten())
        })
        .await
    }

    pub async fn user(&self, id: UserId) -> Result<Option<UserRow>, StoreError> {
        self.call(move |c| get_user(c, id)).await
    }

    pub async fn user_by_username(&self, username: String) -> Result<Option<UserRow>, StoreError> {
        self.call(move |c| {
            Ok(c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Gives a guest a username and password. `Ok(false)` if the username is taken.
    pub async fn upgrade_guest(
        &self,
        id: UserId,
        username: String,
        password_hash: String,
    ) -> Result<Upgrade, StoreError> {
        self.call(move |c| {
            // The UNIQUE index decides, so two requests racing for one name
            // cannot both win.
            match c.execute(
                "UPDATE users SET username = ?2, password_hash = ?3
                 WHERE id = ?1 AND password_hash IS NULL",
                params![id.0, username, password_hash],
            ) {
                Ok(0) => Ok(Upgrade::NotAGuest),
                Ok(_) => Ok(Upgrade::Done),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Ok(Upgrade::UsernameTaken)
                }
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    pub async fn set_display_name(&self, id: UserId, name: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE users SET display_name = ?2 WHERE id = ?1",
                params![id.0, name],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn set_status(
        &self,
        id: UserId,
        status: Status,
        text: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE users SET status = ?2, status_text = ?3 WHERE id = ?1",
                params![id.0, status_word(status), text],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn create_session(
        &self,
        user: UserId,
        token_hash: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at) VALUES (?1, ?2, ?3)",
                params![token_hash, user.0, now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn delete_session(&self, token_hash: Vec<u8>) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
            Ok(())
        })
        .await
    }

    pub async fn user_by_token_hash(
        &self,
        token_hash: Vec<u8>,
    ) -> Result<Option<UserInfo>, StoreError> {
        self.call(move |c| {
            let id: Option<i64> = c
                .query_row(
                    "SELECT user_id FROM sessions WHERE token_hash = ?1",
                    [token_hash],
                    |r| r.get(0),
                )
                .optional()?;
            match id {
                Some(id) => Ok(get_user(c, UserId(id))?.map(|u| u.info)),
                None => Ok(None),
            }
        })
        .await
    }
}

pub(super) fn get_user(
    c: &rusqlite::Connection,
    id: UserId,
) -> Result<Option<UserRow>, StoreError> {
    Ok(c.query_row(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id.0],
        user_from_row,
    )
    .optional()?)
}
