//! Proximity voice end to end on loopback: a real server, real WebRTC peers
//! (webrtc-rs), real Opus, bots with fake microphones (tones) whose mixed
//! output is recorded to WAV files, which the tests then analyse.
#![allow(clippy::unwrap_used)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::media::device::read_wav_stereo;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_client::rtc::RtcOptions;
use hallway_client::voice::VoiceOptions;
use hallway_server::{Config, RunningServer};
use hallway_shared::TilePos;
use hallway_shared::volume::distance_gain;
use std::path::{Path, PathBuf};
use std::time::Duration;

const RATE: f64 = 48_000.0;

struct Server {
    rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(fast_steps: bool) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        if fast_steps {
            config.max_steps_per_second = 200.0;
            config.step_burst = 50.0;
        }
        let server = rt
            .block_on(RunningServer::start("127.0.0.1:0".parse().unwrap(), config))
            .unwrap();
        let addr = server.addr.to_string();
        Server {
            rt,
            server: Some(server),
            addr,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(s.stop());
        }
    }
}

fn voice_bot(server: &Server, name: &str, tone: f32, at: TilePos, out: Option<&Path>) -> Bot {
    Bot::start(BotOptions {
        voice: Some(VoiceOptions {
            mic: MicSpec::Tone(tone),
            speaker: out.map_or(SpeakerSpec::None, |p| SpeakerSpec::Wav(p.to_path_buf())),
            noise_suppression: false,
            rtc: RtcOptions {
                loopback_only: true,
            },
        }),
        start_at: Some(at),
        ..BotOptions::new(&server.addr, name)
    })
    .unwrap()
}

/// Amplitude of the `hz` component of `x` (Goertzel), for a sine of
/// amplitude A this is ≈ A.
fn tone_amplitude(x: &[f32], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / RATE;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s0 = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / x.len() as f64
}

fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Left and right channels of frames `from..to` of a recording.
fn window(rec: &(Vec<f32>, Vec<f32>), from: u64, to: u64) -> (Vec<f32>, Vec<f32>) {
    let (l, r) = rec;
    let to = (to as usize).min(l.len());
    let from = (from as usize).min(to);
    (l[from..to].to_vec(), r[from..to].to_vec())
}

/// Waits `secs` and returns the recording frames covering that time.
fn record(bot: &Bot, secs: f64) -> (u64, u64) {
    let from = bot.output_frame().unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
    (from, bot.output_frame().unwrap())
}

#[test]
fn two_bots_hear_each_other_louder_when_closer_and_from_their_side() {
    let server = Server::start(false);
    let (a_out, b_out) = (server.path("a.wav"), server.path("b.wav"));
    // In the corridor (y = 9), 12 tiles apart: not peers.
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), Some(&a_out));
    let b = voice_bot(&server, "Bo", 1000.0, TilePos::new(32, 9), Some(&b_out));
    std::thread::sleep(Duration::from_millis(500));
    assert!(a.peers().is_empty(), "12 tiles apart and linked");
    let (q0, q1) = record(&a, 1.0);

    // Bo walks to 4 tiles away (enter radius 5): they connect.
    b.walk_to(TilePos::new(24, 9)).unwrap();
    assert!(a.wait_for(Duration::from_secs(5), |a| {
        a.connected().contains(&b.user_id)
    }));
    assert!(b.wait_for(Duration::from_secs(5), |b| {
        b.connected().contains(&a.user_id)
    }));
    std::thread::sleep(Duration::from_millis(600));
    let (f4a, f4b) = record(&a, 2.0);

    // 2 tiles away (full volume).
    b.walk_to(TilePos::new(22, 9)).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let (f2a, f2b) = record(&a, 2.0);

    // 2 tiles to Ann's left, by the other lane of the corridor.
    b.walk(&[
        TilePos::new(22, 10),
        TilePos::new(18, 10),
        TilePos::new(18, 9),
    ])
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let (fla, flb) = record(&a, 2.0);

    // 10 tiles away: beyond the leave radius, the link closes.
    b.walk(&[
        TilePos::new(18, 10),
        TilePos::new(28, 10),
        TilePos::new(28, 9),
    ])
    .unwrap();
    assert!(a.wait_for(Duration::from_secs(5), |a| a.peers().is_empty()));
    assert!(a.wait_for(Duration::from_secs(5), |a| a.connected().is_empty()));
    std::thread::sleep(Duration::from_millis(500));
    let (fsa, fsb) = record(&a, 1.5);

    let report_a = a.stop();
    let report_b = b.stop();
    let rec_a = read_wav_stereo(&a_out).unwrap();
    let rec_b = read_wav_stereo(&b_out).unwrap();

    let quiet = window(&rec_a, q0, q1);
    assert!(
        rms(&quiet.0) < 1e-3 && rms(&quiet.1) < 1e-3,
        "sound before linking"
    );

    // At 4 tiles: Bo's tone (1000 Hz), not Ann's own (440 Hz).
    let w4 = window(&rec_a, f4a, f4b);
    let bo4 = tone_amplitude(&w4.0, 1000.0) + tone_amplitude(&w4.1, 1000.0);
    let own4 = tone_amplitude(&w4.0, 440.0) + tone_amplitude(&w4.1, 440.0);
    assert!(bo4 > 0.05, "Bo's tone at 4 tiles: {bo4}");
    assert!(own4 < bo4 / 100.0, "Ann hears herself: {own4} vs {bo4}");

    // At 2 tiles, louder by the shared curve: gain(2)/gain(4) = 1/0.5.
    // Both windows have Bo to the right (same pan), Opus is linear in level
    // to well within 1 dB at these levels, and 2 s windows average out the
    // codec's frame-to-frame variation, so the ratio must be within 10%.
    let w2 = window(&rec_a, f2a, f2b);
    let bo2 = tone_amplitude(&w2.0, 1000.0) + tone_amplitude(&w2.1, 1000.0);
    let want = f64::from(distance_gain(2.0, 2.0, 6.0) / distance_gain(4.0, 2.0, 6.0));
    let ratio = bo2 / bo4;
    assert!(
        (ratio / want - 1.0).abs() < 0.10,
        "2 tiles vs 4: {ratio:.3}, the curve says {want:.3}"
    );
    // Bo stood to the right: the right ear louder.
    assert!(w2.1.iter().map(|v| v.abs()).sum::<f32>() > w2.0.iter().map(|v| v.abs()).sum::<f32>());

    // To the left: the left channel louder, by the equal-power pan law
    // (fully left: cos/sin of the pan angle ≈ 0.968 / 0.25).
    let wl = window(&rec_a, fla, flb);
    let (l, r) = (tone_amplitude(&wl.0, 1000.0), tone_amplitude(&wl.1, 1000.0));
    assert!(l > 3.0 * r, "left {l:.4} right {r:.4}");
    assert!(r > 0.0, "the far ear never goes silent");

    // Apart again: silence.
    let ws = window(&rec_a, fsa, fsb);
    assert!(
        rms(&ws.0) < 1e-3 && rms(&ws.1) < 1e-3,
        "sound after parting: {}",
        rms(&ws.0)
    );

    // Bo heard Ann's tone and not his own.
    let wb = window(&rec_b, f4a, f2b);
    let ann = tone_amplitude(&wb.0, 440.0) + tone_amplitude(&wb.1, 440.0);
    let own = tone_amplitude(&wb.0, 1000.0) + tone_amplitude(&wb.1, 1000.0);
    assert!(ann > 0.05 && own < ann / 100.0, "Bo: Ann {ann} own {own}");

    // The reports saw it all.
    let peer = &report_a.peers[&report_b.user_id];
    assert_eq!(peer.linked_at.len(), 1);
    assert_eq!(peer.unlinked_at.len(), 1);
    assert!(!peer.connected_at.is_empty());
    assert!(peer.packets > 100, "{} packets", peer.packets);
    assert!(!peer.first_audio_ms.is_empty());
    let voice = report_b.voice.unwrap();
    assert!(voice.packets_sent > 100);
}

#[test]
fn a_meeting_room_joins_the_inside_and_excludes_the_outside() {
    let server = Server::start(false);
    let (a_out, b_out, c_out) = (
        server.path("a.wav"),
        server.path("b.wav"),
        server.path("c.wav"),
    );
    // Ann and Bo in Meeting Room A, 8 tiles apart; Cy outside its wall,
    // 3 tiles from Bo.
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(2, 2), Some(&a_out));
    let b = voice_bot(&server, "Bo", 1000.0, TilePos::new(9, 6), Some(&b_out));
    let c = voice_bot(&server, "Cy", 700.0, TilePos::new(8, 9), Some(&c_out));
    assert!(a.wait_for(Duration::from_secs(5), |a| {
        a.connected().contains(&b.user_id)
    }));
    std::thread::sleep(Duration::from_millis(600));
    let (fa0, fa1) = record(&a, 2.0);
    let (fb0, fb1) = (
        b.output_frame().unwrap() - 96_000,
        b.output_frame().unwrap(),
    );
    let (fc0, fc1) = (
        c.output_frame().unwrap() - 96_000,
        c.output_frame().unwrap(),
    );
    assert!(
        c.peers().is_empty(),
        "Cy outside is linked to {:?}",
        c.peers()
    );
    assert_eq!(a.peers(), vec![b.user_id]);
    drop((a, b, c));

    let wa = window(&read_wav_stereo(&a_out).unwrap(), fa0, fa1);
    let wb = window(&read_wav_stereo(&b_out).unwrap(), fb0, fb1);
    let wc = window(&read_wav_stereo(&c_out).unwrap(), fc0, fc1);
    // Full volume in the room whatever the distance.
    let bo = tone_amplitude(&wa.0, 1000.0) + tone_amplitude(&wa.1, 1000.0);
    assert!(bo > 0.2, "Ann hears Bo at {bo}");
    let cy = tone_amplitude(&wa.0, 700.0) + tone_amplitude(&wa.1, 700.0);
    assert!(cy < bo / 100.0, "Ann hears Cy: {cy}");
    let ann = tone_amplitude(&wb.0, 440.0) + tone_amplitude(&wb.1, 440.0);
    assert!(ann > 0.2, "Bo hears Ann at {ann}");
    assert!(rms(&wc.0) < 1e-3 && rms(&wc.1) < 1e-3, "Cy hears the room");
}

#[test]
fn a_peer_that_vanishes_mid_call_is_cleaned_up() {
    let server = Server::start(false);
    let a = voice_bot(&server, "Ann", 440.0, TilePos::new(20, 9), None);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hallway-bot"))
        .args(["--server", &server.addr, "--name", "Bo", "--path", "22,9"])
        .args([
            "--stay",
            "60",
            "--fake-mic",
            "tone:1000",
            "--audio-out",
            "none",
        ])
        .args(["--loopback-only"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let linked = a.wait_for(Duration::from_secs(20), |a| !a.connected().is_empty());
    if !linked {
        let _ = child.kill();
    }
    assert!(linked, "the bot process never connected");
    let bo = a.connected()[0];
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the closed socket and unlinks; the link is freed.
    assert!(a.wait_for(Duration::from_secs(10), |a| a.peers().is_empty()));
    assert!(a.wait_for(Duration::from_secs(10), |a| a.connected().is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    let report = a.stop();
    let peer = &report.peers[&bo.0];
    assert_eq!(peer.unlinked_at.len(), 1);
}

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
            voice: Some(VoiceOptions {
                mic: MicSpec::Tone(1000.0),
                speaker: SpeakerSpec::None,
                noise_suppression: false,
                rtc: RtcOptions {
                    loopback_only: true,
                },
            }),
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
                .contains(&b.user_id)),
            "cycle {cycle}: no connection"
        );
        b.walk_to(far).unwrap();
        assert!(
            a.wait_for(Duration::from_secs(10), |a| a.connected().is_empty()),
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
    // A leaked peer connection (ICE agent, DTLS, SRTP, buffers, decoder) costs
    // hundreds of KiB; 180 of them would be tens of MiB.
    assert!(grew < 16 * 1024, "RSS grew {grew} KiB over 180 cycles");
}
