//! CPU time of one frame with 500 remote avatars walking: the office's
//! avatar systems (apply presence, glide, animate, peer rings) in a headless
//! Bevy app, fed the presence batches a busy space sends (every avatar
//! stepping 4 times a second, batched at 20 Hz, frames at 60 Hz).
//!
//! Run: `cargo bench -p hallway-client --bench avatars -- [AVATARS]`

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use hallway_client::app::bridge::{Session, SpaceChanged};
use hallway_client::app::office::avatars::{
    AvatarAssets, AvatarIndex, animate_avatars, glide_avatars, show_peer_rings, sync_avatars,
};
use hallway_shared::protocol::{Member, Moved, Peer, ServerMessage, SpaceInfo, SpaceRules, Status};
use hallway_shared::proximity::ProximityConfig;
use hallway_shared::{Facing, SpaceId, UserId};
use std::time::{Duration, Instant};

fn member(id: i64, x: i32, y: i32) -> Member {
    Member {
        user_id: UserId(id),
        display_name: format!("Person {id}"),
        x,
        y,
        facing: Facing::Down,
        status: Status::Available,
        status_text: None,
    }
}

fn main() {
    let n: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(500);
    let mut app = App::new();
    app.add_plugins(MinimalPlugins);
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_micros(
        16_667,
    )));
    app.add_message::<SpaceChanged>();
    app.init_resource::<AvatarIndex>();
    app.insert_resource(AvatarAssets {
        sheet: Handle::default(),
        layout: Handle::default(),
        dot: Handle::default(),
        ring: Handle::default(),
    });
    app.insert_resource(Session::default());
    app.add_systems(
        Update,
        (
            sync_avatars,
            glide_avatars,
            animate_avatars,
            show_peer_rings,
        )
            .chain(),
    );

    // Everyone on a 40×25 area; I am user 0.
    let mut pos: Vec<(i32, i32)> = (0..=n)
        .map(|i| ((i % 40) as i32, (i / 40) as i32))
        .collect();
    let welcome = ServerMessage::Welcome {
        protocol: 1,
        you: member(0, pos[0].0, pos[0].1),
        space: SpaceInfo {
            id: SpaceId(1),
            name: "Office".into(),
            private: false,
            invite_code: None,
            map: "office".into(),
            online: n as usize + 1,
        },
        members: (0..=n)
            .map(|i| member(i, pos[i as usize].0, pos[i as usize].1))
            .collect(),
        rules: SpaceRules {
            proximity: ProximityConfig::default(),
            max_steps_per_second: 8.0,
            step_burst: 4.0,
        },
        ice_servers: vec![],
    };
    let feed = |app: &mut App, msg: &ServerMessage| {
        let changes = app
            .world_mut()
            .resource_mut::<Session>()
            .client
            .space
            .apply(msg);
        for c in changes {
            app.world_mut().write_message(SpaceChanged(c));
        }
    };
    feed(&mut app, &welcome);
    feed(
        &mut app,
        &ServerMessage::Proximity {
            peers: (1..=6)
                .map(|i| Peer {
                    user_id: UserId(i),
                    offerer: false,
                })
                .collect(),
        },
    );
    app.update();
    app.update();

    let frames = 1200;
    let mut times = Vec::with_capacity(frames);
    let mut seed = 12345u64;
    for frame in 0..frames {
        // Every third frame (20 Hz), a presence batch: each person takes a
        // step with probability 4/20 per batch.
        if frame % 3 == 0 {
            let mut moved = Vec::new();
            for (i, p) in pos.iter_mut().enumerate().skip(1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if seed.is_multiple_of(5) {
                    p.0 += if seed.is_multiple_of(2) { 1 } else { -1 };
                    moved.push(Moved {
                        user_id: UserId(i as i64),
                        x: p.0,
                        y: p.1,
                        facing: Facing::Right,
                    });
                }
            }
            feed(
                &mut app,
                &ServerMessage::Presence {
                    joined: vec![],
                    moved,
                    updated: vec![],
                    left: vec![],
                },
            );
        }
        let start = Instant::now();
        app.update();
        times.push(start.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!("avatars: one frame with {n} remote avatars walking (whole app.update(), headless)");
    println!(
        "frames {frames}  mean {:.3} ms  p50 {:.3} ms  p95 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        ms(mean),
        ms(times[frames / 2]),
        ms(times[frames * 95 / 100]),
        ms(times[frames * 99 / 100]),
        ms(times[frames - 1]),
    );
}
