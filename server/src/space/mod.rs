//! Spaces at run time: one actor task per space owns its members, positions and
//! proximity graph; everyone else talks to it through a [`SpaceHandle`].

mod actor;

pub use actor::{Command, JoinError};

use crate::config::Config;
use crate::outbox::{ConnId, Outbox};
use crate::relay::IceServers;
use hallway_shared::protocol::{Member, SpaceInfo, SpaceRules, Status};
use hallway_shared::{Facing, MapModel, SpaceId, TilePos, UserId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Who is joining: what the space needs to know about them.
#[derive(Clone, Debug)]
pub struct Joiner {
    pub user_id: UserId,
    pub display_name: String,
    pub status: Status,
    pub status_text: Option<String>,
    pub outbox: Outbox,
    /// Where the client asks to appear (see `ClientMessage::Join`).
    pub at: Option<TilePos>,
    /// The client's run (see `ClientMessage::Join`): the same one on another
    /// connection resumes rather than takes over.
    pub instance: Option<u64>,
}

/// Talks to one space's actor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SpaceHandle {
    pub id: SpaceId,
    tx: mpsc::Sender<Command>,
    online: Arc<AtomicUsize>,
}

impl SpaceHandle {
    /// How many people are in the space (without asking the actor).
    pub fn online(&self) -> usize {
        self.online.load(Ordering::Relaxed)
    }

    async fn send(&self, cmd: Command) {
        // The actor only stops at shutdown, when nobody needs an answer.
        let _ = self.tx.send(cmd).await;
    }

    pub async fn join(&self, joiner: Joiner) -> Result<(), JoinError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Join { joiner, reply }).await;
        rx.await.unwrap_or(Err(JoinError::Stopped))
    }

    /// Takes the user out; returns once nothing more from this space will be
    /// queued for `conn`.
    pub async fn leave(&self, user: UserId, conn: ConnId) {
        let (done, rx) = oneshot::channel();
        self.send(Command::Leave { user, conn, done }).await;
        let _ = rx.await;
    }

    pub async fn step(&self, user: UserId, conn: ConnId, x: i32, y: i32, facing: Facing) {
        self.send(Command::Move {
            user,
            conn,
            x,
            y,
            facing,
        })
        .await;
    }

    pub async fn signal(&self, from: UserId, conn: ConnId, to: UserId, payload: serde_json::Value) {
        self.send(Command::Signal {
            from,
            conn,
            to,
            payload,
        })
        .await;
    }

    pub async fn update(
        &self,
        user: UserId,
        display_name: Option<String>,
        status: Option<(Status, Option<String>)>,
    ) {
        self.send(Command::Update {
            user,
            display_name,
            status,
        })
        .await;
    }

    /// Sends an already encoded frame to everyone in the space.
    pub async fn broadcast(&self, frame: axum::extract::ws::Utf8Bytes) {
        self.send(Command::Broadcast { frame }).await;
    }

    pub async fn members(&self) -> Vec<Member> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Members { reply }).await;
        rx.await.unwrap_or_default()
    }
}

/// The running spaces, started on first use.
pub struct Spaces {
    config: Arc<Config>,
    ice: IceServers,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    running: Mutex<HashMap<SpaceId, SpaceHandle>>,
}

impl Spaces {
    pub fn new(
        config: Arc<Config>,
        ice: IceServers,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Self {
        Self {
            config,
            ice,
            shutdown,
            tracker,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// The space's handle if its actor is running.
    pub fn get(&self, id: SpaceId) -> Option<SpaceHandle> {
        self.running
            .lock()
            .ok()?
            .get(&id)
            .filter(|h| !h.tx.is_closed())
            .cloned()
    }

    /// The space's handle, starting its actor if needed.
    pub fn get_or_start(
        &self,
        info: SpaceInfo,
        map: Arc<MapModel>,
        rules: SpaceRules,
    ) -> Option<SpaceHandle> {
        let mut running = self.running.lock().ok()?;
        // An actor that ended (it only does at shutdown, or if its task was
        // lost) is replaced rather than handed out to wait forever.
        if let Some(h) = running.get(&info.id).filter(|h| !h.tx.is_closed()) {
            return Some(h.clone());
        }
        let (tx, rx) = mpsc::channel(4096);
        let online = Arc::new(AtomicUsize::new(0));
        let handle = SpaceHandle {
            id: info.id,
            tx,
            online: Arc::clone(&online),
        };
        let actor =
            actor::SpaceActor::new(info, map, rules, &self.config, self.ice.clone(), online);
        self.tracker
            .spawn(actor.run(rx, self.shutdown.child_token()));
        running.insert(handle.id, handle.clone());
        Some(handle)
    }
}
