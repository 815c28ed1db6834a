//! Bevy-level tests with MinimalPlugins: walking with local prediction, the
//! server's corrections, and remote avatars gliding between updates.
#![allow(clippy::unwrap_used)]

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use hallway_client::app::bridge::{Session, SpaceChanged};
use hallway_client::app::office::OfficeMap;
use hallway_client::app::office::avatars::{
    Avatar, GLIDE_SECONDS, Glide, LocalAvatar, avatar_position, glide_avatars, retarget,
};
use hallway_client::app::office::movement::{
    MoveIntent, Route, STEP_SECONDS, apply_movement, correct_position,
};
use hallway_client::core::net::{self, Detached};
use hallway_client::core::space::Change;
use hallway_shared::map::Zone;
use hallway_shared::protocol::{ClientMessage, Member, Status};
use hallway_shared::{Facing, MapModel, TilePos, UserId, ZoneId};
use std::sync::Arc;
use std::time::Duration;

/// A 6×3 room: walls around, one pillar at (3,1).
fn small_map() -> MapModel {
    let (w, h) = (6, 3);
    let mut blocked = vec![false; (w * h) as usize];
    for x in 0..w {
        blocked[x as usize] = true;
        blocked[((h - 1) * w + x) as usize] = true;
    }
    blocked[(w + 3) as usize] = true;
    blocked[w as usize] = true;
    blocked[(2 * w - 1) as usize] = true;
    MapModel {
        name: "test".into(),
        width: w,
        height: h,
        tile_width: 32,
        tile_height: 32,
        layers: vec![],
        tilesets: vec![],
        blocked,
        zones: vec![Zone {
            id: ZoneId(0),
            name: "Nook".into(),
            kind: "meeting".into(),
            x: 4,
            y: 1,
            width: 1,
            height: 1,
        }],
        spawns: vec![TilePos::new(1, 1)],
    }
}

/// An app with the movement systems, a detached session, and a local avatar at (1,1).
fn movement_app() -> (App, Detached, Entity) {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins);
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
        50,
    )));
    app.add_message::<SpaceChanged>();
    app.init_resource::<MoveIntent>();
    app.init_resource::<Route>();
    app.insert_resource(OfficeMap(Arc::new(small_map())));
    let (handle, detached) = net::detached();
    app.insert_resource(Session {
        net: Some(handle),
        ..Default::default()
    });
    app.add_systems(
        Update,
        (correct_position, apply_movement, glide_avatars).chain(),
    );
    let tile = TilePos::new(1, 1);
    let player = app
        .world_mut()
        .spawn((
            Avatar {
                user: UserId(1),
                tile,
                facing: Facing::Down,
                variant: 0,
            },
            LocalAvatar,
            Glide::at_rest(avatar_position(tile)),
            Transform::from_translation(avatar_position(tile).extend(0.0)),
        ))
        .id();
    app.update(); // the first update has no elapsed time
    (app, detached, player)
}

fn avatar(app: &App, e: Entity) -> (TilePos, Facing, Vec2) {
    let a = app.world().get::<Avatar>(e).unwrap();
    let t = app.world().get::<Transform>(e).unwrap();
    (a.tile, a.facing, t.translation.truncate())
}

#[test]
fn a_step_is_predicted_at_once_and_sent() {
    let (mut app, mut far, player) = movement_app();
    app.world_mut().resource_mut::<MoveIntent>().0 = Some(Facing::Right);
    app.update();
    let (tile, facing, pos) = avatar(&app, player);
    assert_eq!(
        tile,
        TilePos::new(2, 1),
        "the tile changes before the server answers"
    );
    assert_eq!(facing, Facing::Right);
    assert!(
        pos.x > avatar_position(TilePos::new(1, 1)).x,
        "and the avatar starts moving"
    );
    assert_eq!(
        far.sent(),
        vec![ClientMessage::Move {
            x: 2,
            y: 1,
            facing: Facing::Right
        }]
    );
    // Holding the key: the next step starts only when this one has finished.
    app.update();
    assert!(far.sent().is_empty());
    for _ in 0..(STEP_SECONDS / 0.05) as usize {
        app.update();
    }
    assert_eq!(avatar(&app, player).2, avatar_position(TilePos::new(2, 1)));
}

#[test]
fn walls_turn_you_instead_of_moving_you() {
    let (mut app, mut far, player) = movement_app();
    app.world_mut().resource_mut::<MoveIntent>().0 = Some(Facing::Up);
    app.update();
    let (tile, facing, _) = avatar(&app, player);
    assert_eq!((tile, facing), (TilePos::new(1, 1), Facing::Up));
    assert_eq!(
        far.sent(),
        vec![ClientMessage::Move {
            x: 1,
            y: 1,
            facing: Facing::Up
        }],
        "a turn is sent as a move to the same tile"
    );
    app.update();
    assert!(far.sent().is_empty(), "no repeated turns");
}

#[test]
fn the_server_correction_wins() {
    let (mut app, _far, player) = movement_app();
    app.world_mut().resource_mut::<MoveIntent>().0 = Some(Facing::Right);
    app.update();
    app.world_mut().resource_mut::<MoveIntent>().0 = None;
    app.world_mut()
        .write_message(SpaceChanged(Change::Corrected(TilePos::new(1, 1))));
    app.update();
    let (tile, _, pos) = avatar(&app, player);
    assert_eq!(tile, TilePos::new(1, 1));
    assert_eq!(pos, avatar_position(TilePos::new(1, 1)), "snapped back");
}

#[test]
fn a_route_is_followed_around_obstacles() {
    let (mut app, mut far, player) = movement_app();
    // (4,1) is behind the pillar at (3,1): the way goes through row... there is
    // none in a 3-high room, so the route is dropped; (2,1) is reachable.
    app.world_mut().resource_mut::<Route>().0 = vec![TilePos::new(2, 1)];
    for _ in 0..10 {
        app.update();
    }
    assert_eq!(avatar(&app, player).0, TilePos::new(2, 1));
    assert_eq!(far.sent().len(), 1);
    app.world_mut().resource_mut::<Route>().0 = vec![TilePos::new(4, 1)];
    app.update();
    assert!(
        app.world().resource::<Route>().0.is_empty(),
        "unreachable targets are dropped"
    );
}

#[test]
fn remote_avatars_glide_between_updates_and_snap_on_jumps() {
    let mut app = App::new();
    app.add_plugins(MinimalPlugins);
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_millis(
        50,
    )));
    app.add_systems(Update, glide_avatars);
    let start = TilePos::new(5, 5);
    let e = app
        .world_mut()
        .spawn((
            Avatar {
                user: UserId(2),
                tile: start,
                facing: Facing::Down,
                variant: 1,
            },
            Glide::at_rest(avatar_position(start)),
            Transform::from_translation(avatar_position(start).extend(0.0)),
        ))
        .id();
    app.update();
    let member = |x, y| Member {
        user_id: UserId(2),
        display_name: "Bo".into(),
        x,
        y,
        facing: Facing::Right,
        status: Status::Available,
        status_text: None,
    };
    // One tile to the right: it glides there over GLIDE_SECONDS.
    {
        let world = app.world_mut();
        let mut q = world.query::<(&mut Avatar, &mut Glide, &Transform)>();
        let (mut a, mut g, t) = q.get_mut(world, e).unwrap();
        retarget(&mut a, &mut g, t, &member(6, 5));
    }
    app.update();
    let x0 = avatar_position(start).x;
    let x1 = avatar_position(TilePos::new(6, 5)).x;
    let x = app.world().get::<Transform>(e).unwrap().translation.x;
    assert!(x > x0 && x < x1, "halfway-ish: {x0} < {x} < {x1}");
    for _ in 0..((GLIDE_SECONDS / 0.05).ceil() as usize) {
        app.update();
    }
    assert_eq!(app.world().get::<Transform>(e).unwrap().translation.x, x1);
    assert_eq!(app.world().get::<Avatar>(e).unwrap().facing, Facing::Right);
    // A jump of 10 tiles (a rejoin elsewhere) snaps.
    {
        let world = app.world_mut();
        let mut q = world.query::<(&mut Avatar, &mut Glide, &Transform)>();
        let (mut a, mut g, t) = q.get_mut(world, e).unwrap();
        retarget(&mut a, &mut g, t, &member(16, 5));
    }
    app.update();
    let x = app.world().get::<Transform>(e).unwrap().translation.x;
    assert_eq!(x, avatar_position(TilePos::new(16, 5)).x);
}
