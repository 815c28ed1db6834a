//! Schema migrations, tracked with SQLite's `user_version`.

use super::StoreError;
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT UNIQUE COLLATE NOCASE,
    password_hash TEXT,
    display_name  TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'available',
    status_text   TEXT,
    created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE spaces (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    private     INTEGER NOT NULL,
    invite_code TEXT UNIQUE,
    map         TEXT NOT NULL,
    owner_id    INTEGER REFERENCES users(id),
    created_at  INTEGER NOT NULL
);
CREATE TABLE space_members (
    space_id  INTEGER NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (space_id, user_id)
);
CREATE TABLE channels (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('space', 'direct')),
    space_id   INTEGER REFERENCES spaces(id) ON DELETE CASCADE,
    name       TEXT,
    dm_low     INTEGER REFERENCES users(id),
    dm_high    INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL,
    UNIQUE (space_id, name),
    UNIQUE (dm_low, dm_high)
);
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    channel_id    INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    author_id     INTEGER NOT NULL REFERENCES users(id),
    author_name   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    body          TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (author_id, client_msg_id)
);
CREATE INDEX messages_channel ON messages(channel_id, id);
",
    r"
-- A space's own rules (JSON of SpaceRules); NULL means the server's defaults.
ALTER TABLE spaces ADD COLUMN rules TEXT;
",
];

pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let known = MIGRATIONS.len() as i64;
    if version > known {
        return Err(StoreError::TooNew(version));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
