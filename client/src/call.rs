//! The proximity call, Bevy-free: voice (the capture thread, the mixer) and
//! video (the camera thread, the decoders) wired to the peer manager and
//! driven by the session. Feed it every server
//! message (after applying it to the [`SpaceState`]); it opens and closes
//! peer connections from `proximity`, relays `signal`s, and keeps each
//! peer's gain and pan in step with where people stand, using the rules in
//! `hallway_shared::volume`.

use crate::core::cues::Cue;
use crate::core::space::SpaceState;
use crate::media::capture::{Capture, CaptureControl, CaptureLinks, CaptureStats, EncodedFrame};
use crate::media::device::{MicSpec, SpeakerSpec};
use crate::media::mixer::{Mixer, MixerControl, MixerLinks, MixerStats};
use crate::media::processing::{ProcessingConfig, echo_reference};
use crate::media::room::RoomSpec;
use crate::media::sounds::SoundBank;
use crate::media::video::VideoFrame;
use crate::media::video::camera::{Camera, CameraSpec, CameraStats};
use crate::media::video::remote::{FrameTap, RemoteVideo, RemoteVideos};
use crate::rtc::{LinkInfo, PeerManager, RtcOptions, SignalOut, VideoLinks};
use hallway_shared::map::MapModel;
use hallway_shared::protocol::ServerMessage;
use hallway_shared::proximity::Spot;
use hallway_shared::volume::{peer_gain, stereo_pan};
use hallway_shared::{TilePos, UserId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct CallOptions {
    pub mic: MicSpec,
    pub speaker: SpeakerSpec,
    /// Echo cancellation, noise suppression, automatic gain.
    pub processing: ProcessingConfig,
    pub rtc: RtcOptions,
    pub camera: CameraSpec,
    /// The camera switch at start (off until the user turns it on).
    pub camera_on: bool,
    /// Every decoded picture also goes here (tests, benchmarks).
    pub video_tap: Option<FrameTap>,
    /// A fake room: the microphone also hears the speaker (tests, the bot).
    pub room: Option<RoomSpec>,
    /// What takes over when the microphone stops mid-call (`None`: the
    /// system's default).
    pub fallback_mic: Option<MicSpec>,
    /// What takes over when the speaker stops mid-call (`None`: the
    /// system's default).
    pub fallback_speaker: Option<SpeakerSpec>,
    /// Notification sounds ([`crate::core::cues`]).
    pub sounds: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            mic: MicSpec::Default,
            speaker: SpeakerSpec::Default,
            processing: ProcessingConfig::APP,
            rtc: RtcOptions::default(),
            camera: CameraSpec::Default,
            camera_on: false,
            video_tap: None,
            room: None,
            fallback_mic: None,
            fallback_speaker: None,
            sounds: true,
        }
    }
}

impl CallOptions {
    /// Fake (or no) devices, loopback candidates only, no processing (noise
    /// suppression and automatic gain would change test tones) and no
    /// sounds; the camera is on unless it is `None`. What bots in tests and
    /// benchmarks run with.
    pub fn fakes(mic: MicSpec, speaker: SpeakerSpec, camera: CameraSpec) -> CallOptions {
        CallOptions {
            mic,
            speaker,
            processing: ProcessingConfig::OFF,
            rtc: RtcOptions {
                loopback_only: true,
                ..RtcOptions::default()
            },
            camera_on: camera != CameraSpec::None,
            camera,
            video_tap: None,
            room: None,
            fallback_mic: None,
            fallback_speaker: None,
            sounds: false,
        }
    }
}

/// One peer as voice sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct CallPeer {
    pub user_id: UserId,
    pub link: Option<LinkInfo>,
    /// When the server put this peer in our list.
    pub since: Instant,
    pub audio: Option<crate::media::PeerAudioStats>,
}

pub struct Call {
    capture: Capture,
    mixer: Mixer,
    camera: Camera,
    videos: RemoteVideos,
    rtc: PeerManager,
    since: HashMap<UserId, Instant>,
    volumes: HashMap<UserId, f32>,
    deafened: bool,
    /// The decoded sounds; `None` if they are off (or failed to decode).
    sounds: Option<SoundBank>,
}

impl Call {
    /// Starts the media threads and the peer manager on `rt`; signals go out
    /// through `signal_out`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        options: CallOptions,
        signal_out: SignalOut,
    ) -> Result<Call, webrtc::Error> {
        let (uplink_tx, uplink_rx) = tokio::sync::mpsc::channel::<EncodedFrame>(64);
        let (room_speaker, room_mic) = options.room.map(RoomSpec::build).unzip();
        let (echo, reference) = echo_reference();
        let capture = Capture::start(
            options.mic,
            options.processing,
            uplink_tx,
            CaptureLinks {
                reference: Some(reference),
                room: room_mic,
                fallback: options.fallback_mic,
            },
        );
        let mixer = Mixer::start(
            options.speaker,
            MixerLinks {
                echo: Some(echo),
                room: room_speaker,
                fallback: options.fallback_speaker,
            },
        );
        let (video_tx, video_rx) = tokio::sync::mpsc::channel(8);
        let camera = Camera::start(options.camera, options.camera_on, video_tx);
        let videos = RemoteVideos::start(options.video_tap);
        let video = VideoLinks {
            uplink: video_rx,
            camera: camera.control.clone(),
            downlink: videos.sender(),
        };
        let rtc = PeerManager::start(
            rt,
            options.rtc,
            signal_out,
            uplink_rx,
            mixer.sender(),
            video,
        )?;
        let mut call = Call {
            capture,
            mixer,
            camera,
            videos,
            rtc,
            since: HashMap::new(),
            volumes: HashMap::new(),
            deafened: false,
            sounds: None,
        };
        call.set_sounds(options.sounds);
        Ok(call)
    }

    /// Turns the notification sounds on or off.
    pub fn set_sounds(&mut self, on: bool) {
        if !on {
            self.sounds = None;
        } else if self.sounds.is_none() {
            self.sounds = SoundBank::load()
                .inspect_err(|e| tracing::warn!("no sounds: {e}"))
                .ok();
        }
    }

    pub fn sounds(&self) -> bool {
        self.sounds.is_some()
    }

    /// Plays the sound for `cue` (if sounds are on) through the mixer.
    pub fn play(&self, cue: Cue) {
        let Some(bank) = &self.sounds else { return };
        let sound = match cue {
            Cue::Joined => &bank.joined,
            Cue::Left => &bank.left,
            Cue::Message => &bank.message,
            Cue::Room => &bank.room,
        };
        self.mixer.control(MixerControl::Play(sound.clone()));
    }

    /// Reacts to a server message already applied to `state`.
    pub fn on_message(&mut self, msg: &ServerMessage, state: &SpaceState, map: Option<&MapModel>) {
        match msg {
            ServerMessage::Welcome { ice_servers, .. } => {
                self.rtc.set_ice_servers(ice_servers.clone());
                self.rtc.signaling_resumed();
                // Another space clears the list and so every link; the same
                // space again keeps them (protocol 6.3 step 5).
                self.since.retain(|id, _| state.is_peer(*id));
                self.rtc.set_peers(state.peers.clone());
                self.update_spatial(state, map);
            }
            ServerMessage::Proximity { peers } => {
                let now = Instant::now();
                self.since
                    .retain(|id, _| peers.iter().any(|p| p.user_id == *id));
                for p in peers {
                    self.since.entry(p.user_id).or_insert(now);
                }
                self.rtc.set_peers(peers.clone());
                self.update_spatial(state, map);
            }
            ServerMessage::IceServers { ice_servers } => {
                self.rtc.set_ice_servers(ice_servers.clone());
            }
            ServerMessage::Signal { from, payload } => self.rtc.signal(*from, payload.clone()),
            ServerMessage::Presence { .. } | ServerMessage::MoveRejected { .. } => {
                self.update_spatial(state, map);
            }
            _ => {}
        }
    }

    /// Recomputes every peer's gain and pan from where everyone stands.
    pub fn update_spatial(&self, state: &SpaceState, map: Option<&MapModel>) {
        let Some(me) = state.my_member() else { return };
        let cfg = state.rules.map(|r| r.proximity).unwrap_or_default();
        let spot = |x: i32, y: i32| {
            let pos = TilePos::new(x, y);
            Spot {
                pos,
                zone: map.and_then(|m| m.zone_at(pos)),
            }
        };
        let my_spot = spot(me.x, me.y);
        for peer in &state.peers {
            let Some(m) = state.members.get(&peer.user_id) else {
                continue;
            };
            let their = spot(m.x, m.y);
            let gain = peer_gain(&cfg, my_spot, their);
            // In i64: positions come from the server and may be anything.
            let dx = (i64::from(m.x) - i64::from(me.x)) as f32;
            let dy = (i64::from(m.y) - i64::from(me.y)) as f32;
            let pan = stereo_pan(dx, dy);
            self.mixer.control(MixerControl::Spatial {
                peer: peer.user_id,
                gain,
                pan,
            });
        }
    }

    pub fn control(&self) -> &Arc<CaptureControl> {
        &self.capture.control
    }

    pub fn set_muted(&self, muted: bool) {
        self.capture.control.muted.store(muted, Ordering::Relaxed);
    }

    pub fn muted(&self) -> bool {
        self.capture.control.muted.load(Ordering::Relaxed)
    }

    /// Deafened: hear nobody and send nothing (as in Mumble).
    pub fn set_deafened(&mut self, deafened: bool) {
        self.deafened = deafened;
        self.mixer.control(MixerControl::Deafen(deafened));
        self.set_muted(deafened);
    }

    pub fn deafened(&self) -> bool {
        self.deafened
    }

    pub fn set_push_to_talk(&self, on: bool) {
        self.capture
            .control
            .push_to_talk
            .store(on, Ordering::Relaxed);
    }

    pub fn set_talk_key(&self, down: bool) {
        self.capture.control.ptt_down.store(down, Ordering::Relaxed);
    }

    /// Echo cancellation, noise suppression and automatic gain, from the
    /// next frame on.
    pub fn set_processing(&self, config: ProcessingConfig) {
        self.capture.control.set_processing(config);
    }

    pub fn set_volume(&mut self, peer: UserId, volume: f32) {
        self.volumes.insert(peer, volume);
        self.mixer.control(MixerControl::Volume { peer, volume });
    }

    pub fn volume(&self, peer: UserId) -> f32 {
        self.volumes.get(&peer).copied().unwrap_or(1.0)
    }

    pub fn set_mic(&self, mic: MicSpec) {
        self.capture.set_mic(mic);
    }

    pub fn set_speaker(&self, speaker: SpeakerSpec) {
        self.mixer.control(MixerControl::SetSpeaker(speaker));
    }

    /// Am I speaking (voice detected and transmitting)?
    pub fn speaking(&self) -> bool {
        self.capture.control.speaking.load(Ordering::Relaxed)
    }

    pub fn capture_stats(&self) -> CaptureStats {
        self.capture.stats()
    }

    pub fn mixer_stats(&self) -> MixerStats {
        self.mixer.stats()
    }

    /// Is `peer` speaking (their audio is above the voice threshold)?
    pub fn peer_speaking(&self, peer: UserId) -> bool {
        self.mixer.peer_speaking(peer)
    }

    /// Why nothing can be heard, if so (no speaker, a failed device).
    pub fn output_error(&self) -> Option<String> {
        self.mixer.error()
    }

    pub fn set_camera_on(&self, on: bool) {
        self.camera.set_on(on);
    }

    pub fn camera_on(&self) -> bool {
        self.camera.control.on.load(Ordering::Relaxed)
    }

    pub fn set_camera(&self, camera: CameraSpec) {
        self.camera.set_camera(camera);
    }

    pub fn camera_stats(&self) -> CameraStats {
        self.camera.stats()
    }

    /// My own picture as the peers see it, with a sequence number that
    /// changes with each new one.
    pub fn preview(&self) -> Option<(u64, Arc<VideoFrame>)> {
        self.camera.control.preview()
    }

    /// `peer`'s video on the current link, if they sent any.
    pub fn video(&self, peer: UserId) -> Option<RemoteVideo> {
        self.videos.get(peer)
    }

    /// Every peer with video on the current link.
    pub fn videos(&self) -> Vec<(UserId, RemoteVideo)> {
        self.videos.all()
    }

    pub fn recording(&self) -> Option<&crate::media::device::RecordingClock> {
        self.mixer.recording.as_ref()
    }

    /// Everyone in the current peer list with their link and audio state.
    pub fn peers(&self) -> Vec<CallPeer> {
        let links = self.rtc.links();
        let mut audio = self.mixer.stats().peers;
        let mut out: Vec<CallPeer> = self
            .since
            .iter()
            .map(|(id, since)| CallPeer {
                user_id: *id,
                link: links.get(id).cloned(),
                since: *since,
                audio: audio.remove(id),
            })
            .collect();
        out.sort_by_key(|p| p.user_id);
        out
    }

    /// When the server last put `peer` in our list.
    pub fn since(&self, peer: UserId) -> Option<Instant> {
        self.since.get(&peer).copied()
    }

    /// See [`PeerManager::set_relay_only`].
    pub fn set_relay_only(&self, on: bool) {
        self.rtc.set_relay_only(on);
    }

    pub fn links(&self) -> HashMap<UserId, LinkInfo> {
        self.rtc.links()
    }

    pub fn try_event(&self) -> Option<crate::rtc::RtcEvent> {
        self.rtc.try_event()
    }

    /// The peer manager's events, to wait on (see [`Call::try_event`]).
    pub fn events(&self) -> &crossbeam_channel::Receiver<crate::rtc::RtcEvent> {
        self.rtc.events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::device::{MicSpec, SpeakerSpec};

    /// A call that ends leaves nothing running on the runtime: the peer
    /// manager and both uplinks end with it.
    #[test]
    fn a_dropped_call_leaves_no_task_behind() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let options =
            CallOptions::fakes(MicSpec::Tone(440.0), SpeakerSpec::None, CameraSpec::Pattern);
        let call = Call::start(rt.handle(), options, SignalOut::nowhere()).expect("call");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            rt.metrics().num_alive_tasks() >= 3,
            "manager and two uplinks"
        );
        drop(call);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        while rt.metrics().num_alive_tasks() > 0 && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(rt.metrics().num_alive_tasks(), 0);
    }
}
