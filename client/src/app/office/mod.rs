//! The office: the map, the avatars, walking, and the camera.

pub mod avatars;
pub mod camera;
pub mod map;
pub mod movement;

use super::bridge::{Bridge, Reply, ReplyMessage, Session};
use super::screens::{Entering, Screen};
use bevy::prelude::*;
use hallway_shared::protocol::ClientMessage;
use hallway_shared::{MapModel, TilePos};

/// Pixels per tile in world units (the maps use 32×32 tiles).
pub const TILE: f32 = 32.0;

/// The centre of tile `p` in world coordinates (y up, the map's top-left at the origin).
pub fn tile_center(p: TilePos) -> Vec2 {
    Vec2::new(
        p.x as f32 * TILE + TILE / 2.0,
        -(p.y as f32 * TILE + TILE / 2.0),
    )
}

/// The map of the space we are in, for walkability and zones.
#[derive(Resource, Clone)]
pub struct OfficeMap(pub std::sync::Arc<MapModel>);

pub(super) fn plugin(app: &mut App) {
    app.add_plugins((
        map::plugin,
        avatars::plugin,
        movement::plugin,
        camera::plugin,
    ));
    app.add_systems(OnEnter(Screen::Office), enter_space);
    app.add_systems(OnExit(Screen::Office), leave_space);
    app.add_systems(
        Update,
        handle_office_replies
            .in_set(super::AppSet::Receive)
            .run_if(in_state(Screen::Office)),
    );
}

fn enter_space(entering: Option<Res<Entering>>, mut session: ResMut<Session>, bridge: Res<Bridge>) {
    let Some(Entering(space)) = entering.map(|e| *e) else {
        return;
    };
    session.client.map = None;
    session.send(ClientMessage::join(space));
    let Some(api) = session.api.clone() else {
        return;
    };
    let a = api.clone();
    bridge.spawn(async move { Reply::Map(space, a.map(space).await) });
    let a = api.clone();
    bridge.spawn(async move { Reply::Channels(a.channels(space).await) });
    bridge.spawn(async move { Reply::Channels(api.direct_channels().await) });
}

fn leave_space(mut commands: Commands, mut session: ResMut<Session>) {
    session.send(ClientMessage::Leave);
    session.client.space.clear();
    session.client.map = None;
    commands.remove_resource::<OfficeMap>();
}

fn handle_office_replies(
    mut commands: Commands,
    mut replies: MessageReader<ReplyMessage>,
    mut session: ResMut<Session>,
    bridge: Res<Bridge>,
) {
    for ReplyMessage(reply) in replies.read() {
        match reply {
            Reply::Map(_, Ok(map)) => {
                commands.insert_resource(OfficeMap(std::sync::Arc::new(map.clone())));
                session.client.map = Some(std::sync::Arc::new(map.clone()));
            }
            Reply::Channels(Ok(channels)) => {
                session.client.chat.set_channels(channels.iter().cloned());
                // Load the newest page of each channel once.
                let Some(api) = session.api.clone() else {
                    continue;
                };
                for c in channels {
                    let (api, id) = (api.clone(), c.id);
                    bridge
                        .spawn(async move { Reply::History(id, api.messages(id, None, 50).await) });
                }
            }
            Reply::History(channel, Ok(page)) => {
                session
                    .client
                    .chat
                    .add_history(*channel, &page.messages, page.has_more);
            }
            Reply::DirectOpened(Ok(channel)) => {
                let id = channel.id;
                session.client.chat.set_channels([channel.clone()]);
                session.client.chat.open(id);
                if let Some(api) = session.api.clone() {
                    bridge
                        .spawn(async move { Reply::History(id, api.messages(id, None, 50).await) });
                }
            }
            Reply::Map(_, Err(e))
            | Reply::Channels(Err(e))
            | Reply::History(_, Err(e))
            | Reply::DirectOpened(Err(e)) => {
                session.client.chat.notices.push(e.to_string());
            }
            _ => {}
        }
    }
}
