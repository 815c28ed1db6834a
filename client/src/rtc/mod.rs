//! The peer manager: one webrtc-rs `RTCPeerConnection` per proximity peer,
//! driven by the server's `proximity` lists and the `signal` payloads of
//! `docs/protocol.md` §6. The side the server names offers; ICE candidates
//! trickle; a peer that leaves the list is closed and freed; a connection whose
//! path breaks is recovered by an ICE restart, and one that fails is started
//! over with a new session number.
//!
//! - [`links`]: the link table, every rule above as pure data and transitions.
//! - [`manager`]: the task that owns the connections and carries out the
//!   table's decisions; webrtc-rs callbacks only post events to it.
//! - [`engine`]: codecs, ICE settings and SDP helpers; [`signal`]: the payloads.
//! - [`tracks`]: media in and out; [`h264`]: access units from RTP packets;
//!   [`impair`]: a test option that loses and delays incoming voice.

mod engine;
pub mod h264;
pub mod impair;
pub mod links;
mod manager;
pub mod signal;
mod tracks;

pub use links::LinkState;
pub use signal::SignalPayload;

use crate::media::capture::EncodedFrame;
use crate::media::mixer::MixerSender;
use crate::media::video::EncodedVideo;
use crate::media::video::camera::CameraControl;
use crate::media::video::remote::VideoSender;
use hallway_shared::UserId;
use hallway_shared::protocol::{ClientMessage, IceServer, Peer};
use links::{LinkTable, Timing};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::ice_transport::ice_candidate::RTCIceCandidate;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

/// A connection not connected after this long is started over.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How the peer manager gathers candidates.
#[derive(Clone, Debug, Default)]
pub struct RtcOptions {
    /// Only loopback candidates (tests and same-machine demos).
    pub loopback_only: bool,
    /// Connect only through a TURN relay, so peers never learn our address
    /// (ICE transport policy "relay").
    pub relay_only: bool,
    /// Tests and benchmarks only: lose and delay incoming voice packets.
    pub impair: Option<impair::Impairment>,
}

/// Which way a connection's media goes: the types of its selected ICE
/// candidate pair (the "furthest" of the two ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Route {
    /// Straight between the two hosts' own addresses (same network).
    Host,
    /// Direct, through at least one NAT (server- or peer-reflexive).
    Srflx,
    /// Through a TURN relay.
    Relay,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Host => "host",
            Route::Srflx => "srflx",
            Route::Relay => "relay",
        }
    }

    /// What the People tab says.
    pub fn label(self) -> &'static str {
        match self {
            Route::Relay => "relayed",
            Route::Host | Route::Srflx => "direct",
        }
    }
}

/// The state of one peer link, as the UI and reports see it.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkInfo {
    pub session: u64,
    pub offerer: bool,
    pub state: LinkState,
    pub linked_at: Instant,
    pub connected_at: Option<Instant>,
    pub attempts: u32,
    /// The selected candidate pair's route, once there is one.
    pub route: Option<Route>,
    /// ICE restarts this connection went through (a broken path recovered).
    pub ice_restarts: u32,
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
    /// Relay only (or not) for connections opened from now on.
    RelayOnly(bool),
    /// The WebSocket session is back after a reconnect.
    Resumed,
    CloseAll,
    /// The handle is gone: hang up and end the task (it holds a sender of
    /// its own for the callbacks, so its queue never closes by itself).
    Stop,
    Local(UserId, u64, Option<RTCIceCandidate>),
    State(UserId, u64, RTCPeerConnectionState),
    Route(UserId, u64, Route),
}

/// How the peer manager reaches the server: signal payloads to a user, and
/// a probe of the session when a call's path breaks (whatever broke it, a
/// new address or another network, may have cut the WebSocket too).
#[derive(Clone)]
pub struct SignalOut {
    send: Arc<dyn Fn(UserId, serde_json::Value) + Send + Sync>,
    probe: Arc<dyn Fn() + Send + Sync>,
}

impl SignalOut {
    pub fn new(
        send: impl Fn(UserId, serde_json::Value) + Send + Sync + 'static,
        probe: impl Fn() + Send + Sync + 'static,
    ) -> SignalOut {
        SignalOut {
            send: Arc::new(send),
            probe: Arc::new(probe),
        }
    }

    /// Through a WebSocket session: `signal` messages, and its probe.
    pub fn through(net: crate::core::net::NetSender) -> SignalOut {
        let prober = net.clone();
        SignalOut::new(
            move |to, payload| net.send(ClientMessage::Signal { to, payload }),
            move || prober.probe(),
        )
    }

    /// Nowhere (a call without a server, in tests).
    pub fn nowhere() -> SignalOut {
        SignalOut::new(|_, _| {}, || {})
    }

    pub fn send(&self, to: UserId, payload: serde_json::Value) {
        (self.send)(to, payload);
    }

    pub fn probe(&self) {
        (self.probe)();
    }
}

/// The video side of the peer manager: encoded pictures to send, the
/// camera's controls (peer count, keyframe requests), and where received
/// access units go.
pub struct VideoLinks {
    pub uplink: mpsc::Receiver<EncodedVideo>,
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
        uplink: mpsc::Receiver<EncodedFrame>,
        mixer: MixerSender,
        video: VideoLinks,
    ) -> Result<PeerManager, webrtc::Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, events) = crossbeam_channel::unbounded();
        let links = Arc::new(Mutex::new(HashMap::new()));
        let api = Arc::new(engine::build_api(&options)?);
        let track = Arc::new(TrackLocalStaticRTP::new(
            engine::opus_capability(),
            "audio".to_owned(),
            "hallway".to_owned(),
        ));
        tracks::spawn_uplink(rt, uplink, track.clone());
        let video_track = Arc::new(TrackLocalStaticSample::new(
            engine::h264_capability(),
            "video".to_owned(),
            "hallway".to_owned(),
        ));
        tracks::spawn_video_uplink(rt, video.uplink, video_track.clone());
        let timing = Timing {
            connect_timeout: CONNECT_TIMEOUT,
            backoff: crate::core::net::backoff,
        };
        // Session numbers below 2^53, so that every JSON reader keeps them exact.
        let table = LinkTable::new(timing, || rand::random::<u64>() >> 11);
        let manager = manager::Manager::new(
            api,
            options.relay_only,
            track,
            video_track,
            video.camera,
            tracks::Sinks {
                mixer,
                video: video.downlink,
                impair: options.impair,
            },
            table,
            tx.clone(),
            signal_out,
            ev_tx,
            links.clone(),
        );
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

    /// The session rejoined (a `welcome`): signals sent while it was down
    /// were lost, so broken links ask again.
    pub fn signaling_resumed(&self) {
        let _ = self.tx.send(Input::Resumed);
    }

    /// "Always relay": connections opened from now on use only relayed
    /// candidates (or all again).
    pub fn set_relay_only(&self, on: bool) {
        let _ = self.tx.send(Input::RelayOnly(on));
    }

    pub fn close_all(&self) {
        let _ = self.tx.send(Input::CloseAll);
    }

    pub fn try_event(&self) -> Option<RtcEvent> {
        self.events.try_recv().ok()
    }

    pub fn events(&self) -> &crossbeam_channel::Receiver<RtcEvent> {
        &self.events
    }

    pub fn links(&self) -> HashMap<UserId, LinkInfo> {
        self.links.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for PeerManager {
    fn drop(&mut self) {
        let _ = self.tx.send(Input::Stop);
    }
}
