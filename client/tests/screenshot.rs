//! The real app in a real window (Xvfb, Mesa's software Vulkan), in the same
//! space as a second client: the screenshot must show the map, both avatars
//! where they stand, and the side panel. `scripts/test` provides the display.
#![allow(clippy::unwrap_used)]

use hallway_client::core::api::Api;
use hallway_client::core::net::{self, NetEvent};
use hallway_client::media::video::{PATTERN_BARS, PATTERN_WHITE};
use hallway_server::{Config, RunningServer};
use hallway_shared::protocol::{ClientMessage, ServerMessage};
use hallway_shared::{Facing, SpaceId};
use image::RgbImage;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ASSETS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../assets");
/// The window and its centre (the camera follows the local avatar there).
const W: u32 = 1280;
const H: u32 = 800;
/// On-screen pixels per world unit at the default zoom (1 / 0.6).
const PX: f32 = 1.0 / 0.6;

fn colors(path: &Path, opaque_only: bool) -> Vec<[u8; 3]> {
    let img = image::open(path).unwrap().to_rgba8();
    let mut out: Vec<[u8; 3]> = img
        .pixels()
        .filter(|p| if opaque_only { p[3] == 255 } else { p[3] > 0 })
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn close(a: [u8; 3], b: [u8; 3], tol: i16) -> bool {
    (0..3).all(|i| (a[i] as i16 - b[i] as i16).abs() <= tol)
}

/// Pixels in the rectangle centred at (cx, cy) whose colour is within `tol`
/// of one of `palette`.
fn count(
    img: &RgbImage,
    (cx, cy): (f32, f32),
    (hw, hh): (u32, u32),
    palette: &[[u8; 3]],
    tol: i16,
) -> usize {
    let (x0, y0) = (
        (cx as u32).saturating_sub(hw),
        (cy as u32).saturating_sub(hh),
    );
    let mut n = 0;
    for y in y0..(y0 + 2 * hh).min(img.height()) {
        for x in x0..(x0 + 2 * hw).min(img.width()) {
            let p = img.get_pixel(x, y).0;
            if palette.iter().any(|c| close(p, *c, tol)) {
                n += 1;
            }
        }
    }
    n
}

/// Whether there is a display to run the app on (`scripts/test` provides
/// one and sets HALLWAY_REQUIRE_DISPLAY, so there it must not skip).
fn have_display() -> bool {
    if std::env::var_os("DISPLAY").is_some() {
        return true;
    }
    assert!(
        std::env::var_os("HALLWAY_REQUIRE_DISPLAY").is_none(),
        "HALLWAY_REQUIRE_DISPLAY is set but there is no DISPLAY"
    );
    eprintln!("skipped: no DISPLAY (scripts/test runs this under Xvfb)");
    false
}

/// A real server on port 0, with its runtime and data folder.
fn start_server() -> (tokio::runtime::Runtime, RunningServer, tempfile::TempDir) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = rt
        .block_on(RunningServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Config::new(data.path()),
        ))
        .unwrap();
    (rt, server, data)
}

/// Runs the app as Ann, walking to (12, 9) with `extra` flags, until it saves
/// its screenshot to target/tmp/`name` (kept there to look at); returns it.
fn screenshot(addr: &str, name: &str, extra: &[&str]) -> RgbImage {
    let dir = tempfile::tempdir().unwrap();
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new(env!("CARGO_BIN_EXE_hallway"))
        .args([
            "--server", addr, "--guest", "Ann", "--space", "Office", "--walk", "12,9",
        ])
        .args(extra)
        .arg("--screenshot")
        .arg(&shot)
        .env("HALLWAY_CONFIG_DIR", dir.path().join("config"))
        .env("HALLWAY_DATA_DIR", dir.path().join("data"))
        .env_remove("HALLWAY_SERVER")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "hallway --screenshot exited with {status}"
    );
    let img = image::open(&shot).unwrap().to_rgb8();
    assert_eq!((img.width(), img.height()), (W, H));
    img
}

#[test]
fn the_office_shows_the_map_both_avatars_and_the_side_panel() {
    if !have_display() {
        return;
    }
    let (rt, server, _data) = start_server();
    let addr = server.addr.to_string();

    // The second client stands two tiles right of where the app will stand.
    let api = Api::new(&addr);
    let auth = rt.block_on(api.guest("Bo")).unwrap();
    let api = api.with_token(auth.token.clone());
    let bo = net::spawn(rt.handle(), api.ws_url(), auth.token);
    bo.send(ClientMessage::join(SpaceId(1)));
    let map = rt.block_on(api.map(SpaceId(1))).unwrap();
    let mut here = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while here.is_none() && Instant::now() < deadline {
        if let Some(NetEvent::Message(m)) = bo.recv_timeout(Duration::from_millis(100))
            && let ServerMessage::Welcome { you, .. } = *m
        {
            here = Some(hallway_shared::TilePos::new(you.x, you.y));
        }
    }
    let mut pos = here.unwrap();
    let target = hallway_shared::TilePos::new(14, 9);
    while pos != target {
        use hallway_client::core::walk::{direction_towards, step};
        let dir = direction_towards(&map, pos, target).unwrap();
        pos = step(pos, dir);
        bo.send(ClientMessage::Move {
            x: pos.x,
            y: pos.y,
            facing: dir,
        });
        std::thread::sleep(Duration::from_millis(130));
    }
    bo.send(ClientMessage::Move {
        x: pos.x,
        y: pos.y,
        facing: Facing::Left,
    });

    let img = screenshot(&addr, "office.png", &[]);

    // Colours of people that the office tileset does not use.
    let tiles = colors(&Path::new(ASSETS).join("tilesets/office.png"), false);
    let people: Vec<[u8; 3]> = colors(&Path::new(ASSETS).join("sprites/avatars.png"), true)
        .into_iter()
        .filter(|c| !tiles.iter().any(|t| close(*c, *t, 6)))
        .collect();
    assert!(people.len() > 20, "the sprite sheet has its own colours");

    // The local avatar is at the window's centre; Bo two tiles (64 units) right.
    let (cx, cy) = (W as f32 / 2.0, H as f32 / 2.0);
    let me = count(&img, (cx, cy), (26, 40), &people, 3);
    let bo_px = count(&img, (cx + 64.0 * PX, cy), (26, 40), &people, 3);
    let empty = count(
        &img,
        (cx - 5.0 * 32.0 * PX, cy + 3.0 * 32.0 * PX),
        (26, 40),
        &people,
        3,
    );
    assert!(
        me > 150,
        "the local avatar is drawn at the centre ({me} px)"
    );
    assert!(
        bo_px > 150,
        "the other avatar is drawn two tiles to the right ({bo_px} px)"
    );
    assert!(
        empty * 5 < me.min(bo_px),
        "an empty spot has few people colours ({empty} px)"
    );

    // The map fills the view: many colours, no background showing.
    let clear = [41u8, 38, 48];
    let mut distinct = std::collections::HashSet::new();
    let mut background = 0;
    let mut total = 0;
    for y in (60..H - 20).step_by(3) {
        for x in (20..900).step_by(3) {
            let p = img.get_pixel(x, y).0;
            distinct.insert(p);
            background += usize::from(close(p, clear, 2));
            total += 1;
        }
    }
    assert!(
        distinct.len() > 60,
        "the map has detail ({} colours)",
        distinct.len()
    );
    assert!(
        background * 20 < total,
        "the map covers the view ({background} of {total} background)"
    );

    // The side panel: a solid panel colour over the right 320 px, not over the map.
    let panel_fill = *img.get_pixel(W - 10, H - 10);
    let share = |x0: u32, x1: u32| {
        let mut same = 0;
        let mut n = 0;
        for y in (100..H - 100).step_by(4) {
            for x in (x0..x1).step_by(4) {
                same += usize::from(close(img.get_pixel(x, y).0, panel_fill.0, 2));
                n += 1;
            }
        }
        same as f32 / n as f32
    };
    assert!(share(W - 300, W - 10) > 0.6, "the side panel is drawn");
    assert!(share(50, 850) < 0.1, "the map is not covered by the panel");

    drop(bo);
    rt.block_on(server.stop()).unwrap();
}

/// Pixels in the rectangle centred at `c` close to each of the test
/// pattern's cyan, magenta and yellow bars (colours the map does not use).
fn pattern_pixels(img: &RgbImage, c: (f32, f32), half: (u32, u32)) -> [usize; 3] {
    [PATTERN_BARS[2], PATTERN_BARS[4], PATTERN_BARS[1]].map(|bar| count(img, c, half, &[bar], 24))
}

/// Stretches of at least 120 px along row `y` made of the test pattern's bar
/// colours (gaps of up to 4 px allowed where bars meet): whole pictures.
fn pattern_runs(img: &RgbImage, y: u32) -> usize {
    let is_pattern = |p: [u8; 3]| {
        PATTERN_BARS
            .iter()
            .chain([&PATTERN_WHITE])
            .any(|c| close(p, *c, 30))
    };
    let (mut runs, mut len, mut gap) = (0, 0, 0);
    for x in 0..img.width() {
        let p = img.get_pixel(x, y).0;
        if is_pattern(p) {
            len += 1 + gap;
            gap = 0;
        } else if len > 0 && gap < 4 {
            gap += 1;
        } else {
            runs += usize::from(len >= 120);
            (len, gap) = (0, 0);
        }
    }
    runs + usize::from(len >= 120)
}

#[test]
fn video_shows_in_a_bubble_over_the_peer_and_in_the_strip() {
    use hallway_client::bot::{Bot, BotOptions};
    use hallway_client::call::CallOptions;
    use hallway_client::media::video::camera::CameraSpec;
    use hallway_client::media::{MicSpec, SpeakerSpec};
    if !have_display() {
        return;
    }
    let (rt, server, _data) = start_server();
    let addr = server.addr.to_string();
    // Bo, with the fake camera, two tiles right of where the app will stand.
    let bo = Bot::start(BotOptions {
        voice: Some(CallOptions {
            mic: MicSpec::None,
            speaker: SpeakerSpec::None,
            camera: CameraSpec::Pattern,
            camera_on: true,
            ..CallOptions::default()
        }),
        start_at: Some(hallway_shared::TilePos::new(14, 9)),
        space: Some("Office".into()),
        ..BotOptions::new(&addr, "Bo")
    })
    .unwrap();
    let img = screenshot(
        &addr,
        "office-video.png",
        &["--fake-camera", "pattern", "--audio-out", "none"],
    );
    let (cx, cy) = (W as f32 / 2.0, H as f32 / 2.0);
    // Bo's bubble: centred 62 units above his avatar, 64×48 units.
    let bubble = pattern_pixels(&img, (cx + 64.0 * PX, cy - 62.0 * PX), (48, 34));
    assert!(
        bubble.iter().all(|n| *n > 150),
        "Bo's bubble shows his video: {bubble:?}"
    );
    // No bubble over my own avatar (my picture is in the strip).
    let mine = pattern_pixels(&img, (cx, cy - 62.0 * PX), (48, 34));
    assert!(mine.iter().all(|n| *n < 20), "a bubble over me: {mine:?}");
    // The strip below the status bar: two pictures (me, Bo) side by side.
    let tiles = (80..120).map(|y| pattern_runs(&img, y)).max().unwrap_or(0);
    assert_eq!(tiles, 2, "pictures in the strip");
    let report = bo.stop();
    assert!(
        report.peers.values().any(|p| p.video_frames > 10),
        "Bo saw the app's camera too: {:?}",
        report.peers
    );
    rt.block_on(server.stop()).unwrap();
}
