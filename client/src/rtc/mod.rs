//! The peer manager: one webrtc-rs `RTCPeerConnection` per proximity peer,
//! driven by the server's `proximity` lists and the `signal` payloads of
//! `docs/protocol.md` §6. The side the server names offers; ICE candidates
//! trickle; a peer that leaves the list is closed and freed; a connection that
//! fails is started over with a new session number (the offerer re-offers;
//! the answerer asks it to with `restart`). All connections share one local
//! Opus track and one H.264 track, so the microphone and the camera are
//! encoded once whoever listens; each remote audio track's packets go
//! straight to the mixer, each video track's access units to the decoder.
//!
//! It runs as one task on the network runtime and owns every connection;
//! webrtc-rs callbacks only post events back to it.

use crate::media::camera::CameraControl;
use crate::media::capture::EncodedFrame;
use crate::media::mixer::{MixerCommand, MixerSender};
use crate::media::remote_video::{VideoInput, VideoSender};
use crate::media::video::EncodedVideo;
use hallway_shared::UserId;
use hallway_shared::protocol::{IceServer, Peer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::api::API;
use webrtc::api::interceptor_registry::configure_rtcp_reports;
use webrtc::api::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MediaEngine};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::ice_transport::ice_candidate::{RTCIceCandidate, RTCIceCandidateInit};
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::interceptor::registry::Registry;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use webrtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use webrtc::rtp::codecs::h264::H264Packet;
use webrtc::rtp::packetizer::Depacketizer;
use webrtc::rtp_transceiver::RTCPFeedback;
use webrtc::rtp_transceiver::rtp_codec::{
    RTCRtpCodecCapability, RTCRtpCodecParameters, RTPCodecType,
};
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::TrackLocalWriter;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
use webrtc::track::track_remote::TrackRemote;

/// Dynamic payload type we offer for Opus (answers may choose another).
const OPUS_PT: u8 = 111;
/// The SDP format parameters of §6.4.
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1;usedtx=1;maxaveragebitrate=32000";
/// Dynamic payload type we offer for H.264 (webrtc-rs's own for this fmtp).
const H264_PT: u8 = 125;
/// Constrained Baseline, non-interleaved packetization (§6.4).
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// A receiver asks for a keyframe at most this often.
const PLI_GAP: Duration = Duration::from_millis(500);
/// An access unit larger than this is garbage (a 640×480 keyframe is ~30 KB).
const MAX_ACCESS_UNIT: usize = 2 << 20;
/// How long an offer or answer waits for local candidates to be gathered,
/// so that the SDP carries them; later ones trickle.
const GATHER_WAIT: Duration = Duration::from_millis(250);
/// A connection not connected after this long is started over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A signal payload (protocol.md §6.2). `session` is Hallway's connection
/// number: a new one replaces the old connection with that peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalPayload {
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Answer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Candidate {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    EndOfCandidates {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    Bye {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
    /// From the answerer: "this connection failed, offer a new one".
    Restart {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<u64>,
    },
}

/// How the peer manager gathers candidates.
#[derive(Clone, Debug, Default)]
pub struct RtcOptions {
    /// Only loopback candidates (tests and same-machine demos).
    pub loopback_only: bool,
}

/// The state of one peer link, as the UI and reports see it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkInfo {
    pub session: u64,
    pub offerer: bool,
    pub state: String,
    pub linked_at: Instant,
    pub connected_at: Option<Instant>,
    pub attempts: u32,
}

/// What the peer manager reports.
#[derive(Clone, Debug, PartialEq)]
pub enum RtcEvent {
    Connected(UserId),
    /// The link ended (peer left the list, or the space was left).
    Closed(UserId),
    /// A connection failed; it will be retried while the peer is in the list.
    Failed(UserId),
}

enum Input {
    Peers(Vec<Peer>),
    Signal(UserId, serde_json::Value),
    IceServers(Vec<IceServer>),
    CloseAll,
    Local(UserId, u64, Option<RTCIceCandidate>),
    State(UserId, u64, RTCPeerConnectionState),
}

/// Sends a signal payload to a user through the WebSocket session.
pub type SignalOut = Arc<dyn Fn(UserId, serde_json::Value) + Send + Sync>;

/// The video side of the peer manager: encoded pictures to send, the
/// camera's controls (peer count, keyframe requests), and where received
/// access units go.
pub struct VideoLinks {
    pub uplink: crossbeam_channel::Receiver<EncodedVideo>,
    pub camera: Arc<CameraControl>,
    pub downlink: VideoSender,
}

/// The handle to the peer manager task.
pub struct PeerManager {
    tx: mpsc::UnboundedSender<Input>,
    events: crossbeam_channel::Receiver<RtcEvent>,
    links: Arc<Mutex<HashMap<UserId, LinkInfo>>>,
}

impl PeerManager {
    /// Starts the manager on `rt`. Encoded microphone frames from `uplink` go
    /// to every connected peer; remote audio goes to `mixer`; video both
    /// ways through `video`.
    pub fn start(
        rt: &tokio::runtime::Handle,
        options: RtcOptions,
        signal_out: SignalOut,
        uplink: crossbeam_channel::Receiver<EncodedFrame>,
        mixer: MixerSender,
        video: VideoLinks,
    ) -> Result<PeerManager, webrtc::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let links = Arc::new(Mutex::new(HashMap::new()));
        let api = Arc::new(build_api(&options)?);
        let track = Arc::new(TrackLocalStaticRTP::new(
            opus_capability(),
            "audio".to_owned(),
            "hallway".to_owned(),
        ));
        spawn_uplink(rt.clone(), uplink, track.clone());
        let video_track = Arc::new(TrackLocalStaticSample::new(
            h264_capability(),
            "video".to_owned(),
            "hallway".to_owned(),
        ));
        spawn_video_uplink(rt.clone(), video.uplink, video_track.clone());
        let manager = Manager {
            api,
            track,
            video_track,
            camera: video.camera,
            video_out: video.downlink,
            ice_servers: Vec::new(),
            links: HashMap::new(),
            wanted: HashMap::new(),
            tx: tx.clone(),
            signal_out,
            mixer,
            events: ev_tx,
            shared: links.clone(),
        };
        rt.spawn(manager.run(rx));
        Ok(PeerManager { tx, events, links })
    }

    /// The server's current peer list.
    pub fn set_peers(&self, peers: Vec<Peer>) {
        let _ = self.tx.send(Input::Peers(peers));
    }

    pub fn signal(&self, from: UserId, payload: serde_json::Value) {
        let _ = self.tx.send(Input::Signal(from, payload));
    }

    pub fn set_ice_servers(&self, servers: Vec<IceServer>) {
        let _ = self.tx.send(Input::IceServers(servers));
    }

    pub fn close_all(&self) {
        let _ = self.tx.send(Input::CloseAll);
    }

    pub fn try_event(&self) -> Option<RtcEvent> {
        self.events.try_recv().ok()
    }

    pub fn links(&self) -> HashMap<UserId, LinkInfo> {
        self.links.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for PeerManager {
    fn drop(&mut self) {
        let _ = self.tx.send(Input::CloseAll);
    }
}

fn opus_capability() -> RTCRtpCodecCapability {
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn h264_capability() -> RTCRtpCodecCapability {
    let feedback = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecCapability {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: vec![feedback("nack", "pli"), feedback("ccm", "fir")],
    }
}

fn build_api(options: &RtcOptions) -> Result<API, webrtc::Error> {
    let mut media = MediaEngine::default();
    media.register_codec(
        RTCRtpCodecParameters {
            capability: opus_capability(),
            payload_type: OPUS_PT,
            ..Default::default()
        },
        RTPCodecType::Audio,
    )?;
    media.register_codec(
        RTCRtpCodecParameters {
            capability: h264_capability(),
            payload_type: H264_PT,
            ..Default::default()
        },
        RTPCodecType::Video,
    )?;
    let registry = configure_rtcp_reports(Registry::new());
    let mut settings = SettingEngine::default();
    // Same-machine peers (and tests) need loopback candidates; mDNS names
    // would need a resolver on the LAN; IPv4 UDP is what every peer has.
    settings.set_include_loopback_candidate(true);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    settings.set_network_types(vec![NetworkType::Udp4]);
    let loopback_only = options.loopback_only;
    settings.set_ip_filter(Box::new(move |ip| {
        ip.is_ipv4() && (!loopback_only || ip.is_loopback())
    }));
    // Notice a vanished peer within seconds, not half a minute.
    settings.set_ice_timeouts(
        Some(Duration::from_secs(3)),
        Some(Duration::from_secs(8)),
        Some(Duration::from_secs(1)),
    );
    Ok(webrtc::api::APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build())
}

/// Sets `desc` as the local description and returns its SDP once the local
/// candidates are in it (or after [`GATHER_WAIT`]). Candidates in the SDP let
/// both ICE agents start checking at once; with trickle alone the first
/// checks often found no pairs and connecting took a second (measured).
async fn describe(
    pc: &RTCPeerConnection,
    desc: RTCSessionDescription,
) -> Result<String, webrtc::Error> {
    let mut gathered = pc.gathering_complete_promise().await;
    let fallback = desc.sdp.clone();
    pc.set_local_description(desc).await?;
    let _ = tokio::time::timeout(GATHER_WAIT, gathered.recv()).await;
    Ok(pc.local_description().await.map_or(fallback, |d| d.sdp))
}

/// Moves encoded frames from the capture thread onto the shared track.
fn spawn_uplink(
    rt: tokio::runtime::Handle,
    uplink: crossbeam_channel::Receiver<EncodedFrame>,
    track: Arc<TrackLocalStaticRTP>,
) {
    let _ = std::thread::Builder::new()
        .name("hallway-uplink".into())
        .spawn(move || {
            let mut seq: u16 = rand::random();
            while let Ok(frame) = uplink.recv() {
                let packet = webrtc::rtp::packet::Packet {
                    header: webrtc::rtp::header::Header {
                        version: 2,
                        marker: frame.marker,
                        payload_type: OPUS_PT,
                        sequence_number: seq,
                        timestamp: frame.timestamp,
                        ..Default::default()
                    },
                    payload: frame.payload,
                };
                seq = seq.wrapping_add(1);
                // Errors name connections that are closing; the rest still got it.
                let _ = rt.block_on(track.write_rtp(&packet));
            }
        });
}

/// Moves encoded pictures from the camera thread onto the shared video
/// track; it packetizes them (FU-A / STAP-A, RFC 6184) for every peer. An
/// empty one (skipped by the rate control) sends nothing but advances the
/// RTP timestamp, which keeps the clock in step with capture.
fn spawn_video_uplink(
    rt: tokio::runtime::Handle,
    uplink: crossbeam_channel::Receiver<EncodedVideo>,
    track: Arc<TrackLocalStaticSample>,
) {
    let _ = std::thread::Builder::new()
        .name("hallway-video-out".into())
        .spawn(move || {
            while let Ok(au) = uplink.recv() {
                let sample = webrtc::media::Sample {
                    data: bytes::Bytes::from(au.data),
                    duration: au.duration,
                    ..Default::default()
                };
                // Errors name connections that are closing; the rest still got it.
                let _ = rt.block_on(track.write_sample(&sample));
            }
        });
}

/// What one RTP packet completed.
#[derive(Debug, PartialEq)]
enum Assembled {
    /// The access unit goes on.
    Pending,
    /// A whole access unit (Annex-B).
    Unit(Vec<u8>),
    /// An access unit ended incomplete (a packet was lost, reordered or
    /// unreadable) and was dropped: the decoder needs a keyframe.
    Damaged,
}

/// Rebuilds H.264 access units from RTP packets: a unit is the packets up to
/// the one with the marker bit, all with one timestamp. No reordering (the
/// packets come over one loopback or LAN path; a late packet is a loss).
#[derive(Default)]
struct UnitAssembler {
    depacketizer: H264Packet,
    unit: Vec<u8>,
    damaged: bool,
    last: Option<(u16, u32)>,
    /// Payload bytes taken since the last complete unit.
    pending: usize,
}

/// Whether a packet, if it is a STAP-A (RFC 6184 5.7.1), holds whole
/// length-prefixed NAL units and nothing else.
fn stap_a_is_sound(payload: &[u8]) -> bool {
    const STAP_A: u8 = 24;
    if payload.first().is_none_or(|b| b & 0x1f != STAP_A) {
        return true;
    }
    let mut at = 1;
    while at < payload.len() {
        let Some(len) = payload.get(at..at + 2) else {
            return false;
        };
        at += 2 + (usize::from(len[0]) << 8 | usize::from(len[1]));
    }
    at == payload.len()
}

impl UnitAssembler {
    fn push(&mut self, packet: &webrtc::rtp::packet::Packet) -> Assembled {
        let (seq, ts) = (packet.header.sequence_number, packet.header.timestamp);
        let mut lost_marker = false;
        if let Some((last_seq, last_ts)) = self.last {
            if seq != last_seq.wrapping_add(1) {
                // A lost (or reordered) packet: this unit is incomplete.
                self.damaged = true;
                self.depacketizer = H264Packet::default();
            }
            if ts != last_ts && (!self.unit.is_empty() || self.damaged) {
                // The previous unit's marker packet never came.
                lost_marker = true;
                self.unit.clear();
            }
        }
        self.last = Some((seq, ts));
        self.pending += packet.payload.len();
        if !stap_a_is_sound(&packet.payload) {
            // webrtc-rs' depacketizer would index past a truncated STAP-A.
            self.damaged = true;
        } else {
            match self.depacketizer.depacketize(&packet.payload) {
                Ok(nal) => self.unit.extend_from_slice(&nal),
                Err(_) => self.damaged = true,
            }
        }
        if self.pending > MAX_ACCESS_UNIT {
            // Also bounds FU-A fragments that never end.
            self.damaged = true;
            self.unit.clear();
            self.depacketizer = H264Packet::default();
            self.pending = 0;
        }
        if !packet.header.marker {
            return if lost_marker {
                Assembled::Damaged
            } else {
                Assembled::Pending
            };
        }
        let unit = std::mem::take(&mut self.unit);
        self.pending = 0;
        let damaged = std::mem::replace(&mut self.damaged, false) || lost_marker;
        if damaged {
            Assembled::Damaged
        } else if unit.is_empty() {
            Assembled::Pending
        } else {
            Assembled::Unit(unit)
        }
    }
}

/// Reads one peer's video track: rebuilds access units from the RTP packets
/// (a unit ends at the marker bit), drops units with a lost packet, hands
/// the rest to the decoder and sends a PLI when it wants a keyframe.
async fn read_video(
    track: Arc<TrackRemote>,
    pc: Weak<RTCPeerConnection>,
    peer: UserId,
    session: u64,
    out: VideoSender,
) {
    // Ask at once: the keyframe sent on connecting may have come before
    // this track was ready.
    let keyframe_wanted = Arc::new(AtomicBool::new(true));
    let mut last_pli: Option<Instant> = None;
    let mut assembler = UnitAssembler::default();
    while let Ok((packet, _)) = track.read_rtp().await {
        match assembler.push(&packet) {
            Assembled::Pending => {}
            Assembled::Damaged => keyframe_wanted.store(true, Ordering::Relaxed),
            Assembled::Unit(data) => out.send(VideoInput::Unit {
                peer,
                session,
                data,
                keyframe_wanted: keyframe_wanted.clone(),
            }),
        }
        if keyframe_wanted.load(Ordering::Relaxed)
            && last_pli.is_none_or(|t| t.elapsed() >= PLI_GAP)
        {
            let Some(pc) = pc.upgrade() else { break };
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: track.ssrc(),
            };
            if pc.write_rtcp(&[Box::new(pli)]).await.is_ok() {
                keyframe_wanted.store(false, Ordering::Relaxed);
                last_pli = Some(Instant::now());
            }
        }
    }
}

struct Link {
    session: u64,
    offerer: bool,
    pc: Arc<RTCPeerConnection>,
    remote_set: bool,
    pending: Vec<RTCIceCandidateInit>,
    info: LinkInfo,
    created: Instant,
    /// When to start over (after a failure).
    retry_at: Option<Instant>,
}

struct Manager {
    api: Arc<API>,
    track: Arc<TrackLocalStaticRTP>,
    video_track: Arc<TrackLocalStaticSample>,
    camera: Arc<CameraControl>,
    video_out: VideoSender,
    ice_servers: Vec<IceServer>,
    links: HashMap<UserId, Link>,
    /// The server's list: who we should be connected to, and who offers.
    wanted: HashMap<UserId, (bool, Instant, u32)>,
    tx: mpsc::UnboundedSender<Input>,
    signal_out: SignalOut,
    mixer: MixerSender,
    events: crossbeam_channel::Sender<RtcEvent>,
    shared: Arc<Mutex<HashMap<UserId, LinkInfo>>>,
}

impl Manager {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                input = rx.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => break,
                },
                _ = tick.tick() => self.check_retries().await,
            }
            self.publish();
        }
        self.close_all().await;
        self.publish();
    }

    fn publish(&self) {
        let connected = self
            .links
            .values()
            .filter(|l| l.info.state == RTCPeerConnectionState::Connected.to_string())
            .count();
        self.camera.peers.store(connected, Ordering::Relaxed);
        if let Ok(mut shared) = self.shared.lock() {
            shared.clear();
            for (id, link) in &self.links {
                shared.insert(*id, link.info.clone());
            }
        }
    }

    fn send(&self, to: UserId, payload: &SignalPayload) {
        if let Ok(v) = serde_json::to_value(payload) {
            (self.signal_out)(to, v);
        }
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Peers(peers) => self.set_peers(peers).await,
            Input::Signal(from, payload) => {
                match serde_json::from_value::<SignalPayload>(payload) {
                    Ok(p) => self.on_signal(from, p).await,
                    // Unknown kinds are for newer clients (§6.2): ignore.
                    Err(e) => tracing::debug!("ignoring a signal from {from:?}: {e}"),
                }
            }
            Input::IceServers(s) => self.ice_servers = s,
            Input::CloseAll => {
                self.wanted.clear();
                self.close_all().await;
            }
            Input::Local(peer, session, candidate) => {
                let Some(link) = self.links.get(&peer).filter(|l| l.session == session) else {
                    return;
                };
                let payload = match candidate.map(|c| c.to_json()) {
                    Some(Ok(init)) => SignalPayload::Candidate {
                        candidate: init.candidate,
                        sdp_mid: Some("0".into()),
                        sdp_mline_index: Some(0),
                        session: Some(link.session),
                    },
                    Some(Err(_)) => return,
                    None => SignalPayload::EndOfCandidates {
                        session: Some(link.session),
                    },
                };
                self.send(peer, &payload);
            }
            Input::State(peer, session, state) => self.on_state(peer, session, state).await,
        }
    }

    async fn set_peers(&mut self, peers: Vec<Peer>) {
        let now = Instant::now();
        let mut wanted = HashMap::new();
        for p in &peers {
            let since = self.wanted.get(&p.user_id).map_or((now, 0), |w| (w.1, w.2));
            wanted.insert(p.user_id, (p.offerer, since.0, since.1));
        }
        let gone: Vec<UserId> = self
            .links
            .keys()
            .filter(|id| !wanted.contains_key(id))
            .copied()
            .collect();
        self.wanted = wanted;
        for id in gone {
            self.close(id, true).await;
        }
        for p in peers {
            if p.offerer && !self.links.contains_key(&p.user_id) {
                self.offer(p.user_id).await;
            }
        }
    }

    fn configuration(&self) -> RTCConfiguration {
        RTCConfiguration {
            ice_servers: self
                .ice_servers
                .iter()
                .map(|s| RTCIceServer {
                    urls: s.urls.clone(),
                    username: s.username.clone().unwrap_or_default(),
                    credential: s.credential.clone().unwrap_or_default(),
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A new connection to `peer`, with callbacks posting back to us.
    async fn new_link(&mut self, peer: UserId, session: u64, offerer: bool) -> Option<()> {
        let pc = match self.api.new_peer_connection(self.configuration()).await {
            Ok(pc) => Arc::new(pc),
            Err(e) => {
                tracing::warn!("peer connection for {peer:?}: {e}");
                return None;
            }
        };
        let tx = self.tx.clone();
        pc.on_ice_candidate(Box::new(move |c| {
            let _ = tx.send(Input::Local(peer, session, c));
            Box::pin(async {})
        }));
        let tx = self.tx.clone();
        pc.on_peer_connection_state_change(Box::new(move |s| {
            let _ = tx.send(Input::State(peer, session, s));
            Box::pin(async {})
        }));
        let mixer = self.mixer.clone();
        let video_out = self.video_out.clone();
        let weak_pc = Arc::downgrade(&pc);
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            let mixer = mixer.clone();
            let video_out = video_out.clone();
            let weak_pc = weak_pc.clone();
            Box::pin(async move {
                let mime = track.codec().capability.mime_type;
                if mime.eq_ignore_ascii_case(MIME_TYPE_H264) {
                    tokio::spawn(read_video(track, weak_pc, peer, session, video_out));
                    return;
                }
                if !mime.eq_ignore_ascii_case(MIME_TYPE_OPUS) {
                    return;
                }
                tokio::spawn(async move {
                    while let Ok((packet, _)) = track.read_rtp().await {
                        if packet.payload.is_empty()
                            || packet.payload.len() > crate::media::codec::MAX_PACKET
                        {
                            continue;
                        }
                        mixer.send(MixerCommand::Packet {
                            peer,
                            session,
                            timestamp: packet.header.timestamp,
                            payload: packet.payload.to_vec(),
                            arrival: Instant::now(),
                        });
                    }
                });
            })
        }));
        let track: Arc<dyn TrackLocal + Send + Sync> = self.track.clone();
        match pc.add_track(track).await {
            Ok(sender) => {
                // Read RTCP so the interceptors work.
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1500];
                    while sender.read(&mut buf).await.is_ok() {}
                });
            }
            Err(e) => tracing::warn!("adding the microphone track: {e}"),
        }
        // Video from the start, camera on or off: switching it needs no
        // renegotiation (no pictures are simply no packets).
        let video: Arc<dyn TrackLocal + Send + Sync> = self.video_track.clone();
        match pc.add_track(video).await {
            Ok(sender) => {
                // Reading RTCP also tells us when a peer wants a keyframe.
                let camera = self.camera.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1500];
                    while let Ok((packets, _)) = sender.read(&mut buf).await {
                        let wants_keyframe = packets.iter().any(|p| {
                            p.as_any().is::<PictureLossIndication>()
                                || p.as_any().is::<FullIntraRequest>()
                        });
                        if wants_keyframe {
                            camera.keyframe.store(true, Ordering::Relaxed);
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("adding the camera track: {e}"),
        }
        let (linked_at, attempts) = self
            .wanted
            .get(&peer)
            .map_or((Instant::now(), 0), |w| (w.1, w.2));
        self.links.insert(
            peer,
            Link {
                session,
                offerer,
                pc,
                remote_set: false,
                pending: Vec::new(),
                info: LinkInfo {
                    session,
                    offerer,
                    state: "new".into(),
                    linked_at,
                    connected_at: None,
                    attempts,
                },
                created: Instant::now(),
                retry_at: None,
            },
        );
        Some(())
    }

    async fn offer(&mut self, peer: UserId) {
        let session: u64 = rand::random::<u64>() >> 11;
        if self.new_link(peer, session, true).await.is_none() {
            return;
        }
        let Some(link) = self.links.get(&peer) else {
            return;
        };
        let pc = link.pc.clone();
        let sdp = async {
            let offer = pc.create_offer(None).await?;
            describe(&pc, offer).await
        }
        .await;
        match sdp {
            Ok(sdp) => self.send(
                peer,
                &SignalPayload::Offer {
                    sdp,
                    session: Some(session),
                },
            ),
            Err(e) => {
                tracing::warn!("offer to {peer:?}: {e}");
                self.fail(peer).await;
            }
        }
    }

    async fn on_signal(&mut self, from: UserId, payload: SignalPayload) {
        let current = self.links.get(&from).map(|l| l.session);
        let wanted = self.wanted.get(&from).copied();
        match payload {
            SignalPayload::Offer { sdp, session } => {
                // Offers come only from the offerer, for a peer in our list.
                let Some((false, ..)) = wanted else { return };
                let session = session.unwrap_or_else(|| rand::random::<u64>() >> 11);
                if current.is_some() && current != Some(session) {
                    self.close(from, false).await;
                }
                if !self.links.contains_key(&from)
                    && self.new_link(from, session, false).await.is_none()
                {
                    return;
                }
                let Some(link) = self.links.get_mut(&from) else {
                    return;
                };
                let pc = link.pc.clone();
                let answered = async {
                    pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
                        .await?;
                    let answer = pc.create_answer(None).await?;
                    describe(&pc, answer).await
                }
                .await;
                match answered {
                    Ok(sdp) => {
                        link.remote_set = true;
                        for c in link.pending.drain(..) {
                            let _ = link.pc.add_ice_candidate(c).await;
                        }
                        self.send(
                            from,
                            &SignalPayload::Answer {
                                sdp,
                                session: Some(session),
                            },
                        );
                    }
                    Err(e) => {
                        tracing::warn!("answering {from:?}: {e}");
                        self.fail(from).await;
                    }
                }
            }
            SignalPayload::Answer { sdp, session } => {
                let Some(link) = self.links.get_mut(&from) else {
                    return;
                };
                if !link.offerer || session.is_some_and(|s| s != link.session) || link.remote_set {
                    return;
                }
                let result = match RTCSessionDescription::answer(sdp) {
                    Ok(desc) => link.pc.set_remote_description(desc).await,
                    Err(e) => Err(e),
                };
                match result {
                    Ok(()) => {
                        link.remote_set = true;
                        for c in link.pending.drain(..) {
                            let _ = link.pc.add_ice_candidate(c).await;
                        }
                    }
                    Err(e) => {
                        tracing::warn!("answer from {from:?}: {e}");
                        self.fail(from).await;
                    }
                }
            }
            SignalPayload::Candidate {
                candidate,
                sdp_mid,
                sdp_mline_index,
                session,
            } => {
                let Some(link) = self.links.get_mut(&from) else {
                    return;
                };
                if session.is_some_and(|s| s != link.session) {
                    return;
                }
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid,
                    sdp_mline_index,
                    username_fragment: None,
                };
                if link.remote_set {
                    // A candidate that does not apply is ignored (§6.3 step 6).
                    if let Err(e) = link.pc.add_ice_candidate(init).await {
                        tracing::debug!("candidate from {from:?}: {e}");
                    }
                } else if link.pending.len() < 64 {
                    link.pending.push(init);
                }
            }
            SignalPayload::EndOfCandidates { .. } => {}
            SignalPayload::Bye { session } => {
                if wanted.is_none() && session.is_none_or(|s| Some(s) == current) {
                    self.close(from, false).await;
                }
            }
            SignalPayload::Restart { session } => {
                if let Some(link) = self.links.get(&from)
                    && link.offerer
                    && session.is_none_or(|s| s == link.session)
                {
                    self.fail(from).await;
                }
            }
        }
    }

    async fn on_state(&mut self, peer: UserId, session: u64, state: RTCPeerConnectionState) {
        let Some(link) = self.links.get_mut(&peer).filter(|l| l.session == session) else {
            return;
        };
        link.info.state = state.to_string();
        match state {
            RTCPeerConnectionState::Connected => {
                link.info.connected_at.get_or_insert_with(Instant::now);
                // The new peer's decoder starts from a keyframe.
                self.camera.keyframe.store(true, Ordering::Relaxed);
                if let Some(w) = self.wanted.get_mut(&peer) {
                    w.2 = 0;
                }
                let _ = self.events.send(RtcEvent::Connected(peer));
            }
            RTCPeerConnectionState::Failed => self.fail(peer).await,
            _ => {}
        }
    }

    /// The connection with `peer` failed: close it and start over soon.
    async fn fail(&mut self, peer: UserId) {
        if self.links.get(&peer).is_none_or(|l| l.retry_at.is_some()) {
            return;
        }
        let _ = self.events.send(RtcEvent::Failed(peer));
        let attempts = self.wanted.get(&peer).map_or(0, |w| w.2) + 1;
        if let Some(w) = self.wanted.get_mut(&peer) {
            w.2 = attempts;
        }
        let delay = crate::core::net::backoff(attempts);
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.info.state = "retrying".into();
        link.retry_at = Some(Instant::now() + delay);
        let (pc, offerer, session) = (link.pc.clone(), link.offerer, link.session);
        let _ = pc.close().await;
        if !offerer {
            self.send(
                peer,
                &SignalPayload::Restart {
                    session: Some(session),
                },
            );
        }
        self.mixer.send(MixerCommand::Remove(peer));
        self.video_out.send(VideoInput::Remove { peer, session });
    }

    async fn check_retries(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        for (id, link) in &self.links {
            let stuck = link.info.connected_at.is_none()
                && link.retry_at.is_none()
                && now.duration_since(link.created) > CONNECT_TIMEOUT;
            if stuck {
                due.push((*id, false));
            } else if link.retry_at.is_some_and(|t| now >= t) {
                due.push((*id, true));
            }
        }
        for (id, retry) in due {
            if !retry {
                self.fail(id).await;
                continue;
            }
            let offerer = self.links.get(&id).is_some_and(|l| l.offerer);
            self.links.remove(&id);
            if offerer && self.wanted.contains_key(&id) {
                self.offer(id).await;
            }
        }
    }

    async fn close(&mut self, peer: UserId, say_bye: bool) {
        if let Some(link) = self.links.remove(&peer) {
            if say_bye {
                self.send(
                    peer,
                    &SignalPayload::Bye {
                        session: Some(link.session),
                    },
                );
            }
            let _ = link.pc.close().await;
            self.mixer.send(MixerCommand::Remove(peer));
            self.video_out.send(VideoInput::Remove {
                peer,
                session: link.session,
            });
            let _ = self.events.send(RtcEvent::Closed(peer));
        }
    }

    async fn close_all(&mut self) {
        let ids: Vec<UserId> = self.links.keys().copied().collect();
        for id in ids {
            self.close(id, false).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RTP packets for one access unit, as the sending track makes them.
    fn packets(au: &[u8], seq: &mut u16, ts: u32) -> Vec<webrtc::rtp::packet::Packet> {
        use webrtc::rtp::codecs::h264::H264Payloader;
        use webrtc::rtp::packetizer::Payloader;
        let payloads = H264Payloader::default()
            .payload(1188, &bytes::Bytes::copy_from_slice(au))
            .unwrap();
        let n = payloads.len();
        payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                *seq = seq.wrapping_add(1);
                webrtc::rtp::packet::Packet {
                    header: webrtc::rtp::header::Header {
                        sequence_number: *seq,
                        timestamp: ts,
                        marker: i + 1 == n,
                        ..Default::default()
                    },
                    payload,
                }
            })
            .collect()
    }

    #[test]
    fn access_units_are_rebuilt_and_damaged_ones_dropped() {
        use crate::media::video::{Stamp, VideoDecoder, VideoEncoder, read_stamp, test_pattern};
        let mut enc = VideoEncoder::new(800_000, 30.0).unwrap();
        let units: Vec<Vec<u8>> = (0..4u16)
            .map(|n| {
                let stamp = Stamp {
                    frame: n,
                    clock_ms: 0,
                };
                enc.encode(&test_pattern(stamp, 640, 480)).unwrap().data
            })
            .collect();
        let mut seq = u16::MAX - 3; // wraps around on the way
        let streams: Vec<_> = units
            .iter()
            .enumerate()
            .map(|(i, au)| packets(au, &mut seq, i as u32 * 3000))
            .collect();
        assert!(
            streams[0].len() > 2,
            "a keyframe spans several packets (FU-A)"
        );

        // In order: every unit whole, and it decodes.
        let mut asm = UnitAssembler::default();
        let mut dec = VideoDecoder::new().unwrap();
        let mut got = Vec::new();
        for p in streams.iter().flatten() {
            match asm.push(p) {
                Assembled::Unit(au) => {
                    got.push(dec.decode(&au).unwrap().map(|f| read_stamp(&f).frame))
                }
                Assembled::Pending => {}
                Assembled::Damaged => panic!("nothing was lost"),
            }
        }
        assert_eq!(got, vec![Some(0), Some(1), Some(2), Some(3)]);

        // A packet lost inside the keyframe: that unit is dropped, the next
        // ones come through (for the decoder to ask for a keyframe).
        let mut asm = UnitAssembler::default();
        let mut results = Vec::new();
        for (i, p) in streams.iter().flatten().enumerate() {
            if i == 1 {
                continue;
            }
            results.push(asm.push(p));
        }
        let damaged = results.iter().filter(|r| **r == Assembled::Damaged).count();
        let whole = results
            .iter()
            .filter(|r| matches!(r, Assembled::Unit(_)))
            .count();
        assert_eq!((damaged, whole), (1, 3));

        // The marker packet of unit 1 lost: unit 1 is dropped when unit 2
        // begins, and so is unit 2 (the lost packet could have been its
        // start); unit 3 comes through.
        let mut asm = UnitAssembler::default();
        let mut results = Vec::new();
        for (u, stream) in streams.iter().enumerate() {
            for p in stream {
                if u == 1 && p.header.marker {
                    continue;
                }
                results.push(asm.push(p));
            }
        }
        let delivered: Vec<&Vec<u8>> = results
            .iter()
            .filter_map(|r| match r {
                Assembled::Unit(au) => Some(au),
                _ => None,
            })
            .collect();
        assert_eq!(delivered, vec![&units[0], &units[3]]);
        assert!(results.contains(&Assembled::Damaged));

        // Garbage payloads are damage, not a panic: FU-B, a STAP-A cut in
        // the middle of a length, a STAP-A whose NAL runs past the end.
        for payload in [
            &[0x1d, 0x00, 0x00][..],
            &[0x18, 0x00, 0x00, 0x07][..],
            &[0x18, 0x00, 0x05, 0x67, 0x42][..],
        ] {
            let mut asm = UnitAssembler::default();
            let mut bad = streams[1][0].clone();
            bad.payload = bytes::Bytes::copy_from_slice(payload);
            bad.header.marker = true;
            assert_eq!(asm.push(&bad), Assembled::Damaged, "{payload:?}");
        }
        assert!(stap_a_is_sound(&[0x78, 0x00, 0x01, 0x67, 0x00, 0x01, 0x68]));
        // FU-A fragments that never end are bounded.
        let mut asm = UnitAssembler::default();
        let mut fragment = streams[0][0].clone();
        fragment.payload = {
            let mut v = vec![0x7c, 0x05];
            v.resize(1200, 0xab);
            bytes::Bytes::from(v)
        };
        let mut damaged = false;
        for i in 0..(MAX_ACCESS_UNIT / 1000) as u16 {
            fragment.header.sequence_number = i;
            damaged |= asm.push(&fragment) == Assembled::Damaged;
            assert!(asm.unit.len() + asm.pending <= MAX_ACCESS_UNIT + 1200);
        }
        fragment.header.marker = true;
        damaged |= asm.push(&fragment) == Assembled::Damaged;
        assert!(damaged);
    }

    #[test]
    fn signal_payloads_match_the_protocol() {
        let c = SignalPayload::Candidate {
            candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            session: Some(7),
        };
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["kind"], "candidate");
        assert_eq!(v["sdp_mid"], "0");
        assert_eq!(v["sdp_mline_index"], 0);
        assert_eq!(v["session"], 7);
        // A client that sends no session (another implementation) is understood.
        let offer: SignalPayload =
            serde_json::from_str(r#"{"kind":"offer","sdp":"v=0\r\n","extra":1}"#).unwrap();
        assert_eq!(
            offer,
            SignalPayload::Offer {
                sdp: "v=0\r\n".into(),
                session: None
            }
        );
        assert!(serde_json::from_str::<SignalPayload>(r#"{"kind":"wave"}"#).is_err());
    }
}
