//! Who is connected, by user: used to deliver direct messages to every open
//! connection of both users, wherever they are.

use crate::outbox::{ConnId, Outbox};
use axum::extract::ws::Utf8Bytes;
use hallway_shared::UserId;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Hub {
    users: Mutex<HashMap<UserId, Vec<Outbox>>>,
}

impl Hub {
    pub fn register(&self, user: UserId, outbox: Outbox) {
        if let Ok(mut users) = self.users.lock() {
            users.entry(user).or_default().push(outbox);
        }
    }

    pub fn unregister(&self, user: UserId, conn: ConnId) {
        if let Ok(mut users) = self.users.lock()
            && let Some(list) = users.get_mut(&user)
        {
            list.retain(|o| o.conn != conn);
            if list.is_empty() {
                users.remove(&user);
            }
        }
    }

    /// Queues `frame` on every connection of `user`.
    pub fn send_to_user(&self, user: UserId, frame: &Utf8Bytes) {
        let outboxes: Vec<Outbox> = match self.users.lock() {
            Ok(users) => users.get(&user).cloned().unwrap_or_default(),
            Err(_) => return,
        };
        for o in outboxes {
            o.send(frame.clone());
        }
    }

    pub fn connections(&self) -> usize {
        self.users
            .lock()
            .map_or(0, |u| u.values().map(Vec::len).sum())
    }
}
