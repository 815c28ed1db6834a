//! Walking: the keyboard writes an intent, `apply_movement` turns it into
//! steps. Each step is predicted locally (the avatar starts moving at once)
//! and sent to the server, which corrects us if it disagrees.

use super::OfficeMap;
use super::avatars::{Avatar, Glide, LocalAvatar, avatar_position};
use crate::app::bridge::{Session, SpaceChanged};
use crate::app::input::UiFocus;
use crate::app::screens::Screen;
use crate::core::space::Change;
use crate::core::walk::{self, direction_towards, parse_route, plan_step};
use bevy::prelude::*;
use hallway_shared::protocol::ClientMessage;
use hallway_shared::{Facing, TilePos};

/// Seconds per step, as a float for the glide animation.
pub const STEP_SECONDS: f32 = walk::STEP.as_millis() as f32 / 1000.0;

/// Which way the player wants to go this frame.
#[derive(Resource, Debug, Default, Clone, Copy, PartialEq)]
pub struct MoveIntent(pub Option<Facing>);

/// Steps queued by a script (`--walk`) or a click; followed before keys.
#[derive(Resource, Debug, Default)]
pub struct Route(pub Vec<TilePos>);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<MoveIntent>();
    app.init_resource::<Route>();
    app.add_systems(OnEnter(Screen::Office), start_scripted_walk);
    app.add_systems(
        Update,
        record_movement_input
            .in_set(crate::app::AppSet::Input)
            .run_if(in_state(Screen::Office)),
    );
    app.add_systems(
        Update,
        (correct_position, apply_movement)
            .chain()
            .in_set(crate::app::AppSet::Apply)
            .after(super::avatars::sync_avatars)
            .run_if(in_state(Screen::Office)),
    );
}

/// `--walk`: the route to follow once in the office.
fn start_scripted_walk(args: Res<crate::app::args::Args>, mut route: ResMut<Route>) {
    if let Some(walk) = &args.walk {
        route.0 = parse_route(walk).unwrap_or_default();
    }
}

pub fn record_movement_input(
    keys: Res<ButtonInput<KeyCode>>,
    focus: Res<UiFocus>,
    mut intent: ResMut<MoveIntent>,
) {
    intent.0 = None;
    if focus.keyboard {
        return;
    }
    let pressed = |a, b| keys.pressed(a) || keys.pressed(b);
    intent.0 = if pressed(KeyCode::ArrowUp, KeyCode::KeyW) {
        Some(Facing::Up)
    } else if pressed(KeyCode::ArrowDown, KeyCode::KeyS) {
        Some(Facing::Down)
    } else if pressed(KeyCode::ArrowLeft, KeyCode::KeyA) {
        Some(Facing::Left)
    } else if pressed(KeyCode::ArrowRight, KeyCode::KeyD) {
        Some(Facing::Right)
    } else {
        None
    };
}

/// Starts the next step when the previous one is done.
pub fn apply_movement(
    intent: Res<MoveIntent>,
    mut route: ResMut<Route>,
    map: Option<Res<OfficeMap>>,
    session: Res<Session>,
    mut player: Query<(&mut Avatar, &mut Glide, &Transform), With<LocalAvatar>>,
) {
    let Some(map) = map else { return };
    let Ok((mut avatar, mut glide, transform)) = player.single_mut() else {
        return;
    };
    if glide.is_moving() {
        return;
    }
    while route.0.first() == Some(&avatar.tile) {
        route.0.remove(0);
    }
    let want = match route.0.first() {
        Some(&target) => direction_towards(&map.0, avatar.tile, target).or_else(|| {
            info!("no way from {:?} to {target:?}; route dropped", avatar.tile);
            route.0.clear();
            None
        }),
        None => intent.0,
    };
    let Some(want) = want else { return };
    let (to, facing) = plan_step(&map.0, avatar.tile, want);
    match to {
        Some(to) => {
            debug!("step {:?} -> {to:?}", avatar.tile);
            avatar.tile = to;
            avatar.facing = facing;
            *glide = Glide::towards(
                transform.translation.truncate(),
                avatar_position(to),
                STEP_SECONDS,
            );
            session.send(ClientMessage::Move {
                x: to.x,
                y: to.y,
                facing,
            });
        }
        None if avatar.facing != facing => {
            avatar.facing = facing;
            session.send(ClientMessage::Move {
                x: avatar.tile.x,
                y: avatar.tile.y,
                facing,
            });
        }
        None => {}
    }
}

/// The server refused a step: go back to where it says we are.
pub fn correct_position(
    mut changes: MessageReader<SpaceChanged>,
    mut route: ResMut<Route>,
    mut player: Query<(&mut Avatar, &mut Glide), With<LocalAvatar>>,
) {
    for SpaceChanged(change) in changes.read() {
        if let Change::Corrected(tile) = change
            && let Ok((mut avatar, mut glide)) = player.single_mut()
        {
            info!(
                "the server put us back at {tile:?} (we thought {:?})",
                avatar.tile
            );
            avatar.tile = *tile;
            *glide = Glide::at_rest(avatar_position(*tile));
            route.0.clear();
        }
    }
}
