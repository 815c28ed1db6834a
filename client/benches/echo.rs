//! Echo cancellation figures.
//!
//! - `erle`: echo return loss enhancement over time, with speech, at 40, 80
//!   and 150 ms of room delay. Ann reads a sentence (assets/speech/ann.wav);
//!   Bo's microphone hears only his fake room (gain 0.5), so what his
//!   canceller takes out of each half second is the ERLE: microphone level
//!   minus processed level, measured inside his capture thread. Real server,
//!   WebRTC on loopback, Opus, the mixer's output as the reference.
//! - `double-talk`: both read at once; Bo's voice at Ann against Bo alone.
//! - `cpu`: time to process 10 ms of microphone with each setting, on the
//!   speech sample with its echo (the capture chain alone, in-process).
//!
//! Run: `cargo bench -p hallway-client --bench echo -- [erle] [double-talk]
//! [cpu]` (default: all).

mod common;

use hallway_client::bot::report::Report;
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::device::{read_wav_mono, read_wav_stereo};
use hallway_client::media::processing::{ProcessingConfig, Processor, Suppressor, echo_reference};
use hallway_client::media::room::RoomSpec;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{FRAME, MicSpec, MonoFrame, SpeakerSpec, StereoFrame};
use hallway_shared::TilePos;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ECHO_ONLY: ProcessingConfig = ProcessingConfig {
    echo_cancellation: true,
    noise_suppression: None,
    auto_gain: false,
};

fn speech(who: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/speech")
        .join(format!("{who}.wav"))
}

fn bot(addr: &str, name: &str, x: i32, options: CallOptions) -> Bot {
    Bot::start(BotOptions {
        voice: Some(options),
        start_at: Some(TilePos::new(x, 9)),
        ..BotOptions::new(addr, name)
    })
    .expect("bot starts")
}

/// A call of `secs` between Ann and Bo (in `room`); Ann records to `out`.
fn call(
    addr: &str,
    tag: &str,
    ann_mic: MicSpec,
    bo_mic: MicSpec,
    room: &str,
    out: Option<&Path>,
    secs: f64,
) -> (Report, Option<(u64, u64)>) {
    let speaker = out.map_or(SpeakerSpec::None, |p| SpeakerSpec::Wav(p.to_path_buf()));
    let ann = bot(
        addr,
        &format!("Ann{tag}"),
        20,
        CallOptions::fakes(ann_mic, speaker, CameraSpec::None),
    );
    let mut options = CallOptions::fakes(bo_mic, SpeakerSpec::None, CameraSpec::None);
    options.room = Some(RoomSpec::parse(room).expect("room"));
    options.processing = ECHO_ONLY;
    let bo = bot(addr, &format!("Bo{tag}"), 21, options);
    let connected = ann.wait_for(Duration::from_secs(10), |a| {
        a.connected().contains(&bo.user_id)
    });
    assert!(connected, "the bots connect");
    let from = ann.output_frame();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let to = ann.output_frame();
    let report = bo.stop();
    drop(ann);
    (report, from.zip(to))
}

fn erle(addr: &str) {
    println!("ERLE with speech (Bo's canceller, per 0.5 s from the call's start, dB):");
    for delay in [40, 80, 150] {
        let room = format!("delay={delay},gain=0.5");
        let (report, _) = call(
            addr,
            &format!("e{delay}"),
            MicSpec::Wav(speech("ann")),
            MicSpec::Silence,
            &room,
            None,
            10.0,
        );
        let Some(p) = report.voice.and_then(|v| v.processing) else {
            println!("  {delay} ms: no processing report");
            continue;
        };
        let line: Vec<String> = p
            .windows
            .iter()
            .map(|(mic, out)| {
                if *mic > -60.0 {
                    format!("{:.0}", mic - out)
                } else {
                    "-".into()
                }
            })
            .collect();
        let mut settled: Vec<f32> = p
            .windows
            .iter()
            .skip(2)
            .filter(|(mic, _)| *mic > -60.0)
            .map(|(mic, out)| mic - out)
            .collect();
        settled.sort_by(f32::total_cmp);
        let median = settled.get(settled.len() / 2).copied().unwrap_or(f32::NAN);
        let worst = settled.first().copied().unwrap_or(f32::NAN);
        println!(
            "  {delay:>3} ms: [{}]  after 1 s: median {median:.0}, worst {worst:.0}; \
             delay found {:?} ms",
            line.join(" "),
            p.echo_delay_ms
        );
    }
}

fn rms_db(x: &(Vec<f32>, Vec<f32>)) -> f64 {
    let rms = |v: &[f32]| {
        (v.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / v.len().max(1) as f64).sqrt()
    };
    20.0 * rms(&x.0).hypot(rms(&x.1)).max(1e-9).log10()
}

fn double_talk(addr: &str, dir: &Path) {
    let mut levels = Vec::new();
    for (tag, ann_mic) in [
        ("both", MicSpec::Wav(speech("ann"))),
        ("alone", MicSpec::Silence),
    ] {
        let out = dir.join(format!("dt-{tag}.wav"));
        let (_, span) = call(
            addr,
            tag,
            ann_mic,
            MicSpec::Wav(speech("bo")),
            "delay=80,gain=0.5",
            Some(&out),
            7.5,
        );
        std::thread::sleep(Duration::from_millis(300));
        let (Some((from, _)), Ok(rec)) = (span, read_wav_stereo(&out)) else {
            println!("  {tag}: no recording");
            return;
        };
        // One loop of Bo's sentence (5.5 s) from 1.5 s into the call.
        let (a, b) = ((from + 72_000) as usize, (from + 72_000 + 264_000) as usize);
        let part = (
            rec.0.get(a..b).unwrap_or_default().to_vec(),
            rec.1.get(a..b).unwrap_or_default().to_vec(),
        );
        levels.push(rms_db(&part));
    }
    if let [both, alone] = levels[..] {
        println!(
            "Double talk (speech, 80 ms room): Bo's voice at Ann {both:.1} dB while Ann talks, \
             {alone:.1} dB alone: {:+.1} dB",
            both - alone
        );
    }
}

fn cpu() {
    let Ok(voice) = read_wav_mono(&speech("ann")) else {
        println!("cpu: no speech sample");
        return;
    };
    let settings = [
        ("off", ProcessingConfig::OFF),
        ("echo cancellation", ECHO_ONLY),
        (
            "echo + standard suppressor + gain",
            ProcessingConfig {
                noise_suppression: Some(Suppressor::Webrtc),
                auto_gain: true,
                ..ECHO_ONLY
            },
        ),
        (
            "echo + RNNoise + gain",
            ProcessingConfig {
                noise_suppression: Some(Suppressor::Rnnoise),
                auto_gain: true,
                ..ECHO_ONLY
            },
        ),
        (
            "standard suppressor alone",
            ProcessingConfig {
                echo_cancellation: false,
                noise_suppression: Some(Suppressor::Webrtc),
                auto_gain: false,
            },
        ),
    ];
    println!("Capture processing CPU (µs per 10 ms block, one core; 20 s of speech with echo):");
    for (name, config) in settings {
        let (mut tap, reference) = echo_reference();
        let mut p = Processor::new(config, Some(reference));
        let frames = 1000;
        let delay = 4; // 80 ms
        let mut started = Instant::now();
        for k in 0..frames + 50 {
            if k == 50 {
                started = Instant::now();
            }
            let far = |j: usize| {
                voice
                    .get((j * FRAME) % voice.len().max(1)..)
                    .unwrap_or_default()
            };
            let mut out: StereoFrame = [0.0; FRAME * 2];
            for (i, s) in far(k).iter().take(FRAME).enumerate() {
                out[2 * i] = *s;
                out[2 * i + 1] = *s;
            }
            tap.played(&out);
            let mut mic: MonoFrame = [0.0; FRAME];
            if k >= delay {
                for (m, s) in mic.iter_mut().zip(far(k - delay).iter()) {
                    *m = 0.5 * s;
                }
            }
            p.process(&mut mic);
        }
        let micros = started.elapsed().as_secs_f64() * 1e6 / (2 * frames) as f64;
        println!("  {name:<36} {micros:>6.1}");
    }
}

fn main() {
    hallway_client::init_logging("off");
    let only = common::sections();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if run("cpu") {
        cpu();
    }
    let server = common::BenchServer::start(|_| {});
    if run("erle") {
        erle(&server.addr);
    }
    if run("double-talk") {
        double_talk(&server.addr, server.dir());
    }
}
