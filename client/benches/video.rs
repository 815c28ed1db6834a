//! Video figures.
//!
//! - `codec`: H.264 encode and decode time per frame (openh264, the fake
//!   camera's test pattern) at 320×240 and 640×480, and the bitrate the
//!   encoder holds;
//! - `call`: through the whole pipeline on loopback (a real server, bots,
//!   webrtc-rs peers): glass-to-glass latency from the stamp drawn in each
//!   picture (capture → decoded, both clocks this machine's), time from
//!   entering range to the first picture, frames per second and bitrate on
//!   the wire, with one viewer and with five (the ladder's 640×480@30 and
//!   320×240@15), and the CPU the whole process used.
//!
//! Run: `cargo bench -p hallway-client --bench video -- [codec] [call]`
//! (default: both).

mod common;

use common::cpu_seconds;
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::video::{Stamp, VideoDecoder, VideoEncoder, psnr, test_pattern};
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_shared::TilePos;
use std::time::{Duration, Instant};

/// Adds sensor-like noise (±`amount`, different every frame), which makes
/// the pattern cost what a camera picture costs.
fn grain(frame: &mut hallway_client::media::video::VideoFrame, seed: u64, amount: i16) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for v in &mut frame.rgb {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let d = (x % (2 * amount as u64 + 1)) as i16 - amount;
        *v = (i16::from(*v) + d).clamp(0, 255) as u8;
    }
}

fn codec() {
    for (w, h, fps, bitrate, noise) in [
        (320, 240, 15.0, 300_000, 0),
        (640, 480, 30.0, 800_000, 0),
        (320, 240, 15.0, 300_000, 6),
        (640, 480, 30.0, 800_000, 6),
    ] {
        let mut enc = VideoEncoder::new(bitrate, fps).expect("encoder");
        let mut dec = VideoDecoder::new().expect("decoder");
        let frames = 300u64;
        let (mut enc_t, mut dec_t) = (Vec::new(), Vec::new());
        let (mut bytes, mut psnr_sum, mut decoded) = (0usize, 0.0, 0u32);
        for n in 0..frames {
            let mut frame = test_pattern(Stamp::now(n), w, h);
            if noise > 0 {
                grain(&mut frame, n, noise);
            }
            let t = Instant::now();
            let au = enc.encode(&frame).expect("encode");
            enc_t.push(t.elapsed());
            bytes += au.data.len();
            if au.data.is_empty() {
                continue;
            }
            let t = Instant::now();
            let got = dec.decode(&au.data).expect("decode");
            dec_t.push(t.elapsed());
            if let Some(got) = got {
                psnr_sum += psnr(&frame, &got);
                decoded += 1;
            }
        }
        let ms = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
        };
        let kbps = bytes as f64 * 8.0 / (frames as f64 / f64::from(fps)) / 1000.0;
        println!(
            "{w}x{h}@{fps}{}: encode p50 {:.2} ms p95 {:.2} ms; decode p50 {:.2} ms p95 {:.2} ms; {kbps:.0} kbit/s (target {}); mean PSNR {:.1} dB over {decoded} frames",
            if noise > 0 { " with grain ±6" } else { "" },
            ms(&mut enc_t, 0.5),
            ms(&mut enc_t, 0.95),
            ms(&mut dec_t, 0.5),
            ms(&mut dec_t, 0.95),
            bitrate / 1000,
            psnr_sum / f64::from(decoded.max(1)),
        );
    }
}

fn bot(addr: &str, name: &str, at: TilePos, camera: CameraSpec) -> Bot {
    Bot::start(BotOptions {
        voice: Some(CallOptions::fakes(MicSpec::None, SpeakerSpec::None, camera)),
        start_at: Some(at),
        ..BotOptions::new(addr, name)
    })
    .expect("bot starts")
}

/// One sender with the test pattern and `viewers` bots around it; measures
/// at the first viewer after a warm-up.
fn call(addr: &str, viewers: usize) {
    let sender = bot(addr, "Cam", TilePos::new(23, 9), CameraSpec::Pattern);
    let spots = [20, 21, 22, 24, 25, 26];
    let watchers: Vec<Bot> = spots[..viewers]
        .iter()
        .enumerate()
        .map(|(i, x)| {
            bot(
                addr,
                &format!("V{i}"),
                TilePos::new(*x, 9),
                CameraSpec::None,
            )
        })
        .collect();
    let first = &watchers[0];
    let ok = first.wait_for(Duration::from_secs(15), |b| {
        b.video(sender.user_id).is_some_and(|v| v.frames > 10)
    });
    assert!(ok, "no video arrived");
    std::thread::sleep(Duration::from_secs(2));
    let (v0, cpu0, t0) = (
        first.video(sender.user_id).expect("video"),
        cpu_seconds(),
        Instant::now(),
    );
    let sent0 = sender.report().camera.expect("camera").bytes_sent;
    std::thread::sleep(Duration::from_secs(10));
    let v1 = first.video(sender.user_id).expect("video");
    let cpu = (cpu_seconds() - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
    let camera = sender.report().camera.expect("camera");
    let secs = v1.last_at.duration_since(v0.last_at).as_secs_f64();
    let fps = (v1.frames - v0.frames) as f64 / secs;
    let kbps = (v1.bytes - v0.bytes) as f64 * 8.0 / secs / 1000.0;
    let sent_kbps = (camera.bytes_sent - sent0) as f64 * 8.0 / secs / 1000.0;
    let report = first.report();
    let peer = &report.peers[&sender.user_id.0];
    let (p50, p95) = peer.pattern_latency_ms.unwrap_or((f64::NAN, f64::NAN));
    println!(
        "call, 1 sender → {viewers} viewer(s): {}x{} at {fps:.1} fps; glass-to-glass (capture → decoded) p50 {p50:.1} ms p95 {p95:.1} ms over {} pictures; first picture {:.0} ms after linking; {kbps:.0} kbit/s H.264 received per viewer, {sent_kbps:.0} kbit/s encoded (ladder {:?}); errors {}; process CPU {cpu:.0}% of one core",
        v1.frame.width,
        v1.frame.height,
        peer.video_frames,
        peer.first_video_ms.first().copied().unwrap_or(f64::NAN),
        camera.sending,
        v1.errors,
    );
    drop(watchers);
    drop(sender);
}

fn main() {
    hallway_client::init_logging("off");
    let only = common::sections();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("codec") {
        codec();
    }
    if run("call") {
        let server = common::BenchServer::start(|_| {});
        call(&server.addr, 1);
        std::thread::sleep(Duration::from_secs(1));
        call(&server.addr, 5);
    }
}
