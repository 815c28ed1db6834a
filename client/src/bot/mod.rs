//! A headless Hallway client: logs in as a guest, joins a space, walks where
//! it is told at the desktop app's pace, and (optionally) talks, listens and
//! shows its camera through the real call pipeline with fake devices.
//! `hallway-bot` is a thin command line over it; the voice tests drive several
//! in one process.
//!
//! A [`Bot`] is a handle to a thread that runs the loop: it waits on the
//! session, its commands, the call's events and decoded pictures at once,
//! feeds the session through the shared message pump ([`crate::client`]),
//! walks, and keeps the [`report`] up to date.

pub mod report;

use crate::call::{Call, CallOptions};
use crate::client::{Client, Update};
use crate::core::api::{Api, ApiError};
use crate::core::net::{self, NetEvent, NetHandle};
use crate::core::space::Change;
use crate::core::walk::{self, direction_towards, step};
use crate::media::video::remote::RemoteVideo;
use crate::media::{MicSpec, SpeakerSpec};
use hallway_shared::map::MapModel;
use hallway_shared::protocol::{ChannelInfo, ClientMessage};
use hallway_shared::{ChannelId, SpaceId, TilePos, UserId};
pub use report::{Arrival, CameraReport, PeerReport, Report, VoiceReport};
use report::{Collector, Picture};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the call's figures are taken into the report.
const STATS_EVERY: Duration = Duration::from_millis(100);
/// A step the server has not answered after this long is given up on.
const STEP_ANSWER: Duration = Duration::from_secs(3);
/// How long `start` waits for the `welcome`.
const JOIN_WAIT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug)]
pub struct BotOptions {
    /// Server address, e.g. `127.0.0.1:8080`.
    pub server: String,
    pub name: String,
    /// Space id or name; the first listed if `None`.
    pub space: Option<String>,
    /// Voice with these devices, or no voice at all.
    pub voice: Option<CallOptions>,
    /// Ask to appear on this tile (the server may put us elsewhere).
    pub start_at: Option<TilePos>,
    /// Time per step ([`walk::STEP`] walks like a person; tests on a server with a
    /// raised step rate may go faster).
    pub step: Duration,
    /// Save each peer's video here, one PNG per second.
    pub video_out: Option<PathBuf>,
}

impl BotOptions {
    pub fn new(server: &str, name: &str) -> BotOptions {
        BotOptions {
            server: server.to_string(),
            name: name.to_string(),
            space: None,
            voice: None,
            start_at: None,
            step: walk::STEP,
            video_out: None,
        }
    }
}

/// Why a session ended by the server's doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionEnd {
    #[error("the server refused the token")]
    Unauthorized,
    #[error("another connection of this user took over")]
    Replaced,
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("cannot start the bot: {0}")]
    Runtime(#[source] std::io::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the server has no space {0:?}")]
    NoSpace(Option<String>),
    #[error("cannot start the call: {0}")]
    Call(#[from] webrtc::Error),
    #[error("no welcome from the server within {} s", JOIN_WAIT.as_secs())]
    JoinTimeout,
    #[error("no way from {from:?} to {to:?}")]
    NoWay { from: TilePos, to: TilePos },
    #[error("the session ended: {0}")]
    Ended(SessionEnd),
    #[error("the bot stopped")]
    Stopped,
}

enum Command {
    WalkTo(
        TilePos,
        crossbeam_channel::Sender<Result<TilePos, BotError>>,
    ),
    SetMic(MicSpec),
    SetSpeaker(SpeakerSpec),
    Say(ChannelId, String),
    OpenDirect(
        UserId,
        crossbeam_channel::Sender<Result<ChannelInfo, BotError>>,
    ),
    Stop,
}

/// A bot running on its own thread.
pub struct Bot {
    pub user_id: UserId,
    pub space_id: SpaceId,
    pub map: Arc<MapModel>,
    /// The space's channels when the bot joined.
    pub channels: Vec<ChannelInfo>,
    commands: crossbeam_channel::Sender<Command>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the loop publishes for the handle.
struct Shared {
    collector: Collector,
    position: Option<TilePos>,
    ended: Option<SessionEnd>,
}

impl Bot {
    /// Logs in, joins, starts the call if asked, and waits for the `welcome`.
    pub fn start(options: BotOptions) -> Result<Bot, BotError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(BotError::Runtime)?;
        let api = Api::new(&options.server);
        let auth = rt.block_on(api.guest(&options.name))?;
        let api = api.with_token(auth.token.clone());
        let spaces = rt.block_on(api.spaces())?;
        let space = match &options.space {
            Some(want) => spaces
                .iter()
                .find(|s| s.id.to_string() == *want || s.name.eq_ignore_ascii_case(want)),
            None => spaces.first(),
        }
        .ok_or_else(|| BotError::NoSpace(options.space.clone()))?;
        let space_id = space.id;
        let map = Arc::new(rt.block_on(api.map(space_id))?);
        // The channels, as the app lists them on entry: they tell direct
        // messages from space channels.
        let channels = rt.block_on(api.channels(space_id))?;
        let direct = rt.block_on(api.direct_channels())?;
        let net = net::spawn(rt.handle(), api.ws_url(), auth.token);
        let (tap_tx, tap) = crossbeam_channel::bounded(256);
        let mut client = Client::new();
        client.map = Some(map.clone());
        client
            .chat
            .set_channels(channels.iter().cloned().chain(direct));
        if let Some(mut options) = options.voice {
            options.video_tap = Some(tap_tx);
            let out = crate::rtc::SignalOut::through(net.sender());
            client.call = Some(Call::start(rt.handle(), options, out)?);
        }
        net.send(ClientMessage::Join {
            space_id,
            x: options.start_at.map(|p| p.x),
            y: options.start_at.map(|p| p.y),
            instance: None,
        });
        let shared = Arc::new(Mutex::new(Shared {
            collector: Collector::new(auth.user.id, space_id, options.video_out),
            position: None,
            ended: None,
        }));
        let (commands, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let mut runner = Runner {
            rt,
            api,
            net,
            client,
            map: map.clone(),
            me: auth.user.id,
            shared: shared.clone(),
            step: options.step,
            tap,
        };
        let thread = std::thread::Builder::new()
            .name(format!("bot {}", options.name))
            .spawn(move || runner.run(rx, ready_tx))
            .map_err(BotError::Runtime)?;
        match ready_rx.recv_timeout(JOIN_WAIT) {
            Ok(Ok(())) => {}
            Ok(Err(end)) => return Err(BotError::Ended(end)),
            Err(_) => return Err(BotError::JoinTimeout),
        }
        Ok(Bot {
            user_id: auth.user.id,
            space_id,
            map,
            channels,
            commands,
            shared,
            thread: Some(thread),
        })
    }

    /// Walks to `target` (shortest walkable path, one step per
    /// [`BotOptions::step`]); returns where the bot ended up.
    pub fn walk_to(&self, target: TilePos) -> Result<TilePos, BotError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::WalkTo(target, tx))
            .map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    /// Switches the call's microphone, as choosing another in Devices does.
    pub fn set_mic(&self, mic: MicSpec) {
        let _ = self.commands.send(Command::SetMic(mic));
    }

    /// Switches the call's speaker.
    pub fn set_speaker(&self, speaker: SpeakerSpec) {
        let _ = self.commands.send(Command::SetSpeaker(speaker));
    }

    /// Posts `body` in `channel`, as typing it in the chat does.
    pub fn say(&self, channel: ChannelId, body: &str) {
        let _ = self.commands.send(Command::Say(channel, body.to_string()));
    }

    /// Opens (or finds) the direct-message channel with `user`.
    pub fn open_direct(&self, user: UserId) -> Result<ChannelInfo, BotError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::OpenDirect(user, tx))
            .map_err(|_| self.stopped())?;
        rx.recv().map_err(|_| self.stopped())?
    }

    /// Walks through every waypoint in turn.
    pub fn walk(&self, route: &[TilePos]) -> Result<(), BotError> {
        for t in route {
            self.walk_to(*t)?;
        }
        Ok(())
    }

    fn stopped(&self) -> BotError {
        self.read(|s| s.ended)
            .flatten()
            .map_or(BotError::Stopped, BotError::Ended)
    }

    fn read<T>(&self, f: impl FnOnce(&Shared) -> T) -> Option<T> {
        self.shared.lock().ok().map(|s| f(&s))
    }

    pub fn position(&self) -> Option<TilePos> {
        self.read(|s| s.position).flatten()
    }

    /// The server's current peer list.
    pub fn peers(&self) -> Vec<UserId> {
        self.read(|s| s.collector.peers.clone()).unwrap_or_default()
    }

    /// Peers whose WebRTC connection is up now.
    pub fn connected(&self) -> Vec<UserId> {
        self.read(|s| s.collector.connected.clone())
            .unwrap_or_default()
    }

    /// Stereo frames written to the output recording so far.
    pub fn output_frame(&self) -> Option<u64> {
        self.read(|s| s.collector.output_frame).flatten()
    }

    /// `peer`'s video on the current link (`None` once the link is gone).
    pub fn video(&self, peer: UserId) -> Option<RemoteVideo> {
        self.read(|s| {
            s.collector
                .videos
                .iter()
                .find(|(id, _)| *id == peer)
                .map(|(_, v)| v.clone())
        })
        .flatten()
    }

    /// How many peers' video is on screen (current links only).
    pub fn videos_len(&self) -> usize {
        self.read(|s| s.collector.videos.len()).unwrap_or(0)
    }

    pub fn report(&self) -> Report {
        self.read(|s| s.collector.report.clone())
            .unwrap_or_default()
    }

    /// Waits until `cond` holds for this bot (checked every 20 ms).
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&Bot) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if cond(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        cond(self)
    }

    /// Leaves the space, stops the call and returns the final report.
    pub fn stop(mut self) -> Report {
        self.shutdown();
        self.report()
    }

    fn shutdown(&mut self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Walk {
    target: TilePos,
    reply: crossbeam_channel::Sender<Result<TilePos, BotError>>,
    /// The step sent and not yet confirmed, and when.
    pending: Option<(TilePos, Instant)>,
    next_step: Instant,
}

impl Walk {
    /// When this walk needs attention next.
    fn deadline(&self) -> Instant {
        match self.pending {
            Some((_, sent)) => sent + STEP_ANSWER,
            None => self.next_step,
        }
    }
}

struct Runner {
    rt: tokio::runtime::Runtime,
    api: Api,
    net: NetHandle,
    client: Client,
    map: Arc<MapModel>,
    me: UserId,
    shared: Arc<Mutex<Shared>>,
    step: Duration,
    /// Every decoded picture.
    tap: crossbeam_channel::Receiver<Picture>,
}

impl Runner {
    /// The loop: sleeps until the session, a command, the call or a picture
    /// has something, or until the walk or the figures are due.
    fn run(
        &mut self,
        commands: crossbeam_channel::Receiver<Command>,
        ready: crossbeam_channel::Sender<Result<(), SessionEnd>>,
    ) {
        let mut ready = Some(ready);
        let mut walk: Option<Walk> = None;
        let mut next_stats = Instant::now();
        let session = self.net.events().clone();
        // A channel whose sender is gone is always ready: swap it for one that
        // never is, or the loop would spin (the tap without a call, say).
        let mut rtc = self
            .client
            .call
            .as_ref()
            .map_or_else(crossbeam_channel::never, |c| c.events().clone());
        let mut tap = if self.client.call.is_some() {
            self.tap.clone()
        } else {
            crossbeam_channel::never()
        };
        loop {
            let wake = walk
                .as_ref()
                .map_or(next_stats, |w| w.deadline().min(next_stats));
            crossbeam_channel::select! {
                recv(session) -> event => match event {
                    Ok(event) => {
                        if let Err(end) = self.on_event(event, &mut ready, walk.as_mut()) {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Err(end));
                            }
                            self.with_shared(|s| s.ended = Some(end));
                            return;
                        }
                    }
                    Err(_) => break,
                },
                recv(commands) -> command => match command {
                    Ok(Command::WalkTo(target, reply)) => {
                        walk = Some(Walk {
                            target,
                            reply,
                            pending: None,
                            next_step: Instant::now(),
                        });
                    }
                    Ok(Command::SetMic(mic)) => {
                        if let Some(call) = self.client.call.as_ref() {
                            call.set_mic(mic);
                        }
                    }
                    Ok(Command::SetSpeaker(speaker)) => {
                        if let Some(call) = self.client.call.as_ref() {
                            call.set_speaker(speaker);
                        }
                    }
                    Ok(Command::Say(channel, body)) => {
                        let msg = self.client.chat.compose(channel, &body);
                        self.net.send(msg);
                    }
                    Ok(Command::OpenDirect(user, reply)) => {
                        let opened = self.rt.block_on(self.api.open_direct(user));
                        if let Ok(c) = &opened {
                            self.client.chat.set_channels([c.clone()]);
                        }
                        let _ = reply.send(opened.map_err(BotError::from));
                    }
                    Ok(Command::Stop) | Err(_) => break,
                },
                recv(rtc) -> event => match event {
                    Ok(event) => self.with_shared(|s| s.collector.on_rtc(&event)),
                    Err(_) => rtc = crossbeam_channel::never(),
                },
                recv(tap) -> picture => match picture {
                    Ok(picture) => self.on_picture(picture),
                    Err(_) => tap = crossbeam_channel::never(),
                },
                default(wake.saturating_duration_since(Instant::now())) => {}
            }
            if let Some(w) = walk.take() {
                walk = self.advance(w);
            }
            if Instant::now() >= next_stats {
                next_stats = Instant::now() + STATS_EVERY;
                self.collect_call_stats();
            }
        }
        self.net.send(ClientMessage::Leave);
        self.collect_call_stats();
        // The call first (closes peer connections on the runtime), then the session.
        self.client.call = None;
        std::thread::sleep(Duration::from_millis(50));
        self.net.stop();
        let _ = &self.rt;
    }

    /// One event from the session, through the message pump.
    fn on_event(
        &mut self,
        event: NetEvent,
        ready: &mut Option<crossbeam_channel::Sender<Result<(), SessionEnd>>>,
        walk: Option<&mut Walk>,
    ) -> Result<(), SessionEnd> {
        let updates = self.client.absorb(event, &self.net);
        let position = self.position();
        let frame = self
            .client
            .call
            .as_ref()
            .and_then(|c| c.recording().map(|r| r.position()));
        let mut rejected = false;
        if let Ok(mut s) = self.shared.lock() {
            for update in &updates {
                match update {
                    Update::Space(change) => {
                        if *change == Change::Welcomed
                            && let Some(r) = ready.take()
                        {
                            let _ = r.send(Ok(()));
                        }
                        rejected |= matches!(change, Change::Corrected(_));
                        s.collector.on_change(change, &self.client.space);
                    }
                    Update::Connection(NetEvent::Unauthorized) => {
                        return Err(SessionEnd::Unauthorized);
                    }
                    Update::Connection(NetEvent::Replaced) => return Err(SessionEnd::Replaced),
                    Update::Cue(cue) => s.collector.on_cue(*cue, frame),
                    _ => {}
                }
            }
            s.position = position;
            s.collector.on_position(position);
        }
        if let Some(w) = walk
            && let Some((to, _)) = w.pending
            && (rejected || position == Some(to))
        {
            w.pending = None;
        }
        Ok(())
    }

    /// Counts a decoded picture; a PNG for `--video-out` is written outside
    /// the lock, so the handle's readers never wait on a file.
    fn on_picture(&self, (peer, frame, at): Picture) {
        let since = self.client.call.as_ref().and_then(|c| c.since(peer));
        let save = self
            .shared
            .lock()
            .ok()
            .and_then(|mut s| s.collector.on_picture(peer, &frame, at, since));
        let Some((path, name)) = save else { return };
        let saved =
            image::RgbImage::from_raw(frame.width as u32, frame.height as u32, frame.rgb.clone())
                .map(|img| img.save(&path));
        match saved {
            Some(Ok(())) => self.with_shared(|s| s.collector.on_saved(peer, name)),
            Some(Err(e)) => tracing::warn!("saving {}: {e}", path.display()),
            None => {}
        }
    }

    fn with_shared(&self, f: impl FnOnce(&mut Shared)) {
        if let Ok(mut s) = self.shared.lock() {
            f(&mut s);
        }
    }

    fn position(&self) -> Option<TilePos> {
        self.client
            .space
            .members
            .get(&self.me)
            .map(|m| TilePos::new(m.x, m.y))
    }

    /// One walking step if it is time; `None` when the walk is over.
    fn advance(&mut self, mut w: Walk) -> Option<Walk> {
        let here = self.position()?;
        if let Some((_, sent)) = w.pending {
            if sent.elapsed() < STEP_ANSWER {
                return Some(w);
            }
            w.pending = None;
        }
        if here == w.target {
            let frame = self
                .client
                .call
                .as_ref()
                .and_then(|c| c.recording().map(|r| r.position()));
            self.with_shared(|s| s.collector.on_arrival(here, frame));
            let _ = w.reply.send(Ok(here));
            return None;
        }
        if Instant::now() < w.next_step {
            return Some(w);
        }
        let Some(dir) = direction_towards(&self.map, here, w.target) else {
            let _ = w.reply.send(Err(BotError::NoWay {
                from: here,
                to: w.target,
            }));
            return None;
        };
        let to = step(here, dir);
        self.net.send(ClientMessage::Move {
            x: to.x,
            y: to.y,
            facing: dir,
        });
        self.with_shared(|s| s.collector.on_step());
        w.pending = Some((to, Instant::now()));
        w.next_step = Instant::now() + self.step;
        Some(w)
    }

    fn collect_call_stats(&mut self) {
        let Some(call) = self.client.call.as_ref() else {
            return;
        };
        if let Ok(mut s) = self.shared.lock() {
            s.collector.on_call_stats(call);
        }
    }
}
