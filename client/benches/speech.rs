//! Speech quality through the whole pipeline, as PESQ wideband MOS (ITU-T
//! P.862.2, `scripts/pesq-mos`): Ann's fake microphone reads a sentence in a
//! loop (assets/speech/ann.wav) → capture processing → Opus → WebRTC on
//! loopback → (loss and jitter, [`hallway_client::rtc::impair`]) → jitter
//! buffer → mixer → a listener's WAV, scored against the clean sentence.
//!
//! - `network`: a talker with the app's processing and a listener losing or
//!   delaying her packets (seeded): none; 5, 10, 20% random; 5, 10, 20% in
//!   bursts of 3; 30 ms of jitter (`HALLWAY_SPEECH_CONDITION=jitter` runs
//!   only the conditions whose name has that in it). One pair at a time: two cores do not hold
//!   more calls without the threads' timing (and so the jitter buffers)
//!   suffering.
//! - `suppressors`: no processing, the standard suppressor (WebRTC NS) and
//!   RNNoise, each with echo cancellation and automatic gain as the app has
//!   them, on the clean sentence and on the sentence in noise (15 dB SNR,
//!   low-passed seeded noise from `scripts/pesq-mos noisy`).
//!
//! - `offline`: the same sentence through the capture processing and Opus
//!   in-process, with the loss applied packet by packet (FEC from the next
//!   packet, else concealment) and no network or clocks: the ceiling the
//!   pipeline can reach, and which stage costs what.
//!
//! - `stretch`: the clean sentence alone, stretched a pitch period at a time
//!   every so often as the mixer does within a talk spurt: what that costs
//!   PESQ by itself.
//!
//! Needs python3 with pesq, numpy and scipy (installed with pip if missing).
//! Run: `cargo bench -p hallway-client --bench speech -- [network]
//! [suppressors] [offline] [stretch]` (default: all).

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

/// Recorded after the call is up: the first 3 s of the recording (the
/// processing settling) are not scored, and two readings of the sentence
/// (6.2 s each) after them always hold a whole one.
const RECORD: Duration = Duration::from_millis(16_000);

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
    println!(
        "Speech quality, PESQ wideband MOS (talker with echo cancellation, standard \
         suppressor, automatic gain):"
    );
    println!(
        "  {:<18} {:>6}  {:>7} {:>9} {:>9} {:>5} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "",
        "MOS",
        "played",
        "FEC",
        "concealed",
        "late",
        "dropped",
        "expanded",
        "sped up",
        "target",
        "delay"
    );
    // HALLWAY_SPEECH_CONDITION=jitter runs only the conditions so named.
    let only = std::env::var("HALLWAY_SPEECH_CONDITION").unwrap_or_default();
    for (i, (name, impair)) in conditions.iter().enumerate() {
        if !name.contains(only.as_str()) {
            continue;
        }
        let out = dir.join(format!("network-{i}.wav"));
        let ann = talker(
            addr,
            &format!("Ann{i}"),
            TilePos::new(20, 10),
            &clean_speech(),
            ProcessingConfig::APP,
        );
        let l = listener(addr, &format!("L{i}"), TilePos::new(21, 10), &out, *impair);
        record(&[(&ann, &l)]);
        let report = l.stop();
        drop(ann);
        let j = report
            .peers
            .values()
            .next()
            .and_then(|p| p.jitter)
            .unwrap_or_default();
        println!(
            "  {name:<18} {:>6}  {:>7} {:>9} {:>9} {:>5} {:>7} {:>9} {:>9} {:>6.0} ms {:>6.0} ms",
            mos(&out),
            j.played,
            j.recovered,
            j.concealed,
            j.late,
            j.dropped,
            j.expanded,
            j.accelerated,
            j.target_ms,
            j.delay_ms
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
        for (i, ((_, processing), row)) in settings.iter().zip(&mut rows).enumerate() {
            let out = dir.join(format!("sup-{input}-{i}.wav"));
            let t = talker(
                addr,
                &format!("T{input}{i}"),
                TilePos::new(20, 10),
                &mic,
                *processing,
            );
            let l = listener(
                addr,
                &format!("L{input}{i}"),
                TilePos::new(21, 10),
                &out,
                None,
            );
            record(&[(&t, &l)]);
            drop((l, t));
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

/// `mono` twice over as 48 kHz stereo, the shape `pesq-mos mos` reads.
fn write_stereo_48k(mono: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let x = hallway_client::media::device::read_wav_mono(mono)?;
    let twice = x.iter().chain(&x);
    common::write_wav(out, 2, twice.flat_map(|s| [*s, *s]))?;
    Ok(())
}

/// Three readings through processing and Opus in-process; scores the second.
fn offline(dir: &Path) {
    use hallway_client::media::opus::{MAX_DECODED, OPUS_FRAME, VoiceDecoder, VoiceEncoder};
    use hallway_client::media::processing::{Processor, echo_reference};
    use hallway_client::media::{FRAME, MonoFrame};
    use hallway_client::rtc::impair::{Fate, Impairer};
    let Ok(voice) = hallway_client::media::device::read_wav_mono(&clean_speech()) else {
        println!("offline: no speech sample");
        return;
    };
    let with = |noise_suppression: Option<Suppressor>| ProcessingConfig {
        noise_suppression,
        ..ProcessingConfig::APP
    };
    let echo_only = ProcessingConfig {
        auto_gain: false,
        ..with(None)
    };
    let gain_only = ProcessingConfig {
        echo_cancellation: false,
        ..with(None)
    };
    let runs: [(&str, ProcessingConfig, bool, Option<&str>); 11] = [
        (
            "no processing, no codec",
            ProcessingConfig::OFF,
            false,
            None,
        ),
        ("no processing, Opus", ProcessingConfig::OFF, true, None),
        (
            "app processing, no codec",
            ProcessingConfig::APP,
            false,
            None,
        ),
        ("echo + gain, no codec", with(None), false, None),
        ("echo only, no codec", echo_only, false, None),
        ("gain only, no codec", gain_only, false, None),
        ("app processing, Opus", ProcessingConfig::APP, true, None),
        (
            "no processing, Opus, 5%",
            ProcessingConfig::OFF,
            true,
            Some("loss=0.05,seed=1"),
        ),
        (
            "no processing, Opus, 10%",
            ProcessingConfig::OFF,
            true,
            Some("loss=0.1,seed=2"),
        ),
        (
            "app, Opus, 5%",
            ProcessingConfig::APP,
            true,
            Some("loss=0.05,seed=1"),
        ),
        (
            "app, Opus, 10%",
            ProcessingConfig::APP,
            true,
            Some("loss=0.1,seed=2"),
        ),
    ];
    println!("Offline (in-process, no network), PESQ wideband MOS:");
    for (i, (name, processing, codec, loss)) in runs.into_iter().enumerate() {
        // The far end is silent, but there is one, as in a call: the mixer
        // plays (silence) every tick.
        let (mut tap, reference) = echo_reference();
        let mut p = Processor::new(processing, Some(reference));
        let mut enc = VoiceEncoder::new().expect("encoder");
        let mut dec = VoiceDecoder::new().expect("decoder");
        let mut impair = loss.map(|l| Impairer::new(l.parse().expect("loss")));
        let frames = 3 * voice.len() / OPUS_FRAME;
        // Encoded packets (None: DTX or lost), then decoded with a
        // one-packet look-ahead for FEC, as the jitter buffer does.
        let mut packets: Vec<Option<Vec<u8>>> = Vec::with_capacity(frames);
        let mut direct: Vec<f32> = Vec::new();
        for k in 0..frames {
            let mut packet = [0.0; OPUS_FRAME];
            for (j, block) in packet.chunks_exact_mut(FRAME).enumerate() {
                let mut f: MonoFrame = [0.0; FRAME];
                for (i, s) in f.iter_mut().enumerate() {
                    *s = voice[(k * OPUS_FRAME + j * FRAME + i) % voice.len()];
                }
                tap.played(&[0.0; 2 * FRAME]);
                p.process(&mut f);
                block.copy_from_slice(&f);
            }
            if !codec {
                direct.extend_from_slice(&packet);
                continue;
            }
            let packet = enc.encode(&packet).expect("encode").map(<[u8]>::to_vec);
            let lost = impair.as_mut().is_some_and(|i| i.fate() == Fate::Drop);
            packets.push(packet.filter(|_| !lost));
        }
        let mut out = direct;
        for k in 0..packets.len() {
            let mut f = [0.0; MAX_DECODED];
            let n = match (&packets[k], packets.get(k + 1).and_then(Option::as_ref)) {
                (Some(p), _) => dec.decode(p, &mut f).expect("decode"),
                (None, Some(next)) => dec.recover(next, OPUS_FRAME, &mut f).expect("fec"),
                (None, None) => dec.conceal(OPUS_FRAME, &mut f).expect("plc"),
            };
            out.extend_from_slice(&f[..n]);
        }
        let path = dir.join(format!("offline-{i}.wav"));
        common::write_wav(&path, 2, out.iter().flat_map(|s| [*s, *s])).expect("wav");
        println!("  {name:<28} {:>6}", mos(&path));
    }
}

/// What stretching costs by itself: the clean sentence, three readings, with
/// a pitch period played twice or left out (as the mixer does within a talk
/// spurt, [`hallway_client::media::stretch`]) every so often; no processing,
/// codec or network.
fn stretching(dir: &Path) {
    use hallway_client::media::FRAME;
    use hallway_client::media::stretch::{HISTORY, accelerate, expand};
    let Ok(voice) = hallway_client::media::device::read_wav_mono(&clean_speech()) else {
        println!("stretch: no speech sample");
        return;
    };
    let source: Vec<f32> = voice.iter().chain(&voice).chain(&voice).copied().collect();
    println!("Stretching alone (clean sentence, no codec), PESQ wideband MOS:");
    let runs: [(&str, usize, Option<bool>); 6] = [
        ("never", 0, None),
        ("every 1.2 s, both ways", 120, None),
        ("every 0.6 s, both ways", 60, None),
        ("every 0.3 s, both ways", 30, None),
        ("every 0.6 s, expand", 60, Some(true)),
        ("every 0.6 s, accelerate", 60, Some(false)),
    ];
    for (r, (name, every, only)) in runs.into_iter().enumerate() {
        let mut history = [0.0f32; HISTORY];
        let mut out: Vec<f32> = Vec::with_capacity(source.len() * 2);
        let (mut at, mut expanded, mut accelerated) = (0, 0, 0);
        // Whether a stretch is due (expand if true), until one succeeds.
        let mut due: Option<bool> = None;
        let mut buf = vec![0.0f32; 4 * FRAME];
        for k in 0.. {
            let Some(packet) = source.get(at..at + FRAME) else {
                break;
            };
            buf[..FRAME].copy_from_slice(packet);
            at += FRAME;
            let mut n = FRAME;
            if every > 0 && k > 0 && k % every == 0 {
                due = Some(only.unwrap_or((k / every) % 2 == 1));
            }
            match due {
                Some(true) => {
                    if let Some(m) = expand(&history, &mut buf, n) {
                        (n, due) = (m, None);
                        expanded += 1;
                    }
                }
                Some(false) => {
                    // Two packets, as the mixer takes when speeding up.
                    if let Some(next) = source.get(at..at + FRAME) {
                        buf[FRAME..2 * FRAME].copy_from_slice(next);
                        at += FRAME;
                        n = 2 * FRAME;
                    }
                    if let Some(m) = accelerate(&mut buf, n) {
                        (n, due) = (m, None);
                        accelerated += 1;
                    }
                }
                None => {}
            }
            out.extend_from_slice(&buf[..n]);
            if let Some(last) = out.get(out.len().saturating_sub(HISTORY)..)
                && last.len() == HISTORY
            {
                history.copy_from_slice(last);
            }
        }
        let path = dir.join(format!("stretch-{r}.wav"));
        common::write_wav(&path, 2, out.iter().flat_map(|s| [*s, *s])).expect("wav");
        println!(
            "  {name:<26} {:>6}  ({expanded} expanded, {accelerated} sped up in {:.1} s)",
            mos(&path),
            source.len() as f64 / 48_000.0
        );
    }
}

fn main() {
    hallway_client::init_logging("off");
    let only = common::sections();
    let run = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if !python_ready() {
        println!("speech: python3 with pesq, numpy and scipy is needed");
        return;
    }
    if run("offline") {
        offline(&std::env::temp_dir());
    }
    if run("stretch") {
        stretching(&std::env::temp_dir());
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
