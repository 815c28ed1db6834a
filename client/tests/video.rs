//! Camera video end to end on loopback: a real server, real WebRTC peers
//! (webrtc-rs), real H.264 (openh264), bots whose fake camera sends the test
//! pattern. A receiver reads the stamp drawn in a decoded picture, redraws
//! the picture that was sent and compares the two.
#![allow(clippy::unwrap_used)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::video::{VideoFrame, psnr, read_stamp, test_pattern};
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_shared::{TilePos, UserId};
use std::path::PathBuf;
use std::time::Duration;

mod common;
use common::Server;

fn video_bot(
    server: &Server,
    name: &str,
    camera: CameraSpec,
    at: TilePos,
    out: Option<PathBuf>,
) -> Bot {
    Bot::start(BotOptions {
        voice: Some(CallOptions::fakes(MicSpec::None, SpeakerSpec::None, camera)),
        start_at: Some(at),
        video_out: out,
        ..BotOptions::new(&server.addr, name)
    })
    .unwrap()
}

/// The picture that was sent for a decoded one, redrawn from its stamp.
fn sent_for(got: &VideoFrame) -> VideoFrame {
    test_pattern(read_stamp(got), got.width, got.height)
}

fn frames_from(bot: &Bot, peer: UserId) -> u64 {
    bot.video(peer).map_or(0, |v| v.frames)
}

#[test]
fn two_bots_exchange_video_while_near_and_it_stops_when_they_part() {
    let server = Server::start(false);
    let pngs = server.path("ann-video");
    std::fs::create_dir_all(&pngs).unwrap();
    let a = video_bot(
        &server,
        "Ann",
        CameraSpec::Pattern,
        TilePos::new(20, 9),
        Some(pngs.clone()),
    );
    let b = video_bot(
        &server,
        "Bo",
        CameraSpec::Pattern,
        TilePos::new(32, 9),
        None,
    );
    std::thread::sleep(Duration::from_millis(800));
    assert!(a.peers().is_empty(), "12 tiles apart and linked");
    assert!(a.video(b.user_id).is_none());
    let cam = a.report().camera.unwrap();
    assert!(
        cam.frames_captured > 5,
        "the camera runs (preview): {cam:?}"
    );
    assert_eq!(cam.frames_sent, 0, "nothing is encoded for nobody");

    // Bo walks to 4 tiles away: they connect and see each other.
    b.walk_to(TilePos::new(24, 9)).unwrap();
    for (me, them) in [(&a, &b), (&b, &a)] {
        assert!(
            me.wait_for(Duration::from_secs(10), |me| frames_from(me, them.user_id)
                >= 30),
            "no video from {:?}: {:?}",
            them.user_id,
            me.report().peers.get(&them.user_id.0)
        );
    }
    // The decoded picture is the one that was sent (two peers: 640×480).
    let got = a.video(b.user_id).unwrap().frame;
    assert_eq!((got.width, got.height), (640, 480));
    let p = psnr(&sent_for(&got), &got);
    assert!(p >= 30.0, "PSNR {p:.1} dB");
    let report = a.report();
    let bo = &report.peers[&b.user_id.0];
    assert!(bo.video_fps > 15.0, "{bo:?}");
    let (p50, _) = bo.pattern_latency_ms.unwrap();
    assert!((0.0..1000.0).contains(&p50), "capture to decode {p50} ms");
    assert_eq!(bo.first_video_ms.len(), 1);
    assert_eq!(bo.video_size, Some((640, 480)));
    // One PNG per second, readable, showing Bo's pattern.
    std::thread::sleep(Duration::from_millis(1200));
    let files = a.report().peers[&b.user_id.0].video_files.clone();
    assert!(!files.is_empty());
    let png = image::open(pngs.join(&files[0])).unwrap().to_rgb8();
    let png = VideoFrame {
        width: png.width() as usize,
        height: png.height() as usize,
        rgb: png.into_raw(),
    };
    assert!(psnr(&sent_for(&png), &png) >= 30.0);

    // Bo walks away beyond the leave radius: the link and the video end.
    b.walk_to(TilePos::new(32, 9)).unwrap();
    assert!(a.wait_for(Duration::from_secs(5), |a| a.peers().is_empty()));
    assert!(a.wait_for(Duration::from_secs(2), |a| a.video(b.user_id).is_none()));
    let (seen, sent) = (
        a.report().peers[&b.user_id.0].video_frames,
        b.report().camera.unwrap().frames_sent,
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        a.report().peers[&b.user_id.0].video_frames,
        seen,
        "video after parting"
    );
    assert_eq!(
        b.report().camera.unwrap().frames_sent,
        sent,
        "encoding for nobody"
    );
}

#[test]
fn more_peers_get_smaller_video_and_a_missing_camera_still_watches() {
    let server = Server::start(false);
    let a = video_bot(
        &server,
        "Ann",
        CameraSpec::Pattern,
        TilePos::new(22, 9),
        None,
    );
    // Bo has a camera that does not exist: a clear error, and he still sees Ann.
    let b = video_bot(
        &server,
        "Bo",
        CameraSpec::Named("No Such Camera".into()),
        TilePos::new(24, 9),
        None,
    );
    assert!(b.wait_for(Duration::from_secs(10), |b| frames_from(b, a.user_id) >= 10));
    assert_eq!(
        b.video(a.user_id).unwrap().frame.width,
        640,
        "one peer: 640×480"
    );
    let error = b.report().camera.unwrap().error.unwrap_or_default();
    assert!(
        error.contains("not found") || error.contains("no camera"),
        "{error:?}"
    );
    assert!(
        a.video(b.user_id).is_none(),
        "no picture from a missing camera"
    );

    // Two more people: Ann has three peers and sends 480×360 at 20 fps.
    let c = video_bot(&server, "Cy", CameraSpec::None, TilePos::new(23, 9), None);
    let d = video_bot(&server, "Di", CameraSpec::None, TilePos::new(25, 9), None);
    assert!(a.wait_for(Duration::from_secs(10), |a| a.connected().len() == 3));
    assert!(
        b.wait_for(Duration::from_secs(10), |b| {
            b.video(a.user_id).is_some_and(|v| v.frame.width == 480)
        }),
        "{:?}",
        a.report().camera
    );
    let got = b.video(a.user_id).unwrap().frame;
    assert_eq!(got.height, 360);
    assert!(psnr(&sent_for(&got), &got) >= 30.0);
    assert!(c.wait_for(Duration::from_secs(10), |c| frames_from(c, a.user_id) >= 5));
    assert_eq!(
        a.report().camera.unwrap().sending,
        Some((480, 360, 20, 500_000))
    );

    // Two leave: back to 640×480.
    drop(c);
    drop(d);
    assert!(
        b.wait_for(Duration::from_secs(10), |b| {
            b.video(a.user_id).is_some_and(|v| v.frame.width == 640)
        }),
        "{:?}",
        a.report().camera
    );
}

/// `hallway-bot` as a process: the command line sends, saves and reports
/// video; a sender killed mid-call disappears from the viewer.
#[test]
fn the_bot_command_saves_and_reports_video_and_a_vanished_sender_is_dropped() {
    let server = Server::start(false);
    let a = video_bot(
        &server,
        "Ann",
        CameraSpec::Pattern,
        TilePos::new(20, 9),
        None,
    );
    let dir = server.path("bo-video");
    let report_path = server.path("bo.json");
    let bot = |name: &str, stay: &str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hallway-bot"));
        cmd.args(["--server", &server.addr, "--name", name, "--path", "22,9"])
            .args([
                "--stay",
                stay,
                "--fake-camera",
                "pattern",
                "--loopback-only",
            ])
            .stdout(std::process::Stdio::null());
        cmd
    };
    let status = bot("Bo", "4")
        .arg("--video-out")
        .arg(&dir)
        .arg("--report")
        .arg(&report_path)
        .status()
        .unwrap();
    assert!(status.success());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let ann = &report["peers"][a.user_id.0.to_string()];
    assert!(ann["video_frames"].as_u64().unwrap() >= 30, "{ann}");
    assert!(ann["video_fps"].as_f64().unwrap() > 15.0, "{ann}");
    assert_eq!(ann["video_size"], serde_json::json!([640, 480]));
    assert!(report["camera"]["frames_sent"].as_u64().unwrap() >= 30);
    let files = ann["video_files"].as_array().unwrap();
    assert!(files.len() >= 2, "one PNG per second: {files:?}");
    for f in files {
        let png = image::open(dir.join(f.as_str().unwrap())).unwrap();
        assert_eq!((png.width(), png.height()), (640, 480));
    }
    // Bo left: his video is gone from Ann's view.
    assert!(a.wait_for(Duration::from_secs(5), |a| a.videos_len() == 0));

    // Cy is killed while sending: Ann drops his video too.
    let mut cy = bot("Cy", "60").spawn().unwrap();
    let seen = a.wait_for(Duration::from_secs(20), |a| a.videos_len() == 1);
    if !seen {
        let _ = cy.kill();
    }
    assert!(seen, "no video from the Cy process");
    cy.kill().unwrap();
    cy.wait().unwrap();
    assert!(a.wait_for(Duration::from_secs(15), |a| a.videos_len() == 0));
}
