//! The bounded queue of frames waiting to be written to one WebSocket. Senders
//! never wait: if the queue is full the client is too slow, and the connection
//! is closed rather than letting the server buffer without bound.

use axum::extract::ws::Utf8Bytes;
use hallway_shared::protocol::ServerMessage;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Identifies one WebSocket connection (a user may have several).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Why a connection is being closed: a WebSocket close code and reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

pub const CLOSE_SLOW: CloseReason = CloseReason {
    code: 1008,
    reason: "slow consumer",
};
pub const CLOSE_IDLE: CloseReason = CloseReason {
    code: 1001,
    reason: "idle timeout",
};
pub const CLOSE_SHUTDOWN: CloseReason = CloseReason {
    code: 1001,
    reason: "server shutting down",
};
/// The user joined from another connection; clients must not reconnect by themselves.
pub const CLOSE_REPLACED: CloseReason = CloseReason {
    code: 4001,
    reason: "session replaced",
};
/// The space restarted after an internal error; clients reconnect and join again
/// (RFC 6455's registry calls 1012 "Service Restart").
pub const CLOSE_RESTARTED: CloseReason = CloseReason {
    code: 1012,
    reason: "space restarted",
};
/// A text frame that is not valid UTF-8 (RFC 6455 §8.1).
pub const CLOSE_BAD_UTF8: CloseReason = CloseReason {
    code: 1007,
    reason: "invalid UTF-8",
};
/// A frame that breaks the WebSocket protocol (RFC 6455 §7.4.1).
pub const CLOSE_PROTOCOL: CloseReason = CloseReason {
    code: 1002,
    reason: "protocol error",
};
/// The connection ended without a reason of the server's (the client closed).
pub const CLOSE_NORMAL: CloseReason = CloseReason {
    code: 1000,
    reason: "",
};
pub const CLOSE_TOO_BIG: CloseReason = CloseReason {
    code: 1009,
    reason: "message too big",
};

/// A cloneable handle for sending to one connection.
#[derive(Clone, Debug)]
pub struct Outbox {
    pub conn: ConnId,
    tx: mpsc::Sender<Utf8Bytes>,
    kill: CancellationToken,
    reason: Arc<OnceLock<CloseReason>>,
}

impl Outbox {
    /// A new outbox and the receiving end for the connection's writer.
    pub fn new(capacity: usize, kill: CancellationToken) -> (Outbox, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        let outbox = Outbox {
            conn: ConnId::next(),
            tx,
            kill,
            reason: Arc::new(OnceLock::new()),
        };
        (outbox, rx)
    }

    /// Queues a frame; on a full queue closes the connection. Returns false if
    /// the frame was not queued.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CLOSE_SLOW);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    pub fn send_msg(&self, msg: &ServerMessage) -> bool {
        self.send(encode(msg))
    }

    /// Asks the connection to close with `reason` (the first reason given wins).
    pub fn close(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.kill.cancel();
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    pub fn closed(&self) -> &CancellationToken {
        &self.kill
    }
}

/// Serializes a message once, to be shared by every recipient.
pub fn encode(msg: &ServerMessage) -> Utf8Bytes {
    // Serializing these types cannot fail: no maps with non-string keys, no
    // custom serializers.
    Utf8Bytes::from(serde_json::to_string(msg).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_connection_as_slow() {
        let (outbox, mut rx) = Outbox::new(2, CancellationToken::new());
        assert!(outbox.send("a".into()));
        assert!(outbox.send("b".into()));
        assert!(!outbox.closed().is_cancelled());
        assert!(!outbox.send("c".into()));
        assert!(outbox.closed().is_cancelled());
        assert_eq!(outbox.close_reason(), Some(CLOSE_SLOW));
        assert_eq!(rx.try_recv().unwrap().as_str(), "a");
    }
}
