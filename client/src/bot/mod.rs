//! A headless Hallway client: logs in as a guest, joins a space, walks where
//! it is told at the desktop app's pace, and (optionally) talks, listens and
//! shows its camera through the real call pipeline with fake devices. `hallway-bot` is a thin
//! command line over it; the voice tests drive several in one process.

use crate::app::office::movement::{direction_towards, step};
use crate::core::api::Api;
use crate::core::net::{self, NetEvent, NetHandle};
use crate::core::state::{Change, SpaceState};
use crate::media::remote_video::RemoteVideo;
use crate::media::video::{VideoFrame, read_stamp};
use crate::voice::{Voice, VoiceOptions};
use hallway_shared::map::MapModel;
use hallway_shared::protocol::{ClientMessage, ServerMessage};
use hallway_shared::{SpaceId, TilePos, UserId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time per step, as the desktop app walks.
pub const STEP: Duration = Duration::from_millis(150);

#[derive(Clone, Debug)]
pub struct BotOptions {
    /// Server address, e.g. `127.0.0.1:8080`.
    pub server: String,
    pub name: String,
    /// Space id or name; the first listed if `None`.
    pub space: Option<String>,
    /// Voice with these devices, or no voice at all.
    pub voice: Option<VoiceOptions>,
    /// Ask to appear on this tile (the server may put us elsewhere).
    pub start_at: Option<TilePos>,
    /// Time per step ([`STEP`] walks like a person; tests on a server with a
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
            step: STEP,
            video_out: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("{0}")]
    Api(#[from] crate::core::api::ApiError),
    #[error("{0}")]
    Setup(String),
    #[error("no way from {from:?} to {to:?}")]
    NoWay { from: TilePos, to: TilePos },
    #[error("the bot stopped: {0}")]
    Stopped(String),
}

/// What a bot did, as `hallway-bot` prints it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub user_id: i64,
    pub space_id: i64,
    pub final_position: Option<(i32, i32)>,
    pub steps_taken: u32,
    pub steps_rejected: u32,
    /// Unix time in ms when the bot started; every `*_at` below is seconds after it.
    pub started_unix_ms: u64,
    /// Every waypoint reached: where, when, and the output recording's frame then.
    pub arrivals: Vec<Arrival>,
    pub voice: Option<VoiceReport>,
    pub camera: Option<CameraReport>,
    /// Every peer seen.
    pub peers: BTreeMap<i64, PeerReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Arrival {
    pub x: i32,
    pub y: i32,
    pub at: f64,
    pub output_frame: Option<u64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct VoiceReport {
    pub microphone: Option<String>,
    pub microphone_error: Option<String>,
    pub output: Option<String>,
    pub output_error: Option<String>,
    /// Unix time in µs of the output recording's first sample.
    pub output_started_unix_us: Option<u64>,
    /// Unix time in µs of a fake microphone's first sample.
    pub microphone_started_unix_us: Option<u64>,
    pub frames_captured: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CameraReport {
    pub device: Option<String>,
    pub error: Option<String>,
    /// What is being sent now: width, height, frames per second, bit/s.
    pub sending: Option<(usize, usize, u32, u32)>,
    pub frames_captured: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub keyframes_sent: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerReport {
    /// When the server linked and unlinked us.
    pub linked_at: Vec<f64>,
    pub unlinked_at: Vec<f64>,
    /// When the WebRTC connection reached "connected".
    pub connected_at: Vec<f64>,
    /// For each link, ms from the server's proximity list to the first
    /// audible sample of this peer in our output.
    pub first_audio_ms: Vec<f64>,
    pub packets: u64,
    pub bytes: u64,
    /// Mean RMS this peer contributed to our left and right output.
    pub mean_level: (f32, f32),
    /// Pictures decoded from this peer, over all links.
    pub video_frames: u64,
    /// Pictures per second on the latest link.
    pub video_fps: f64,
    pub video_size: Option<(usize, usize)>,
    /// For each link, ms from the server's proximity list to the first
    /// decoded picture.
    pub first_video_ms: Vec<f64>,
    /// Capture to decode, from the stamp drawn in the picture (meaningful
    /// only when the peer sends the test pattern): median and 95th percentile.
    pub pattern_latency_ms: Option<(f64, f64)>,
    /// PNGs written to `--video-out`.
    pub video_files: Vec<String>,
}

enum Command {
    WalkTo(
        TilePos,
        crossbeam_channel::Sender<Result<TilePos, BotError>>,
    ),
    Stop,
}

/// A bot running on its own thread.
pub struct Bot {
    pub user_id: UserId,
    pub space_id: SpaceId,
    pub map: Arc<MapModel>,
    commands: crossbeam_channel::Sender<Command>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    report: Report,
    position: Option<TilePos>,
    peers: Vec<UserId>,
    connected: Vec<UserId>,
    output_frame: Option<u64>,
    videos: Vec<(UserId, RemoteVideo)>,
    error: Option<String>,
}

impl Bot {
    /// Logs in, joins, starts voice if asked, and waits for the `welcome`.
    pub fn start(options: BotOptions) -> Result<Bot, BotError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BotError::Setup(e.to_string()))?;
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
        .ok_or_else(|| BotError::Setup(format!("no space {:?}", options.space)))?;
        let space_id = space.id;
        let map = Arc::new(rt.block_on(api.map(space_id))?);
        let net = net::spawn(rt.handle(), api.ws_url(), auth.token);
        let (tap_tx, tap) = crossbeam_channel::bounded(256);
        let voice = match options.voice {
            Some(mut vo) => {
                vo.video_tap = Some(tap_tx);
                let sender = net.sender();
                let out: crate::rtc::SignalOut = Arc::new(move |to, payload| {
                    sender.send(ClientMessage::Signal { to, payload });
                });
                Some(
                    Voice::start(rt.handle(), vo, out)
                        .map_err(|e| BotError::Setup(format!("voice: {e}")))?,
                )
            }
            None => None,
        };
        net.send(ClientMessage::Join {
            space_id,
            x: options.start_at.map(|p| p.x),
            y: options.start_at.map(|p| p.y),
        });
        let started = Instant::now();
        let shared = Arc::new(Mutex::new(Shared {
            report: Report {
                user_id: auth.user.id.0,
                space_id: space_id.0,
                started_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                ..Report::default()
            },
            ..Shared::default()
        }));
        let (commands, rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let mut runner = Runner {
            rt,
            net,
            voice,
            state: SpaceState::default(),
            map: map.clone(),
            me: auth.user.id,
            started,
            shared: shared.clone(),
            known_peers: Vec::new(),
            audio_counted: BTreeMap::new(),
            step: options.step,
            tap,
            video_out: options.video_out,
            video_seen: BTreeMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("bot {}", options.name))
            .spawn(move || runner.run(rx, ready_tx))
            .map_err(|e| BotError::Setup(e.to_string()))?;
        match ready_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(BotError::Setup(e)),
            Err(_) => return Err(BotError::Setup("could not join the space".into())),
        }
        Ok(Bot {
            user_id: auth.user.id,
            space_id,
            map,
            commands,
            shared,
            thread: Some(thread),
        })
    }

    /// Walks to `target` (shortest walkable path, one step per 150 ms);
    /// returns where the bot ended up.
    pub fn walk_to(&self, target: TilePos) -> Result<TilePos, BotError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands
            .send(Command::WalkTo(target, tx))
            .map_err(|_| BotError::Stopped(self.error()))?;
        rx.recv().map_err(|_| BotError::Stopped(self.error()))?
    }

    /// Walks through every waypoint in turn.
    pub fn walk(&self, route: &[TilePos]) -> Result<(), BotError> {
        for t in route {
            self.walk_to(*t)?;
        }
        Ok(())
    }

    fn error(&self) -> String {
        self.shared
            .lock()
            .ok()
            .and_then(|s| s.error.clone())
            .unwrap_or_else(|| "stopped".into())
    }

    pub fn position(&self) -> Option<TilePos> {
        self.shared.lock().ok().and_then(|s| s.position)
    }

    /// The server's current peer list.
    pub fn peers(&self) -> Vec<UserId> {
        self.shared
            .lock()
            .map(|s| s.peers.clone())
            .unwrap_or_default()
    }

    /// Peers whose WebRTC connection is up now.
    pub fn connected(&self) -> Vec<UserId> {
        self.shared
            .lock()
            .map(|s| s.connected.clone())
            .unwrap_or_default()
    }

    /// Stereo frames written to the output recording so far.
    pub fn output_frame(&self) -> Option<u64> {
        self.shared.lock().ok().and_then(|s| s.output_frame)
    }

    /// `peer`'s video on the current link (`None` once the link is gone).
    pub fn video(&self, peer: UserId) -> Option<RemoteVideo> {
        self.shared
            .lock()
            .ok()?
            .videos
            .iter()
            .find(|(id, _)| *id == peer)
            .map(|(_, v)| v.clone())
    }

    /// How many peers' video is on screen (current links only).
    pub fn videos_len(&self) -> usize {
        self.shared.lock().map_or(0, |s| s.videos.len())
    }

    pub fn report(&self) -> Report {
        self.shared
            .lock()
            .map(|s| s.report.clone())
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

    /// Leaves the space, stops voice and returns the final report.
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

struct Runner {
    rt: tokio::runtime::Runtime,
    net: NetHandle,
    voice: Option<Voice>,
    state: SpaceState,
    map: Arc<MapModel>,
    me: UserId,
    started: Instant,
    shared: Arc<Mutex<Shared>>,
    known_peers: Vec<UserId>,
    /// Peers whose first audio of the current link is already counted.
    audio_counted: BTreeMap<UserId, bool>,
    step: Duration,
    /// Every decoded picture.
    tap: crossbeam_channel::Receiver<(UserId, Arc<VideoFrame>, Instant)>,
    video_out: Option<PathBuf>,
    video_seen: BTreeMap<UserId, VideoSeen>,
}

/// What the bot saw of one peer's video.
#[derive(Default)]
struct VideoSeen {
    /// The first picture is not counted yet on the current link.
    link_pending: bool,
    frames: u64,
    link_first: Option<Instant>,
    link_last: Option<Instant>,
    link_frames: u64,
    latencies: Vec<f64>,
    last_saved: Option<Instant>,
    files: Vec<String>,
}

impl Runner {
    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn run(
        &mut self,
        commands: crossbeam_channel::Receiver<Command>,
        ready: crossbeam_channel::Sender<Result<(), String>>,
    ) {
        let mut ready = Some(ready);
        let mut walk: Option<Walk> = None;
        let mut last_stats = Instant::now();
        loop {
            while let Some(event) = self.net.recv_timeout(Duration::from_millis(5)) {
                match event {
                    NetEvent::Message(msg) => {
                        let rejected = matches!(*msg, ServerMessage::MoveRejected { .. });
                        if self.absorb(&msg)
                            && let Some(r) = ready.take()
                        {
                            let _ = r.send(Ok(()));
                        }
                        if let Some(w) = walk.as_mut()
                            && let Some((to, _)) = w.pending
                        {
                            let here = self.position();
                            if rejected || here == Some(to) {
                                w.pending = None;
                            }
                        }
                    }
                    NetEvent::Unauthorized | NetEvent::Replaced => {
                        let why = format!("{event:?}");
                        if let Some(r) = ready.take() {
                            let _ = r.send(Err(why.clone()));
                        }
                        if let Ok(mut s) = self.shared.lock() {
                            s.error = Some(why);
                        }
                        return;
                    }
                    NetEvent::Disconnected { .. } => {
                        if let Some(v) = self.voice.as_mut() {
                            v.hang_up();
                        }
                    }
                    _ => {}
                }
            }
            match commands.try_recv() {
                Ok(Command::WalkTo(target, reply)) => {
                    walk = Some(Walk {
                        target,
                        reply,
                        pending: None,
                        next_step: Instant::now(),
                    });
                }
                Ok(Command::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if let Some(w) = walk.take() {
                walk = self.advance(w);
            }
            let events: Vec<_> = self
                .voice
                .as_ref()
                .map(|v| std::iter::from_fn(|| v.try_event()).collect())
                .unwrap_or_default();
            for e in events {
                self.on_rtc(&e);
            }
            self.take_pictures();
            if last_stats.elapsed() >= Duration::from_millis(100) {
                last_stats = Instant::now();
                self.collect_voice_stats();
            }
        }
        self.net.send(ClientMessage::Leave);
        self.collect_voice_stats();
        // Voice first (closes peer connections on the runtime), then the session.
        self.voice = None;
        std::thread::sleep(Duration::from_millis(50));
        self.net.stop();
        let _ = &self.rt;
    }

    fn position(&self) -> Option<TilePos> {
        self.state
            .members
            .get(&self.me)
            .map(|m| TilePos::new(m.x, m.y))
    }

    /// One walking step if it is time; `None` when the walk is over.
    fn advance(&mut self, mut w: Walk) -> Option<Walk> {
        let here = self.position()?;
        if let Some((_, sent)) = w.pending {
            if sent.elapsed() < Duration::from_secs(3) {
                return Some(w);
            }
            w.pending = None;
        }
        if here == w.target {
            let at = self.secs();
            let frame = self
                .voice
                .as_ref()
                .and_then(|v| v.recording().map(|r| r.position()));
            if let Ok(mut s) = self.shared.lock() {
                s.report.arrivals.push(Arrival {
                    x: here.x,
                    y: here.y,
                    at,
                    output_frame: frame,
                });
            }
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
        if let Ok(mut s) = self.shared.lock() {
            s.report.steps_taken += 1;
        }
        w.pending = Some((to, Instant::now()));
        w.next_step = Instant::now() + self.step;
        Some(w)
    }

    /// Applies a server message; true on `welcome`.
    fn absorb(&mut self, msg: &ServerMessage) -> bool {
        let changes = self.state.apply(msg);
        if let Some(v) = self.voice.as_mut() {
            v.on_message(msg, &self.state, Some(&self.map));
        }
        let now = self.secs();
        let mut welcomed = false;
        let Ok(mut s) = self.shared.lock() else {
            return false;
        };
        if matches!(msg, ServerMessage::MoveRejected { .. }) {
            s.report.steps_rejected += 1;
        }
        for change in changes {
            match change {
                Change::Welcomed => welcomed = true,
                Change::Peers => {
                    let peers: Vec<UserId> = self.state.peers.iter().map(|p| p.user_id).collect();
                    for p in peers.iter().filter(|p| !self.known_peers.contains(p)) {
                        s.report.peers.entry(p.0).or_default().linked_at.push(now);
                        self.audio_counted.insert(*p, false);
                        let seen = self.video_seen.entry(*p).or_default();
                        seen.link_pending = true;
                        seen.link_first = None;
                        seen.link_frames = 0;
                    }
                    for p in self.known_peers.iter().filter(|p| !peers.contains(p)) {
                        s.report.peers.entry(p.0).or_default().unlinked_at.push(now);
                        self.audio_counted.remove(p);
                    }
                    s.connected.retain(|c| peers.contains(c));
                    s.peers.clone_from(&peers);
                    self.known_peers = peers;
                }
                _ => {}
            }
        }
        s.position = self.position();
        s.report.final_position = s.position.map(|p| (p.x, p.y));
        welcomed
    }

    fn on_rtc(&mut self, e: &crate::rtc::RtcEvent) {
        let now = self.secs();
        let Ok(mut s) = self.shared.lock() else {
            return;
        };
        match e {
            crate::rtc::RtcEvent::Connected(p) => {
                s.report
                    .peers
                    .entry(p.0)
                    .or_default()
                    .connected_at
                    .push(now);
                if !s.connected.contains(p) {
                    s.connected.push(*p);
                }
            }
            crate::rtc::RtcEvent::Closed(p) | crate::rtc::RtcEvent::Failed(p) => {
                s.connected.retain(|c| c != p);
            }
        }
    }

    /// Counts every decoded picture, reads its stamp, and saves one PNG per
    /// second per peer to `video_out`.
    fn take_pictures(&mut self) {
        while let Ok((peer, frame, at)) = self.tap.try_recv() {
            let pending = self.video_seen.get(&peer).is_none_or(|v| v.link_pending);
            let since = if pending {
                self.since_linked(peer)
            } else {
                None
            };
            let seen = self.video_seen.entry(peer).or_default();
            seen.frames += 1;
            seen.link_frames += 1;
            seen.link_first.get_or_insert(at);
            seen.link_last = Some(at);
            let age = f64::from(read_stamp(&frame).age_ms()) - at.elapsed().as_secs_f64() * 1000.0;
            if seen.latencies.len() < 100_000 {
                seen.latencies.push(age);
            }
            if pending {
                seen.link_pending = false;
                if let (Some(since), Ok(mut s)) = (since, self.shared.lock()) {
                    let ms = at.saturating_duration_since(since).as_secs_f64() * 1000.0;
                    s.report
                        .peers
                        .entry(peer.0)
                        .or_default()
                        .first_video_ms
                        .push(ms);
                }
            }
            let Some(dir) = &self.video_out else { continue };
            if seen
                .last_saved
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
            {
                continue;
            }
            seen.last_saved = Some(Instant::now());
            let name = format!(
                "peer{}-{:06.1}s.png",
                peer.0,
                self.started.elapsed().as_secs_f64()
            );
            let path = dir.join(&name);
            let saved = image::RgbImage::from_raw(
                frame.width as u32,
                frame.height as u32,
                frame.rgb.clone(),
            )
            .map(|img| img.save(&path));
            match saved {
                Some(Ok(())) => seen.files.push(name),
                Some(Err(e)) => tracing::warn!("saving {}: {e}", path.display()),
                None => {}
            }
        }
    }

    /// When the server last linked us with `peer`.
    fn since_linked(&self, peer: UserId) -> Option<Instant> {
        self.voice
            .as_ref()?
            .peers()
            .into_iter()
            .find(|p| p.user_id == peer)
            .map(|p| p.since)
    }

    fn collect_voice_stats(&mut self) {
        let Some(v) = self.voice.as_ref() else { return };
        let camera = v.camera_stats();
        let videos = v.videos();
        let capture = v.capture_stats();
        let mixer = v.mixer_stats();
        let control = v.control();
        let peers = v.peers();
        let recording = v.recording().cloned();
        let Ok(mut s) = self.shared.lock() else {
            return;
        };
        s.output_frame = recording.as_ref().map(|r| r.position());
        s.report.camera = Some(CameraReport {
            device: camera.device,
            error: camera.error,
            sending: camera.tier.map(|t| (t.width, t.height, t.fps, t.bitrate)),
            frames_captured: camera.frames_captured,
            frames_sent: camera.frames_sent,
            bytes_sent: camera.bytes_sent,
            keyframes_sent: camera.keyframes_sent,
        });
        for (peer, seen) in &mut self.video_seen {
            let entry = s.report.peers.entry(peer.0).or_default();
            entry.video_frames = seen.frames;
            if let (Some(first), Some(last)) = (seen.link_first, seen.link_last) {
                let span = last.duration_since(first).as_secs_f64();
                if seen.link_frames > 1 && span > 0.0 {
                    entry.video_fps = (seen.link_frames - 1) as f64 / span;
                }
            }
            if !seen.latencies.is_empty() {
                seen.latencies.sort_by(f64::total_cmp);
                let at = |p: f64| seen.latencies[((seen.latencies.len() - 1) as f64 * p) as usize];
                entry.pattern_latency_ms = Some((at(0.5), at(0.95)));
            }
            entry.video_files.clone_from(&seen.files);
        }
        for (peer, v) in &videos {
            s.report.peers.entry(peer.0).or_default().video_size =
                Some((v.frame.width, v.frame.height));
        }
        s.videos = videos;
        let unix_us = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
        };
        s.report.voice = Some(VoiceReport {
            microphone_started_unix_us: capture.source_started.map(unix_us),
            microphone: capture.device,
            microphone_error: capture.error,
            output: mixer.device.clone(),
            output_error: mixer.error.clone(),
            output_started_unix_us: recording.map(|r| unix_us(r.started)),
            frames_captured: control.frames.load(std::sync::atomic::Ordering::Relaxed),
            packets_sent: control.packets.load(std::sync::atomic::Ordering::Relaxed),
            bytes_sent: control.bytes.load(std::sync::atomic::Ordering::Relaxed),
        });
        for p in peers {
            let Some(audio) = p.audio else { continue };
            let entry = s.report.peers.entry(p.user_id.0).or_default();
            entry.packets = entry.packets.max(audio.packets);
            entry.bytes = entry.bytes.max(audio.bytes);
            entry.mean_level = audio.mean_out;
            if let (Some(first), Some(false)) =
                (audio.first_audible, self.audio_counted.get(&p.user_id))
                && first >= p.since
            {
                entry
                    .first_audio_ms
                    .push(first.duration_since(p.since).as_secs_f64() * 1000.0);
                self.audio_counted.insert(p.user_id, true);
            }
        }
    }
}
