//! Voice figures through the whole pipeline on loopback: a real server, bots
//! with fake microphones, real webrtc-rs peers and Opus, and a WAV "speaker"
//! paced in real time.
//!
//! - mouth-to-ear latency: a click train from one bot's fake microphone,
//!   found in the other bot's recording (both clocks are this machine's);
//!   `latency-relay` measures it again with both bots relayed through the
//!   server's built-in TURN relay (ICE policy "relay");
//! - time from entering range to the first audible sample;
//! - bitrate while talking (a tone) and while silent (DTX);
//! - CPU per connected peer (process CPU time with meshes of 2, 4 and 6 bots);
//! - the same latency and CPU with the app's capture processing (echo
//!   cancellation, noise suppression, automatic gain) on the talkers.
//!
//! Run: `cargo bench -p hallway-client --bench voice -- [latency] [latency-relay]
//! [latency-processing] [first-audio] [bitrate] [cpu] [cpu-processing]`
//! (default: all).

mod common;

use common::cpu_seconds;
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::device::read_wav_stereo;
use hallway_client::media::processing::ProcessingConfig;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_server::relay::TurnConfig;
use hallway_shared::TilePos;
use std::path::Path;
use std::time::Duration;

fn voice(mic: MicSpec, speaker: SpeakerSpec) -> CallOptions {
    CallOptions::fakes(mic, speaker, CameraSpec::None)
}

fn bot(addr: &str, name: &str, at: TilePos, v: CallOptions) -> Bot {
    Bot::start(BotOptions {
        voice: Some(v),
        start_at: Some(at),
        step: Duration::from_millis(20),
        ..BotOptions::new(addr, name)
    })
    .expect("bot starts")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Onsets of clicks: the first sample above 0.05 after 100 ms below it.
fn onsets(x: &[f32]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut quiet = 0usize;
    for (i, v) in x.iter().enumerate() {
        if v.abs() > 0.05 {
            if quiet >= 4800 {
                out.push(i);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    out
}

fn main() {
    hallway_client::init_logging("off");
    let server = common::BenchServer::start(|config| {
        config.max_steps_per_second = 100.0;
        config.step_burst = 20.0;
    });
    let addr = server.addr.clone();
    // Sections to run (default: all); `--bench` is cargo's own flag.
    let only = common::sections();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("latency") {
        latency(&addr, server.dir(), false, ProcessingConfig::OFF);
    }
    if run("latency-processing") {
        latency(&addr, server.dir(), false, ProcessingConfig::APP);
    }
    if run("latency-relay") {
        // A second server with its relay on loopback (whose peers the
        // default deny list would refuse).
        let relayed = common::BenchServer::start(|config| {
            let mut turn = TurnConfig::new("127.0.0.1:0".parse().expect("addr"));
            turn.deny_peers.clear();
            config.turn = Some(turn);
        });
        latency(&relayed.addr, relayed.dir(), true, ProcessingConfig::OFF);
    }
    if run("first-audio") {
        first_audio(&addr);
    }
    if run("bitrate") {
        bitrate(&addr, server.dir());
    }
    if run("cpu") {
        cpu_per_peer(&addr, None);
    }
    if run("cpu-processing") {
        // Speech, not tones (the suppressor would take a steady tone for
        // noise), without and with the app's processing.
        let speech = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/speech/ann.wav");
        for processing in [ProcessingConfig::OFF, ProcessingConfig::APP] {
            cpu_per_peer(&addr, Some((&speech, processing)));
        }
    }
}

/// Mouth-to-ear latency over several independent pairs: each pair's capture
/// and mixer threads tick with their own phase, which is what varies the
/// latency in practice (within one pair a frame-based pipeline keeps it
/// nearly constant).
fn latency(addr: &str, dir: &Path, relay: bool, processing: ProcessingConfig) {
    let mut lat = Vec::new();
    for round in 0..10 {
        lat.extend(latency_round(
            addr,
            &dir.join(format!("latency-{round}.wav")),
            relay,
            processing,
        ));
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "mouth-to-ear{}{}: {} clicks over 10 pairs  p50 {:.1} ms  p95 {:.1} ms  min {:.1} ms  max {:.1} ms",
        if relay { " through the relay" } else { "" },
        if processing == ProcessingConfig::OFF {
            ""
        } else {
            " with the app's capture processing"
        },
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        lat.first().copied().unwrap_or(f64::NAN),
        lat.last().copied().unwrap_or(f64::NAN),
    );
}

fn latency_round(addr: &str, out: &Path, relay: bool, processing: ProcessingConfig) -> Vec<f64> {
    // Not a multiple of 10 or 20 ms, so clicks fall at every point of a frame.
    let period_ms = 487u32;
    let options = |mic, speaker| {
        let mut v = voice(mic, speaker);
        v.rtc.relay_only = relay;
        v
    };
    let mut clicker = options(MicSpec::Clicks(period_ms), SpeakerSpec::None);
    clicker.processing = processing;
    let talker = bot(addr, "Clicker", TilePos::new(20, 9), clicker);
    let listener = bot(
        addr,
        "Ear",
        TilePos::new(21, 9),
        options(MicSpec::None, SpeakerSpec::Wav(out.to_path_buf())),
    );
    assert!(listener.wait_for(Duration::from_secs(10), |b| !b.connected().is_empty()));
    std::thread::sleep(Duration::from_secs(5));
    let routes: Vec<_> = listener.report().peers.values().map(|p| p.route).collect();
    let want = if relay { "relay" } else { "host" };
    assert_eq!(routes, [Some(want)], "the pair went another way");
    let source_start = talker
        .report()
        .voice
        .and_then(|v| v.microphone_started_unix_us);
    let out_start = listener
        .report()
        .voice
        .and_then(|v| v.output_started_unix_us);
    drop(talker);
    drop(listener);
    std::thread::sleep(Duration::from_millis(300));
    let (Some(src0), Some(out0)) = (source_start, out_start) else {
        println!("latency: no clock");
        return Vec::new();
    };
    let (l, r) = read_wav_stereo(out).expect("recording");
    let mono: Vec<f32> = l.iter().zip(&r).map(|(a, b)| a + b).collect();
    let period_us = f64::from(period_ms) * 1000.0;
    // The same detector finds the source click this far into its burst.
    let mut ideal = vec![0.0f32; 9600];
    for (k, s) in ideal.iter_mut().enumerate().skip(4800).take(240) {
        let k = k - 4800;
        let w = (std::f32::consts::PI * k as f32 / 240.0).sin();
        *s = 0.8 * w * w * (2.0 * std::f32::consts::PI * 1000.0 * k as f32 / 48_000.0).sin();
    }
    let offset_us = onsets(&ideal)
        .first()
        .map_or(0.0, |i| (*i as f64 - 4800.0) / 48_000.0 * 1e6);
    onsets(&mono)
        .into_iter()
        .map(|i| {
            let t = out0 as f64 + i as f64 / 48_000.0 * 1e6 - offset_us;
            let since = t - src0 as f64;
            let k = (since / period_us).floor();
            (since - k * period_us) / 1000.0
        })
        .collect()
}

fn first_audio(addr: &str) {
    let still = bot(
        addr,
        "Still",
        TilePos::new(20, 9),
        voice(MicSpec::Tone(440.0), SpeakerSpec::None),
    );
    let walker = bot(
        addr,
        "Walker",
        TilePos::new(27, 9),
        voice(MicSpec::Tone(1000.0), SpeakerSpec::None),
    );
    let rounds = 40;
    for _ in 0..rounds {
        walker.walk_to(TilePos::new(25, 9)).expect("walk in");
        still.wait_for(Duration::from_secs(10), |b| !b.connected().is_empty());
        std::thread::sleep(Duration::from_millis(700));
        walker.walk_to(TilePos::new(27, 9)).expect("walk out");
        still.wait_for(Duration::from_secs(10), |b| b.peers().is_empty());
        std::thread::sleep(Duration::from_millis(200));
    }
    let report = still.stop();
    if std::env::var_os("HALLWAY_BENCH_DEBUG").is_some() {
        eprintln!("{:?}", report.peers);
    }
    let peer = report
        .peers
        .get(&walker.user_id.0)
        .cloned()
        .unwrap_or_default();
    let mut audio = peer.first_audio_ms.clone();
    audio.sort_by(f64::total_cmp);
    let mut connect: Vec<f64> = peer
        .linked_at
        .iter()
        .zip(&peer.connected_at)
        .map(|(l, c)| (c - l) * 1000.0)
        .collect();
    connect.sort_by(f64::total_cmp);
    println!(
        "entering range → connected: {} times  p50 {:.0} ms  max {:.0} ms",
        connect.len(),
        percentile(&connect, 0.5),
        connect.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "entering range → first audible sample: {} times  p50 {:.0} ms  p95 {:.0} ms  max {:.0} ms",
        audio.len(),
        percentile(&audio, 0.5),
        percentile(&audio, 0.95),
        audio.last().copied().unwrap_or(f64::NAN)
    );
}

fn bitrate(addr: &str, dir: &Path) {
    let silence = dir.join("silence.wav");
    common::write_wav(&silence, 1, std::iter::repeat_n(0.0, 48_000)).expect("wav");
    for (what, mic) in [
        ("talking (440 Hz tone)", MicSpec::Tone(440.0)),
        ("silent", MicSpec::Wav(silence.clone())),
    ] {
        let talker = bot(
            addr,
            "Talker",
            TilePos::new(20, 9),
            voice(mic, SpeakerSpec::None),
        );
        let listener = bot(
            addr,
            "Listener",
            TilePos::new(22, 9),
            voice(MicSpec::None, SpeakerSpec::None),
        );
        listener.wait_for(Duration::from_secs(10), |b| !b.connected().is_empty());
        std::thread::sleep(Duration::from_secs(2));
        let before = listener
            .report()
            .peers
            .get(&talker.user_id.0)
            .cloned()
            .unwrap_or_default();
        let secs = 10.0;
        std::thread::sleep(Duration::from_secs_f64(secs));
        let after = listener
            .report()
            .peers
            .get(&talker.user_id.0)
            .cloned()
            .unwrap_or_default();
        let packets = (after.packets - before.packets) as f64 / secs;
        let payload = (after.bytes - before.bytes) as f64 * 8.0 / secs / 1000.0;
        // RTP 12 + SRTP tag 10 + UDP 8 + IPv4 20 bytes per packet.
        let wire = payload + packets * 50.0 * 8.0 / 1000.0;
        println!(
            "bitrate {what}: {packets:.1} packets/s  Opus {payload:.1} kbit/s  on the wire ≈ {wire:.1} kbit/s"
        );
        drop(talker);
        drop(listener);
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// CPU per connected peer; every bot talks with a tone, or reads `speech`
/// with the processing given.
fn cpu_per_peer(addr: &str, speech: Option<(&Path, ProcessingConfig)>) {
    if let Some((_, p)) = speech {
        println!("cpu, bots reading speech, processing {p:?}:");
    }
    let spots = [
        TilePos::new(20, 9),
        TilePos::new(21, 9),
        TilePos::new(22, 9),
        TilePos::new(20, 10),
        TilePos::new(21, 10),
        TilePos::new(22, 10),
    ];
    let measure = |n: usize| -> (f64, usize) {
        let bots: Vec<Bot> = spots[..n]
            .iter()
            .enumerate()
            .map(|(i, at)| {
                let options = match speech {
                    Some((wav, processing)) => {
                        let mut v = voice(MicSpec::Wav(wav.to_path_buf()), SpeakerSpec::None);
                        v.processing = processing;
                        v
                    }
                    None => voice(MicSpec::Tone(300.0 + 110.0 * i as f32), SpeakerSpec::None),
                };
                bot(addr, &format!("Mesh {i}"), *at, options)
            })
            .collect();
        for b in &bots {
            b.wait_for(Duration::from_secs(15), |b| b.connected().len() == n - 1);
        }
        std::thread::sleep(Duration::from_secs(2));
        let links: usize = bots.iter().map(|b| b.connected().len()).sum();
        let (c0, t0) = (cpu_seconds(), std::time::Instant::now());
        std::thread::sleep(Duration::from_secs(10));
        let cpu = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();
        drop(bots);
        std::thread::sleep(Duration::from_millis(500));
        (cpu, links)
    };
    let (base, _) = measure(1);
    println!(
        "cpu: 1 bot talking, no peers: {:.1}% of a core",
        base * 100.0
    );
    for n in [2, 4, 6] {
        let (cpu, links) = measure(n);
        let per = (cpu - base * n as f64) / links.max(1) as f64;
        println!(
            "cpu: {n} bots in a full mesh ({links} peer ends): {:.1}% of a core; per connected peer {:.2}% of a core",
            cpu * 100.0,
            per * 100.0
        );
    }
}
