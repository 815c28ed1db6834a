//! The bridge between Bevy and the network runtime, the matchbox way: a tokio
//! runtime on its own threads, async work spawned onto it, results sent back
//! over a crossbeam channel and drained each frame. Nothing here blocks a
//! Bevy system.

use crate::app::host::{HostError, HostedServer};
use crate::call::{Call, CallOptions};
use crate::client::{Client, Update};
use crate::core::api::{Api, ApiError};
use crate::core::net::{self, NetEvent, NetHandle};
use crate::core::settings::Settings;
use crate::core::space::Change;
use crate::media::video::camera::CameraSpec;
use crate::media::{MicSpec, SpeakerSpec};
use bevy::prelude::*;
use hallway_shared::protocol::{AuthResponse, ChannelInfo, ClientMessage, MessagePage, SpaceInfo};
use hallway_shared::{ChannelId, MapModel, SpaceId};
use std::future::Future;

/// Results of async work, delivered to Bevy.
#[derive(Debug)]
pub enum Reply {
    Hosted(Result<(String, Vec<String>), HostError>),
    LoggedIn {
        server: String,
        result: Result<AuthResponse, ApiError>,
    },
    /// A remembered token was checked.
    Resumed {
        server: String,
        token: String,
        result: Result<hallway_shared::protocol::UserInfo, ApiError>,
    },
    Spaces(Result<Vec<SpaceInfo>, ApiError>),
    SpaceCreated(Result<SpaceInfo, ApiError>),
    Map(SpaceId, Result<MapModel, ApiError>),
    Channels(Result<Vec<ChannelInfo>, ApiError>),
    History(ChannelId, Result<MessagePage, ApiError>),
    DirectOpened(Result<ChannelInfo, ApiError>),
}

/// A Bevy message for each change in the space state.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct SpaceChanged(pub Change);

/// A server message worth a Bevy message of its own (errors, connection changes).
#[derive(Message, Debug, Clone)]
pub struct Connection(pub NetEvent);

#[derive(Resource)]
pub struct Bridge {
    rt: tokio::runtime::Runtime,
    tx: crossbeam_channel::Sender<Reply>,
    rx: crossbeam_channel::Receiver<Reply>,
}

impl Bridge {
    fn new() -> Bridge {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hallway-net")
            .enable_all()
            .build()
            .expect("cannot start the network runtime");
        let (tx, rx) = crossbeam_channel::unbounded();
        Bridge { rt, tx, rx }
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// Runs `work` on the network runtime and delivers its reply to [`drain_replies`].
    pub fn spawn(&self, work: impl Future<Output = Reply> + Send + 'static) {
        let tx = self.tx.clone();
        self.rt.spawn(async move {
            let _ = tx.send(work.await);
        });
    }
}

/// The logged-in session: who, where, and the live connection.
#[derive(Resource, Default)]
pub struct Session {
    pub api: Option<Api>,
    pub user: Option<hallway_shared::protocol::UserInfo>,
    pub net: Option<NetHandle>,
    /// The space, chat and call state, fed by the one message pump.
    pub client: Client,
    pub status: ConnectionStatus,
    /// Set when the app hosts the server.
    pub hosted: Option<HostedInfo>,
    pub settings: Settings,
    pub error: Option<String>,
    /// Devices from the command line (fakes), which override the settings.
    pub fake_mic: Option<MicSpec>,
    pub fake_speaker: Option<SpeakerSpec>,
    pub fake_camera: Option<CameraSpec>,
    pub fake_room: Option<crate::media::room::RoomSpec>,
    pub voice_error: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct HostedInfo {
    pub local_url: String,
    pub lan_urls: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum ConnectionStatus {
    #[default]
    Offline,
    Connecting {
        attempt: u32,
    },
    Online,
    Retrying {
        reason: String,
        at: f64,
    },
    Replaced,
}

impl Session {
    pub fn send(&self, msg: ClientMessage) {
        if let Some(net) = &self.net {
            net.send(msg);
        }
    }

    /// Opens the WebSocket session with the current API's token.
    pub fn connect(&mut self, bridge: &Bridge) {
        let Some(api) = &self.api else { return };
        let Some(token) = api.token() else { return };
        let net = net::spawn(&bridge.handle(), api.ws_url(), token.to_owned());
        let sender = net.sender();
        self.net = Some(net);
        self.client.chat = crate::core::chat::ChatState::new();
        self.start_voice(bridge, sender);
    }

    /// The voice options from the settings and the command line.
    pub fn voice_options(&self) -> CallOptions {
        let audio = &self.settings.audio;
        CallOptions {
            mic: self.fake_mic.clone().unwrap_or_else(|| {
                audio
                    .input_device
                    .clone()
                    .map_or(MicSpec::Default, MicSpec::Named)
            }),
            speaker: self.fake_speaker.clone().unwrap_or_else(|| {
                audio
                    .output_device
                    .clone()
                    .map_or(SpeakerSpec::Default, SpeakerSpec::Named)
            }),
            processing: audio.processing(),
            rtc: crate::rtc::RtcOptions {
                relay_only: audio.always_relay,
                ..Default::default()
            },
            camera: self.fake_camera.clone().unwrap_or_else(|| {
                self.settings
                    .video
                    .camera
                    .clone()
                    .map_or(CameraSpec::Default, CameraSpec::Named)
            }),
            // A fake camera is asked for to be seen.
            camera_on: self.settings.video.camera_on || self.fake_camera.is_some(),
            video_tap: None,
            room: self.fake_room,
            // A microphone that goes away gives way to the system's default.
            fallback_mic: None,
            fallback_speaker: None,
            sounds: audio.sounds,
        }
    }

    fn start_voice(&mut self, bridge: &Bridge, sender: net::NetSender) {
        // The old call (and its peer connections) goes first.
        self.client.call = None;
        let out = crate::rtc::SignalOut::through(sender);
        match Call::start(&bridge.handle(), self.voice_options(), out) {
            Ok(mut voice) => {
                let audio = &self.settings.audio;
                voice.set_muted(audio.muted);
                voice.set_push_to_talk(audio.push_to_talk);
                for (user, volume) in &audio.volumes {
                    voice.set_volume(hallway_shared::UserId(*user), *volume);
                }
                self.client.call = Some(voice);
                self.voice_error = None;
            }
            Err(e) => self.voice_error = Some(format!("voice is off: {e}")),
        }
    }
}

/// The hosted server lives as long as the app.
#[derive(Resource, Default)]
pub struct Hosted(pub Option<HostedServer>);

pub(super) fn plugin(app: &mut App) {
    app.insert_resource(Bridge::new());
    let args = app
        .world()
        .get_resource::<super::args::Args>()
        .cloned()
        .unwrap_or_default();
    app.insert_resource(Session {
        settings: Settings::load(),
        client: Client::new(),
        fake_mic: args
            .fake_mic
            .as_deref()
            .and_then(|s| MicSpec::parse_fake(s).ok()),
        fake_speaker: args
            .audio_out
            .as_deref()
            .and_then(|s| SpeakerSpec::parse(s).ok()),
        fake_camera: args
            .fake_camera
            .as_deref()
            .and_then(|s| CameraSpec::parse_fake(s).ok()),
        fake_room: args
            .fake_room
            .as_deref()
            .and_then(|s| crate::media::room::RoomSpec::parse(s).ok()),
        ..default()
    });
    app.init_resource::<Hosted>();
    app.add_message::<SpaceChanged>();
    app.add_message::<Connection>();
    app.add_message::<ReplyMessage>();
    app.add_systems(
        Update,
        (drain_replies, drain_network).in_set(super::AppSet::Receive),
    );
}

/// Replies as Bevy messages, for the screens to react to.
#[derive(Message, Debug)]
pub struct ReplyMessage(pub Reply);

fn drain_replies(bridge: Res<Bridge>, mut out: MessageWriter<ReplyMessage>) {
    while let Ok(reply) = bridge.rx.try_recv() {
        out.write(ReplyMessage(reply));
    }
}

/// Applies everything the server sent since the last frame, through the
/// message pump, and turns what it did into Bevy messages.
fn drain_network(
    mut session: ResMut<Session>,
    time: Res<Time>,
    mut changes: MessageWriter<SpaceChanged>,
    mut connection: MessageWriter<Connection>,
) {
    let session = &mut *session;
    let Some(net) = &session.net else { return };
    while let Some(event) = net.try_recv() {
        for update in session.client.absorb(event, net) {
            match update {
                Update::Space(change) => {
                    changes.write(SpaceChanged(change));
                }
                Update::Connection(event) => {
                    session.status = match &event {
                        NetEvent::Connecting { attempt } => {
                            ConnectionStatus::Connecting { attempt: *attempt }
                        }
                        NetEvent::Connected => ConnectionStatus::Online,
                        NetEvent::Disconnected { reason, retry_in } => ConnectionStatus::Retrying {
                            reason: reason.clone(),
                            at: time.elapsed_secs_f64() + retry_in.as_secs_f64(),
                        },
                        NetEvent::Replaced => ConnectionStatus::Replaced,
                        NetEvent::Unauthorized => {
                            session.error =
                                Some("Your session has ended; please log in again.".into());
                            ConnectionStatus::Offline
                        }
                        NetEvent::Message(_) => continue,
                    };
                    connection.write(Connection(event));
                }
                // Played by the call already.
                Update::Cue(_) => {}
            }
        }
    }
}
