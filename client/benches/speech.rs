//! Speech quality through the whole pipeline, as PESQ wideband MOS (ITU-T
//! P.862.2, `scripts/pesq-mos`): Ann's fake microphone reads a sentence in a
//! loop (assets/speech/ann.wav) → capture processing → Opus → WebRTC on
//! loopback → (loss and jitter, [`hallway_client::rtc::impair`]) → jitter
//! buffer → mixer → a listener's WAV, scored against the clean sentence.
//!
//! - `network`: one talker with the app's processing, eight listeners around
//!   her, each losing or delaying her packets its own way (seeded): none;
//!   5, 10, 20% random; 5, 10, 20% in bursts of 3; 30 ms of jitter.
//! - `suppressors`: no processing, the standard suppressor (WebRTC NS) and
//!   RNNoise, each with echo cancellation and automatic gain as the app has
//!   them, on the clean sentence and on the sentence in noise (15 dB SNR,
//!   low-passed seeded noise from `scripts/pesq-mos noisy`). Three talkers far
//!   apart, one listener each.
//!
//! Needs python3 with pesq, numpy and scipy (installed with pip if missing).
//! Run: `cargo bench -p hallway-client --bench speech -- [network]
//! [suppressors]` (default: both).

mod common;

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::processing::{ProcessingConfig, Suppressor};
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_client::rtc::impair::Impairment;
use hallway_shared::TilePos;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Two readings of the sentence (6.2 s each) and some slack: one whole
/// reading after the first half second is always inside.
const RECORD: Duration = Duration::from_millis(13_500);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn clean_speech() -> PathBuf {
    repo().join("assets/speech/ann.wav")
}

fn pesq_mos(args: &[&str]) -> Option<String> {
    let out = Command::new("python3")
        .arg(repo().join("scripts/pesq-mos"))
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "pesq-mos {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Installs the Python packages the score needs, if they are missing.
fn python_ready() -> bool {
    if pesq_mos(&["check"]).is_some() {
        return true;
    }
    println!("installing pesq, numpy, scipy with pip…");
    let installed = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "pesq", "numpy", "scipy"])
        .status()
        .is_ok_and(|s| s.success());
    installed && pesq_mos(&["check"]).is_some()
}

fn mos(recording: &Path) -> String {
    let clean = clean_speech();
    let clean = clean.to_string_lossy();
    pesq_mos(&["mos", &clean, &recording.to_string_lossy()]).unwrap_or_else(|| "-".into())
}

fn bot(addr: &str, name: &str, at: TilePos, options: CallOptions) -> Bot {
    Bot::start(BotOptions {
        voice: Some(options),
        start_at: Some(at),
        ..BotOptions::new(addr, name)
    })
    .expect("bot starts")
}

fn talker(addr: &str, name: &str, at: TilePos, mic: &Path, processing: ProcessingConfig) -> Bot {
    let mut options = CallOptions::fakes(
        MicSpec::Wav(mic.to_path_buf()),
        SpeakerSpec::None,
        CameraSpec::None,
    );
    options.processing = processing;
    bot(addr, name, at, options)
}

fn listener(addr: &str, name: &str, at: TilePos, out: &Path, impair: Option<&str>) -> Bot {
    let mut options = CallOptions::fakes(
        MicSpec::None,
        SpeakerSpec::Wav(out.to_path_buf()),
        CameraSpec::None,
    );
    options.rtc.impair = impair.map(|s| s.parse::<Impairment>().expect("impairment"));
    bot(addr, name, at, options)
}

/// Waits until every listener hears its talker, then records.
fn record(pairs: &[(&Bot, &Bot)]) {
    for (talker, listener) in pairs {
        let up = listener.wait_for(Duration::from_secs(15), |l| {
            l.connected().contains(&talker.user_id)
        });
        assert!(up, "{} hears its talker", listener.user_id);
    }
    std::thread::sleep(RECORD);
}

fn network(addr: &str, dir: &Path) {
    let conditions = [
        ("clean", None),
        ("5% random", Some("loss=0.05,seed=1")),
        ("10% random", Some("loss=0.10,seed=2")),
        ("20% random", Some("loss=0.20,seed=3")),
        ("5% bursts of 3", Some("loss=0.05,burst=3,seed=4")),
        ("10% bursts of 3", Some("loss=0.10,burst=3,seed=5")),
        ("20% bursts of 3", Some("loss=0.20,burst=3,seed=6")),
        ("30 ms jitter", Some("jitter=30,seed=7")),
    ];
    let around = [
        (19, 9),
        (20, 9),
        (21, 9),
        (19, 10),
        (21, 10),
        (19, 11),
        (20, 11),
        (21, 11),
    ];
    let ann = talker(
        addr,
        "Ann",
        TilePos::new(20, 10),
        &clean_speech(),
        ProcessingConfig::APP,
    );
    let listeners: Vec<(Bot, PathBuf)> = conditions
        .iter()
        .zip(around)
        .enumerate()
        .map(|(i, ((_, impair), (x, y)))| {
            let out = dir.join(format!("network-{i}.wav"));
            let l = listener(addr, &format!("L{i}"), TilePos::new(x, y), &out, *impair);
            (l, out)
        })
        .collect();
    let pairs: Vec<(&Bot, &Bot)> = listeners.iter().map(|(l, _)| (&ann, l)).collect();
    record(&pairs);
    let mut outs = Vec::new();
    for (l, out) in listeners {
        let report = l.stop();
        let jitter = report.peers.values().next().and_then(|p| p.jitter);
        outs.push((out, jitter));
    }
    drop(ann);
    println!(
        "Speech quality, PESQ wideband MOS (talker with echo cancellation, standard \
         suppressor, automatic gain):"
    );
    println!(
        "  {:<18} {:>6}  {:>7} {:>9} {:>9} {:>9}",
        "", "MOS", "played", "FEC", "concealed", "target"
    );
    for ((name, _), (out, jitter)) in conditions.iter().zip(outs) {
        let j = jitter.unwrap_or_default();
        println!(
            "  {name:<18} {:>6}  {:>7} {:>9} {:>9} {:>6.0} ms",
            mos(&out),
            j.played,
            j.recovered,
            j.concealed,
            j.target_ms
        );
    }
}

fn suppressors(addr: &str, dir: &Path) {
    let noisy = dir.join("ann-noisy.wav");
    let made = pesq_mos(&[
        "noisy",
        &clean_speech().to_string_lossy(),
        &noisy.to_string_lossy(),
        "15",
        "1",
    ]);
    if made.is_none() {
        println!("suppressors: cannot make the noisy sentence");
        return;
    }
    let with = |noise_suppression: Option<Suppressor>| ProcessingConfig {
        noise_suppression,
        ..ProcessingConfig::APP
    };
    let settings = [
        ("no processing", ProcessingConfig::OFF),
        ("echo + gain, no suppressor", with(None)),
        ("echo + standard + gain", with(Some(Suppressor::Webrtc))),
        ("echo + RNNoise + gain", with(Some(Suppressor::Rnnoise))),
    ];
    println!("Suppressors, PESQ wideband MOS against the clean sentence:");
    println!("  {:<28} {:>7} {:>16}", "", "clean", "in noise 15 dB");
    let mut rows = vec![Vec::new(); settings.len()];
    for (input, mic) in [("clean", clean_speech()), ("noisy", noisy.clone())] {
        let talkers: Vec<Bot> = settings
            .iter()
            .enumerate()
            .map(|(i, (_, p))| {
                let at = TilePos::new(4 + 12 * i as i32, 10);
                talker(addr, &format!("T{input}{i}"), at, &mic, *p)
            })
            .collect();
        let listeners: Vec<(Bot, PathBuf)> = (0..settings.len())
            .map(|i| {
                let out = dir.join(format!("sup-{input}-{i}.wav"));
                let at = TilePos::new(5 + 12 * i as i32, 10);
                (listener(addr, &format!("L{input}{i}"), at, &out, None), out)
            })
            .collect();
        let pairs: Vec<(&Bot, &Bot)> = talkers
            .iter()
            .zip(&listeners)
            .map(|(t, (l, _))| (t, l))
            .collect();
        record(&pairs);
        for (row, (l, out)) in rows.iter_mut().zip(listeners) {
            drop(l);
            row.push(mos(&out));
        }
    }
    let input = pesq_mos(&["mos", &clean_speech().to_string_lossy(), &{
        // The noisy input itself, as a recording would hold it.
        let out = dir.join("noisy-input.wav");
        let _ = write_stereo_48k(&noisy, &out);
        out.to_string_lossy().into_owned()
    }]);
    for ((name, _), row) in settings.iter().zip(rows) {
        println!("  {name:<28} {:>7} {:>16}", row[0], row[1]);
    }
    println!(
        "  (the noisy sentence itself scores {})",
        input.unwrap_or_else(|| "-".into())
    );
}

/// `mono` (16 kHz) twice over as 48 kHz stereo, the shape `pesq-mos mos` reads.
fn write_stereo_48k(mono: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let x = hallway_client::media::device::read_wav_mono(mono)?;
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(out, spec)?;
    for _ in 0..2 {
        for s in &x {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            w.write_sample(v)?;
            w.write_sample(v)?;
        }
    }
    w.finalize()?;
    Ok(())
}

fn main() {
    hallway_client::init_logging("off");
    let only = common::sections();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if !python_ready() {
        println!("speech: python3 with pesq, numpy and scipy is needed");
        return;
    }
    let server = common::BenchServer::start(|_| {});
    let dir = tempfile::tempdir().expect("tempdir");
    if run("network") {
        network(&server.addr, dir.path());
    }
    if run("suppressors") {
        suppressors(&server.addr, dir.path());
    }
}
