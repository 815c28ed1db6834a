//! The peer manager task: owns every `RTCPeerConnection` and carries out what
//! the [`LinkTable`] decides. Inputs (the server's lists, signals, webrtc-rs
//! callbacks) go to the table; its [`Action`]s come back here as I/O, and
//! what that I/O yields (an answer set, a step that failed) goes back to the
//! table. webrtc-rs callbacks only post events to this task.

use super::engine::{describe, first_mid, prefer_own_codecs};
use super::links::{Action, LinkState, LinkTable};
use super::signal::{RemoteCandidate, SignalPayload};
use super::tracks::{self, Sinks};
use super::{Input, LinkInfo, Route, RtcEvent, SignalOut};
use crate::media::mixer::MixerControl;
use crate::media::video::camera::CameraControl;
use crate::media::video::remote::VideoInput;
use hallway_shared::UserId;
use hallway_shared::protocol::IceServer;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;
use webrtc::api::API;
use webrtc::ice_transport::ice_candidate::RTCIceCandidateInit;
use webrtc::ice_transport::ice_candidate_pair::RTCIceCandidatePair;
use webrtc::ice_transport::ice_candidate_type::RTCIceCandidateType;
use webrtc::ice_transport::ice_server::RTCIceServer;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::offer_answer_options::RTCOfferOptions;
use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState;
use webrtc::peer_connection::policy::ice_transport_policy::RTCIceTransportPolicy;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::track::track_local::TrackLocal;
use webrtc::track::track_local::track_local_static_rtp::TrackLocalStaticRTP;
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

/// One open connection.
struct Conn {
    session: u64,
    pc: Arc<RTCPeerConnection>,
    /// The first m-section's mid, which our candidates name.
    mid: String,
}

pub(super) struct Manager {
    api: Arc<API>,
    relay_only: bool,
    track: Arc<TrackLocalStaticRTP>,
    video_track: Arc<TrackLocalStaticSample>,
    camera: Arc<CameraControl>,
    sinks: Sinks,
    ice_servers: Vec<IceServer>,
    table: LinkTable,
    tx: mpsc::UnboundedSender<Input>,
    signal_out: SignalOut,
    events: crossbeam_channel::Sender<RtcEvent>,
    shared: Arc<Mutex<HashMap<UserId, LinkInfo>>>,
    conns: HashMap<UserId, Conn>,
}

impl Manager {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: Arc<API>,
        relay_only: bool,
        track: Arc<TrackLocalStaticRTP>,
        video_track: Arc<TrackLocalStaticSample>,
        camera: Arc<CameraControl>,
        sinks: Sinks,
        table: LinkTable,
        tx: mpsc::UnboundedSender<Input>,
        signal_out: SignalOut,
        events: crossbeam_channel::Sender<RtcEvent>,
        shared: Arc<Mutex<HashMap<UserId, LinkInfo>>>,
    ) -> Manager {
        Manager {
            api,
            relay_only,
            track,
            video_track,
            camera,
            sinks,
            ice_servers: Vec::new(),
            table,
            tx,
            signal_out,
            events,
            shared,
            conns: HashMap::new(),
        }
    }

    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        loop {
            let wake = self.table.poll_timeout();
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let actions = tokio::select! {
                input = rx.recv() => match input {
                    Some(Input::Stop) | None => break,
                    Some(input) => self.handle(input).await,
                },
                () = timer => self.table.handle_timeout(Instant::now()),
            };
            self.execute(actions).await;
            self.publish();
        }
        let actions = self.table.close_all();
        self.execute(actions).await;
        self.publish();
    }

    /// What the camera and the UI see: the connected count and every link.
    fn publish(&self) {
        self.camera
            .peers
            .store(self.table.connected(), Ordering::Relaxed);
        if let Ok(mut shared) = self.shared.lock() {
            *shared = self.table.info();
        }
    }

    fn send(&self, to: UserId, payload: &SignalPayload) {
        if let Ok(v) = serde_json::to_value(payload) {
            self.signal_out.send(to, v);
        }
    }

    async fn handle(&mut self, input: Input) -> Vec<Action> {
        let now = Instant::now();
        match input {
            Input::Peers(peers) => self.table.set_peers(&peers, now),
            Input::Signal(from, payload) => {
                match serde_json::from_value::<SignalPayload>(payload) {
                    Ok(p) => self.table.on_signal(from, p, now),
                    // Unknown kinds are for newer clients (§6.2): ignore.
                    Err(e) => {
                        tracing::debug!("ignoring a signal from {from:?}: {e}");
                        Vec::new()
                    }
                }
            }
            Input::IceServers(s) => {
                self.ice_servers = s;
                Vec::new()
            }
            Input::Resumed => self.table.resumed(now),
            Input::RelayOnly(on) => {
                self.relay_only = on;
                Vec::new()
            }
            Input::CloseAll => self.table.close_all(),
            Input::Stop => Vec::new(),
            Input::Local(peer, session, candidate) => {
                let Some(conn) = self.conns.get(&peer).filter(|c| c.session == session) else {
                    return Vec::new();
                };
                let payload = match candidate.map(|c| c.to_json()) {
                    Some(Ok(init)) => SignalPayload::Candidate {
                        candidate: init.candidate,
                        sdp_mid: Some(conn.mid.clone()),
                        sdp_mline_index: Some(0),
                        session: Some(session),
                    },
                    Some(Err(_)) => return Vec::new(),
                    None => SignalPayload::EndOfCandidates {
                        session: Some(session),
                    },
                };
                self.send(peer, &payload);
                Vec::new()
            }
            Input::State(peer, session, state) => {
                self.table.on_state(peer, session, link_state(state), now)
            }
            Input::Route(peer, session, route) => {
                self.table.on_route(peer, session, route);
                Vec::new()
            }
        }
    }

    /// Carries out `actions`, and whatever the table answers to their results.
    async fn execute(&mut self, actions: Vec<Action>) {
        let mut queue = VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            queue.extend(self.perform(action).await);
        }
    }

    async fn perform(&mut self, action: Action) -> Vec<Action> {
        match action {
            Action::Offer { peer, session } => match self.open(peer, session).await {
                Ok(pc) => self.offer(peer, session, &pc, None).await,
                Err(e) => {
                    tracing::warn!("offer to {peer:?}: {e}");
                    self.table.failed(peer, session, Instant::now())
                }
            },
            Action::IceRestart { peer, session } => {
                let Some(pc) = self.pc(peer, session) else {
                    return Vec::new();
                };
                tracing::info!("path to {peer:?} broke: restarting ICE");
                let options = RTCOfferOptions {
                    ice_restart: true,
                    voice_activity_detection: false,
                };
                self.offer(peer, session, &pc, Some(options)).await
            }
            Action::ResendOffer { peer, session } => {
                tracing::debug!("resending the ICE restart offer to {peer:?}");
                if let Some(pc) = self.pc(peer, session)
                    && let Some(offer) = pc.local_description().await
                {
                    let session = Some(session);
                    let sdp = offer.sdp;
                    self.send(peer, &SignalPayload::Offer { sdp, session });
                }
                Vec::new()
            }
            Action::AskIceRestart { peer, session } => {
                let session = Some(session);
                self.send(peer, &SignalPayload::IceRestart { session });
                Vec::new()
            }
            Action::ProbeSignaling => {
                self.signal_out.probe();
                Vec::new()
            }
            Action::Answer {
                peer,
                session,
                sdp,
                open,
            } => {
                // Our answer keeps the offer's mids; candidates trickled while
                // it is gathered already name the first one.
                let mid = first_mid(&sdp);
                let answered = async {
                    let pc = match self.pc(peer, session).filter(|_| !open) {
                        Some(pc) => pc,
                        None => self.open(peer, session).await?,
                    };
                    self.remember_mid(peer, &mid);
                    pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
                        .await?;
                    prefer_own_codecs(&pc).await;
                    let answer = pc.create_answer(None).await?;
                    describe(&pc, answer).await
                }
                .await;
                match answered {
                    Ok(sdp) => {
                        let session_no = Some(session);
                        self.send(
                            peer,
                            &SignalPayload::Answer {
                                sdp,
                                session: session_no,
                            },
                        );
                        self.table.described(peer, session)
                    }
                    Err(e) => {
                        tracing::warn!("answering {peer:?}: {e}");
                        self.table.failed(peer, session, Instant::now())
                    }
                }
            }
            Action::Accept { peer, session, sdp } => {
                let Some(pc) = self.pc(peer, session) else {
                    return Vec::new();
                };
                let accepted = match RTCSessionDescription::answer(sdp) {
                    Ok(desc) => pc.set_remote_description(desc).await,
                    Err(e) => Err(e),
                };
                match accepted {
                    Ok(()) => self.table.described(peer, session),
                    Err(e) => {
                        tracing::warn!("answer from {peer:?}: {e}");
                        self.table.failed(peer, session, Instant::now())
                    }
                }
            }
            Action::Candidate {
                peer,
                session,
                candidate,
            } => {
                if let Some(pc) = self.pc(peer, session) {
                    // A candidate that does not apply is ignored (§6.3 step 6).
                    if let Err(e) = pc.add_ice_candidate(ice_candidate(candidate)).await {
                        tracing::debug!("candidate from {peer:?}: {e}");
                    }
                }
                Vec::new()
            }
            Action::Close { peer, session, bye } => {
                if bye {
                    let session = Some(session);
                    self.send(peer, &SignalPayload::Bye { session });
                }
                self.hang_up(peer, session).await;
                Vec::new()
            }
            Action::Drop {
                peer,
                session,
                restart,
            } => {
                self.hang_up(peer, session).await;
                if restart {
                    let session = Some(session);
                    self.send(peer, &SignalPayload::Restart { session });
                }
                Vec::new()
            }
            Action::Event(event) => {
                if let RtcEvent::Connected(_) = event {
                    // The new peer's decoder starts from a keyframe.
                    self.camera.keyframe.store(true, Ordering::Relaxed);
                }
                let _ = self.events.send(event);
                Vec::new()
            }
        }
    }

    /// Creates an offer on `pc` (an ICE restart if `options` say so) and
    /// sends it for `session`; a failure starts the link over.
    async fn offer(
        &mut self,
        peer: UserId,
        session: u64,
        pc: &RTCPeerConnection,
        options: Option<RTCOfferOptions>,
    ) -> Vec<Action> {
        let offered = async {
            let offer = pc.create_offer(options).await?;
            describe(pc, offer).await
        }
        .await;
        match offered {
            Ok(sdp) => {
                let session = Some(session);
                self.send(peer, &SignalPayload::Offer { sdp, session });
                Vec::new()
            }
            Err(e) => {
                tracing::warn!("offer to {peer:?}: {e}");
                self.table.failed(peer, session, Instant::now())
            }
        }
    }

    fn pc(&self, peer: UserId, session: u64) -> Option<Arc<RTCPeerConnection>> {
        self.conns
            .get(&peer)
            .filter(|c| c.session == session)
            .map(|c| c.pc.clone())
    }

    fn remember_mid(&mut self, peer: UserId, mid: &str) {
        if let Some(conn) = self.conns.get_mut(&peer) {
            mid.clone_into(&mut conn.mid);
        }
    }

    /// Closes the connection for `session` and frees what it fed.
    async fn hang_up(&mut self, peer: UserId, session: u64) {
        if self.conns.get(&peer).is_some_and(|c| c.session == session)
            && let Some(conn) = self.conns.remove(&peer)
        {
            let _ = conn.pc.close().await;
        }
        self.sinks
            .mixer
            .control(MixerControl::Remove { peer, session });
        self.sinks.video.send(VideoInput::Remove { peer, session });
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
            ice_transport_policy: if self.relay_only {
                RTCIceTransportPolicy::Relay
            } else {
                RTCIceTransportPolicy::All
            },
            ..Default::default()
        }
    }

    /// A new connection to `peer` for `session` (replacing any other), with
    /// its callbacks posting back to this task and both shared tracks on it.
    async fn open(
        &mut self,
        peer: UserId,
        session: u64,
    ) -> Result<Arc<RTCPeerConnection>, webrtc::Error> {
        if let Some(old) = self.conns.remove(&peer) {
            let _ = old.pc.close().await;
        }
        let pc = Arc::new(self.api.new_peer_connection(self.configuration()).await?);
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
        let tx = self.tx.clone();
        pc.sctp()
            .transport()
            .ice_transport()
            .on_selected_candidate_pair_change(Box::new(move |pair| {
                let _ = tx.send(Input::Route(peer, session, route_of(&pair)));
                Box::pin(async {})
            }));
        let sinks = self.sinks.clone();
        let weak_pc = Arc::downgrade(&pc);
        pc.on_track(Box::new(move |track, _receiver, _transceiver| {
            tracks::read_remote(track, weak_pc.clone(), peer, session, sinks.clone());
            Box::pin(async {})
        }));
        let audio: Arc<dyn TrackLocal + Send + Sync> = self.track.clone();
        match pc.add_track(audio).await {
            Ok(sender) => tracks::drain_rtcp(sender),
            Err(e) => tracing::warn!("adding the microphone track: {e}"),
        }
        // Video from the start, camera on or off: switching it needs no
        // renegotiation (no pictures are simply no packets).
        let video: Arc<dyn TrackLocal + Send + Sync> = self.video_track.clone();
        match pc.add_track(video).await {
            Ok(sender) => tracks::watch_keyframe_requests(sender, self.camera.clone()),
            Err(e) => tracing::warn!("adding the camera track: {e}"),
        }
        self.conns.insert(
            peer,
            Conn {
                session,
                pc: pc.clone(),
                mid: "0".into(),
            },
        );
        Ok(pc)
    }
}

fn ice_candidate(c: RemoteCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: None,
    }
}

/// The route of a selected pair: relayed if either end is a relay, else
/// reflexive if either end is, else host to host.
fn route_of(pair: &RTCIceCandidatePair) -> Route {
    let types = [pair.local.typ, pair.remote.typ];
    if types.contains(&RTCIceCandidateType::Relay) {
        Route::Relay
    } else if types
        .iter()
        .any(|t| matches!(t, RTCIceCandidateType::Srflx | RTCIceCandidateType::Prflx))
    {
        Route::Srflx
    } else {
        Route::Host
    }
}

fn link_state(s: RTCPeerConnectionState) -> LinkState {
    match s {
        RTCPeerConnectionState::Unspecified | RTCPeerConnectionState::New => LinkState::New,
        RTCPeerConnectionState::Connecting => LinkState::Connecting,
        RTCPeerConnectionState::Connected => LinkState::Connected,
        RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
        RTCPeerConnectionState::Failed => LinkState::Failed,
        RTCPeerConnectionState::Closed => LinkState::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webrtc::ice_transport::ice_candidate::RTCIceCandidate;

    fn pair(local: RTCIceCandidateType, remote: RTCIceCandidateType) -> RTCIceCandidatePair {
        let end = |typ| RTCIceCandidate {
            typ,
            ..RTCIceCandidate::default()
        };
        RTCIceCandidatePair::new(end(local), end(remote))
    }

    #[test]
    fn a_pair_is_as_far_as_its_furthest_end() {
        use RTCIceCandidateType::{Host, Prflx, Relay, Srflx};
        assert_eq!(route_of(&pair(Host, Host)), Route::Host);
        assert_eq!(route_of(&pair(Host, Srflx)), Route::Srflx);
        assert_eq!(route_of(&pair(Prflx, Host)), Route::Srflx);
        assert_eq!(route_of(&pair(Srflx, Relay)), Route::Relay);
        assert_eq!(route_of(&pair(Relay, Host)), Route::Relay);
        assert_eq!(Route::Relay.label(), "relayed");
        assert_eq!(Route::Srflx.label(), "direct");
        assert_eq!(Route::Host.label(), "direct");
        assert_eq!(Route::Srflx.as_str(), "srflx");
    }
}
