//! The bot's report: what it did and saw, as `hallway-bot` prints it, and the
//! [`Collector`] that keeps it up to date from the call and the space.

use crate::call::Call;
use crate::core::space::{Change, SpaceState};
use crate::media::processing::ProcessingConfig;
use crate::media::video::{VideoFrame, read_stamp};
use crate::rtc::RtcEvent;
use hallway_shared::{TilePos, UserId};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    /// Every notification sound that was due (played if sounds are on).
    pub sounds: Vec<SoundReport>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SoundReport {
    /// `joined`, `left`, `message` or `room`.
    pub cue: String,
    pub at: f64,
    /// The output recording's frame then.
    pub output_frame: Option<u64>,
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
    /// E.g. that the microphone stopped and another took over.
    pub microphone_notice: Option<String>,
    pub output: Option<String>,
    pub output_error: Option<String>,
    /// E.g. that the speaker stopped and another took over.
    pub output_notice: Option<String>,
    /// Unix time in µs of the output recording's first sample.
    pub output_started_unix_us: Option<u64>,
    /// Unix time in µs of a fake microphone's first sample.
    pub microphone_started_unix_us: Option<u64>,
    pub frames_captured: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// The capture processing, when any runs.
    pub processing: Option<ProcessingReport>,
}

/// What the capture processing did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessingReport {
    /// The delay the echo canceller found, ms.
    pub echo_delay_ms: Option<i32>,
    /// The echo canceller's own ERLE estimate, dB.
    pub erle_db: Option<f64>,
    /// Half-second windows, oldest first (the last minute): microphone
    /// level before and after processing, dBFS.
    pub windows: Vec<(f32, f32)>,
    /// Mean time to process 10 ms of microphone, µs.
    pub micros_per_block: f64,
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
    /// The latest link's route: `host`, `srflx` (direct through NAT) or
    /// `relay` (through TURN), once ICE selected a pair.
    pub route: Option<&'static str>,
    /// ICE restarts on the latest link (each one a broken path recovered).
    pub ice_restarts: u32,
    /// The latest link's jitter buffer: frames played, recovered by FEC,
    /// concealed, late; its jitter estimate and target delay.
    pub jitter: Option<crate::media::jitter::JitterStats>,
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

/// Keeps a [`Report`] (and what the bot's handle answers) up to date.
pub(super) struct Collector {
    pub report: Report,
    /// The server's current peer list.
    pub peers: Vec<UserId>,
    /// Peers whose WebRTC connection is up.
    pub connected: Vec<UserId>,
    /// Stereo frames written to the output recording so far.
    pub output_frame: Option<u64>,
    /// Each peer's video on the current link.
    pub videos: Vec<(UserId, crate::media::video::remote::RemoteVideo)>,
    started: Instant,
    /// Peers whose first audio of the current link is already counted.
    audio_counted: BTreeMap<UserId, bool>,
    video_out: Option<PathBuf>,
    video_seen: BTreeMap<UserId, VideoSeen>,
}

impl Collector {
    pub fn new(
        user: UserId,
        space: hallway_shared::SpaceId,
        video_out: Option<PathBuf>,
    ) -> Collector {
        Collector {
            report: Report {
                user_id: user.0,
                space_id: space.0,
                started_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                ..Report::default()
            },
            peers: Vec::new(),
            connected: Vec::new(),
            output_frame: None,
            videos: Vec::new(),
            started: Instant::now(),
            audio_counted: BTreeMap::new(),
            video_out,
            video_seen: BTreeMap::new(),
        }
    }

    fn secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Accounts for what one server message changed.
    pub fn on_change(&mut self, change: &Change, space: &SpaceState) {
        let now = self.secs();
        match change {
            Change::Corrected(_) => self.report.steps_rejected += 1,
            Change::Peers => {
                let peers: Vec<UserId> = space.peers.iter().map(|p| p.user_id).collect();
                for p in peers.iter().filter(|p| !self.peers.contains(p)) {
                    self.report
                        .peers
                        .entry(p.0)
                        .or_default()
                        .linked_at
                        .push(now);
                    self.audio_counted.insert(*p, false);
                    let seen = self.video_seen.entry(*p).or_default();
                    seen.link_pending = true;
                    seen.link_first = None;
                    seen.link_frames = 0;
                }
                for p in self.peers.iter().filter(|p| !peers.contains(p)) {
                    self.report
                        .peers
                        .entry(p.0)
                        .or_default()
                        .unlinked_at
                        .push(now);
                    self.audio_counted.remove(p);
                }
                self.connected.retain(|c| peers.contains(c));
                self.peers = peers;
            }
            _ => {}
        }
    }

    pub fn on_cue(&mut self, cue: crate::core::cues::Cue, output_frame: Option<u64>) {
        let at = self.secs();
        self.report.sounds.push(SoundReport {
            cue: format!("{cue:?}").to_lowercase(),
            at,
            output_frame,
        });
    }

    pub fn on_position(&mut self, position: Option<TilePos>) {
        self.report.final_position = position.map(|p| (p.x, p.y));
    }

    pub fn on_step(&mut self) {
        self.report.steps_taken += 1;
    }

    pub fn on_arrival(&mut self, here: TilePos, output_frame: Option<u64>) {
        let at = self.secs();
        self.report.arrivals.push(Arrival {
            x: here.x,
            y: here.y,
            at,
            output_frame,
        });
    }

    pub fn on_rtc(&mut self, e: &RtcEvent) {
        let now = self.secs();
        match e {
            RtcEvent::Connected(p) => {
                self.report
                    .peers
                    .entry(p.0)
                    .or_default()
                    .connected_at
                    .push(now);
                if !self.connected.contains(p) {
                    self.connected.push(*p);
                }
            }
            RtcEvent::Closed(p) | RtcEvent::Failed(p) => {
                self.connected.retain(|c| c != p);
            }
        }
    }

    /// Counts a decoded picture and reads its stamp; `since` is when the
    /// server last linked us with `peer`. Returns where to save it, once a
    /// second per peer, when there is a `video_out`.
    pub fn on_picture(
        &mut self,
        peer: UserId,
        frame: &VideoFrame,
        at: Instant,
        since: Option<Instant>,
    ) -> Option<(PathBuf, String)> {
        let started = self.started;
        let pending = self.video_seen.get(&peer).is_none_or(|v| v.link_pending);
        let seen = self.video_seen.entry(peer).or_default();
        seen.frames += 1;
        seen.link_frames += 1;
        seen.link_first.get_or_insert(at);
        seen.link_last = Some(at);
        let age = f64::from(read_stamp(frame).age_ms()) - at.elapsed().as_secs_f64() * 1000.0;
        if seen.latencies.len() < 100_000 {
            seen.latencies.push(age);
        }
        if pending {
            seen.link_pending = false;
            if let Some(since) = since {
                let ms = at.saturating_duration_since(since).as_secs_f64() * 1000.0;
                self.report
                    .peers
                    .entry(peer.0)
                    .or_default()
                    .first_video_ms
                    .push(ms);
            }
        }
        let dir = self.video_out.as_ref()?;
        let seen = self.video_seen.get_mut(&peer)?;
        if seen
            .last_saved
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return None;
        }
        seen.last_saved = Some(Instant::now());
        let name = format!(
            "peer{}-{:06.1}s.png",
            peer.0,
            started.elapsed().as_secs_f64()
        );
        Some((dir.join(&name), name))
    }

    /// A picture of `peer` was saved as `name`.
    pub fn on_saved(&mut self, peer: UserId, name: String) {
        self.video_seen.entry(peer).or_default().files.push(name);
    }

    /// Takes the call's figures into the report.
    pub fn on_call_stats(&mut self, call: &Call) {
        let camera = call.camera_stats();
        let capture = call.capture_stats();
        let mixer = call.mixer_stats();
        let control = call.control();
        let recording = call.recording().cloned();
        self.output_frame = recording.as_ref().map(|r| r.position());
        self.report.camera = Some(CameraReport {
            device: camera.device,
            error: camera.error,
            sending: camera.tier.map(|t| (t.width, t.height, t.fps, t.bitrate)),
            frames_captured: camera.frames_captured,
            frames_sent: camera.frames_sent,
            bytes_sent: camera.bytes_sent,
            keyframes_sent: camera.keyframes_sent,
        });
        for (peer, seen) in &mut self.video_seen {
            let entry = self.report.peers.entry(peer.0).or_default();
            entry.video_frames = seen.frames;
            if let (Some(first), Some(last)) = (seen.link_first, seen.link_last) {
                let span = last.duration_since(first).as_secs_f64();
                if seen.link_frames > 1 && span > 0.0 {
                    entry.video_fps = (seen.link_frames - 1) as f64 / span;
                }
            }
            if let Some(p) = percentiles(&mut seen.latencies) {
                entry.pattern_latency_ms = Some(p);
            }
            entry.video_files.clone_from(&seen.files);
        }
        for (peer, link) in call.links() {
            let entry = self.report.peers.entry(peer.0).or_default();
            if let Some(route) = link.route {
                entry.route = Some(route.as_str());
            }
            entry.ice_restarts = link.ice_restarts;
        }
        self.videos = call.videos();
        for (peer, v) in &self.videos {
            self.report.peers.entry(peer.0).or_default().video_size =
                Some((v.frame.width, v.frame.height));
        }
        let unix_us = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64)
        };
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        self.report.voice = Some(VoiceReport {
            microphone_started_unix_us: capture.source_started.map(unix_us),
            microphone: capture.device,
            microphone_error: capture.error,
            microphone_notice: capture.notice,
            output: mixer.device.clone(),
            output_error: mixer.error.clone(),
            output_notice: mixer.notice.clone(),
            output_started_unix_us: recording.map(|r| unix_us(r.started)),
            frames_captured: control.frames.load(relaxed),
            packets_sent: control.packets.load(relaxed),
            bytes_sent: control.bytes.load(relaxed),
            processing: (control.processing() != ProcessingConfig::OFF).then(|| ProcessingReport {
                echo_delay_ms: capture.processing.echo_delay_ms,
                erle_db: capture.processing.erle_db,
                windows: capture.processing.windows.iter().copied().collect(),
                micros_per_block: capture.processing.micros_per_block,
            }),
        });
        for p in call.peers() {
            let Some(audio) = p.audio else { continue };
            let entry = self.report.peers.entry(p.user_id.0).or_default();
            entry.packets = entry.packets.max(audio.packets);
            entry.bytes = entry.bytes.max(audio.bytes);
            entry.mean_level = audio.mean_out;
            entry.jitter = Some(audio.jitter);
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

/// The median and 95th percentile (sorts `values`).
fn percentiles(values: &mut [f64]) -> Option<(f64, f64)> {
    values.sort_by(f64::total_cmp);
    let last = values.len().checked_sub(1)?;
    let at = |p: f64| values.get((last as f64 * p) as usize).copied();
    Some((at(0.5)?, at(0.95)?))
}

/// Pictures from the decoder tap: who, what, and when it was decoded.
pub(super) type Picture = (UserId, Arc<VideoFrame>, Instant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_nothing_and_of_some() {
        assert_eq!(percentiles(&mut []), None);
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentiles(&mut v), Some((50.0, 95.0)));
    }
}
