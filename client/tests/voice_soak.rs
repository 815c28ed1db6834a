//! Call soak: 200 connect/leave cycles between two bots (voice both ways,
//! video one way, each cycle waiting for a decoded picture), in a process of
//! its own so that the resident set size it reports is the cycles' alone.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Server, voice_bot};
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_shared::TilePos;
use std::time::Duration;

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn two_hundred_connect_leave_cycles_do_not_leak() {
    let server = Server::start(true);
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), None);
    let b = Bot::start(BotOptions {
        step: Duration::from_millis(10),
        ..BotOptions {
            voice: Some(CallOptions::fakes(
                MicSpec::Tone(1000.0),
                SpeakerSpec::None,
                CameraSpec::Pattern,
            )),
            start_at: Some(TilePos::new(27, 9)),
            ..BotOptions::new(&server.addr, "Bo")
        }
    })
    .unwrap();
    let (near, far) = (TilePos::new(25, 9), TilePos::new(27, 9));
    let mut rss = Vec::new();
    for cycle in 0..200 {
        b.walk_to(near).unwrap();
        assert!(
            a.wait_for(Duration::from_secs(10), |a| a
                .connected()
                .contains(&b.user_id)
                && a.video(b.user_id).is_some()),
            "cycle {cycle}: no connection or no picture"
        );
        b.walk_to(far).unwrap();
        assert!(
            a.wait_for(Duration::from_secs(10), |a| a.connected().is_empty()
                && a.videos_len() == 0),
            "cycle {cycle}: not closed"
        );
        if cycle == 19 || cycle == 199 {
            std::thread::sleep(Duration::from_millis(500));
            rss.push(rss_kib());
        }
    }
    let grew = rss[1] as i64 - rss[0] as i64;
    println!(
        "RSS after 20 cycles {} KiB, after 200 {} KiB: {:+} KiB over 180 cycles",
        rss[0], rss[1], grew
    );
    let report = a.stop();
    assert_eq!(report.peers[&b.user_id.0].linked_at.len(), 200);
    // A leaked peer connection (ICE agent, DTLS, SRTP, buffers, decoders)
    // costs hundreds of KiB (a video decoder alone a few MiB); 180 of them
    // would be tens of MiB.
    assert!(grew < 16 * 1024, "RSS grew {grew} KiB over 180 cycles");
}
