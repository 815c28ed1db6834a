//! Echo cancellation end to end: Bo sits in a fake room (his microphone
//! hears his speaker, delayed and softer, as on a laptop without
//! headphones), so Ann's voice comes back to her from him. Everything is the
//! real pipeline: fake microphones, capture processing, Opus, WebRTC on
//! loopback, jitter buffers, the mixer and a WAV recording at Ann.
#![allow(clippy::unwrap_used)]

use hallway_client::bot::report::Report;
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::device::read_wav_stereo;
use hallway_client::media::processing::ProcessingConfig;
use hallway_client::media::room::RoomSpec;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_shared::TilePos;
use std::time::{Duration, UNIX_EPOCH};

mod common;
use common::{RATE, Server, tone_both, window};

/// One call: what Ann heard, from the moment she connected to Bo.
struct Heard {
    /// Ann's recording from the connection on.
    rec: (Vec<f32>, Vec<f32>),
    /// Bo's microphone started this many seconds after the connection
    /// (negative: before).
    bo_mic_at: f64,
    bo: Report,
}

const ECHO_ONLY: ProcessingConfig = ProcessingConfig {
    echo_cancellation: true,
    noise_suppression: None,
    auto_gain: false,
};

fn call(
    server: &Server,
    tag: &str,
    ann_mic: MicSpec,
    bo_mic: MicSpec,
    room: &str,
    processing: ProcessingConfig,
    secs: f64,
) -> Heard {
    let out = server.path(&format!("ann-{tag}.wav"));
    let mut ann_options =
        CallOptions::fakes(ann_mic, SpeakerSpec::Wav(out.clone()), CameraSpec::None);
    ann_options.processing = ProcessingConfig::OFF;
    let ann = Bot::start(BotOptions {
        voice: Some(ann_options),
        start_at: Some(TilePos::new(20, 9)),
        ..BotOptions::new(&server.addr, &format!("Ann{tag}"))
    })
    .unwrap();
    let mut options = CallOptions::fakes(bo_mic, SpeakerSpec::None, CameraSpec::None);
    options.room = Some(RoomSpec::parse(room).unwrap());
    options.processing = processing;
    let bo = Bot::start(BotOptions {
        voice: Some(options),
        start_at: Some(TilePos::new(21, 9)),
        ..BotOptions::new(&server.addr, &format!("Bo{tag}"))
    })
    .unwrap();
    assert!(ann.wait_for(Duration::from_secs(10), |a| {
        a.connected().contains(&bo.user_id)
    }));
    let from = ann.output_frame().unwrap();
    let connected_unix = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let to = ann.output_frame().unwrap();
    let bo_report = bo.stop();
    drop(ann);
    std::thread::sleep(Duration::from_millis(300));
    let rec = read_wav_stereo(&out).unwrap();
    let bo_mic_at = bo_report
        .voice
        .as_ref()
        .and_then(|v| v.microphone_started_unix_us)
        .map_or(0.0, |us| us as f64 / 1e6 - connected_unix);
    Heard {
        rec: window(&rec, from, to),
        bo_mic_at,
        bo: bo_report,
    }
}

/// Level of `hz` in consecutive windows of `secs`.
fn levels(rec: &(Vec<f32>, Vec<f32>), hz: f64, secs: f64) -> Vec<f64> {
    let n = (secs * RATE) as u64;
    let len = rec.0.len() as u64;
    (0..len / n)
        .map(|k| tone_both(&window(rec, k * n, (k + 1) * n), hz))
        .collect()
}

fn db(x: f64) -> f64 {
    20.0 * x.max(1e-9).log10()
}

/// The speech samples (scripts/gen-speech).
fn speech(who: &str) -> MicSpec {
    MicSpec::Wav(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../assets/speech")
            .join(format!("{who}.wav")),
    )
}

/// One call at a time: each runs four media threads per bot, and the
/// measurements should not depend on what another test does meanwhile.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn mean_db(levels: &[f64]) -> f64 {
    let power = levels.iter().map(|v| v * v).sum::<f64>() / levels.len().max(1) as f64;
    db(power.sqrt())
}

/// Ann talks (440 Hz) to Bo, who sits in a room that sends her voice back
/// 80 ms later at half level; Bo answers (660 Hz) 1.5 s into the call; 5 s
/// in, the room's delay becomes 150 ms. With echo cancellation off Ann hears
/// herself; with it on her own tone is 30 dB lower from the first second,
/// again within 2 s of the delay change, and Bo's tone, talking over her,
/// loses at most 3 dB against Bo talking alone.
///
/// Bo answers rather than talking from the first instant: like WebRTC in a
/// browser, AEC3 confirms its echo path while the far end talks alone. Two
/// steady tones from the very start never give it that moment, and after 6 s
/// it decides there is no echo at all (measured: the echo back at -20 dB).
#[test]
fn echo_cancellation_removes_the_echo_and_keeps_the_talker() {
    let _one = ONE_AT_A_TIME.lock();
    let server = Server::start(false);
    let room = "delay=80,gain=0.5,then=150,at=5";
    let bo_mic = || MicSpec::parse_fake("tone:660,start=1.5").unwrap();
    let off = call(
        &server,
        "off",
        MicSpec::Tone(440.0),
        bo_mic(),
        room,
        ProcessingConfig::OFF,
        9.0,
    );
    let on = call(
        &server,
        "on",
        MicSpec::Tone(440.0),
        bo_mic(),
        room,
        ECHO_ONLY,
        9.0,
    );
    let alone = call(
        &server,
        "alone",
        MicSpec::Silence,
        bo_mic(),
        room,
        ECHO_ONLY,
        9.0,
    );
    const W: f64 = 0.25;
    let echo_off = levels(&off.rec, 440.0, W);
    let echo_on = levels(&on.rec, 440.0, W);
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{:.0}", db(*x)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    eprintln!(
        "Ann's own 440 Hz at Ann, per {W} s, dB:\n  off {}\n  on  {}",
        show(&echo_off),
        show(&echo_on)
    );
    for h in [&off, &on, &alone] {
        assert!(
            (-1.0..=0.5).contains(&h.bo_mic_at),
            "Bo's microphone must start with the call for the single-talk second: {:.2} s",
            h.bo_mic_at
        );
    }
    // The "off" run shows the echo, or this test proves nothing.
    let reference = mean_db(echo_off.get(4..).unwrap_or_default());
    assert!(
        reference > -30.0,
        "no echo without cancellation: {reference:.1} dB"
    );
    let limit = reference - 30.0;
    // Converged: from this window on (until the change), all below limit.
    let change = on.bo_mic_at + 5.0;
    let before: Vec<f64> = echo_on
        .iter()
        .take((change / W) as usize)
        .copied()
        .collect();
    let converged = before
        .iter()
        .rposition(|v| db(*v) > limit)
        .map_or(0, |k| k + 1);
    let converged_s = converged as f64 * W;
    let after: Vec<f64> = echo_on
        .iter()
        .skip((change / W) as usize)
        .copied()
        .collect();
    let reconverged_s = after
        .iter()
        .rposition(|v| db(*v) > limit)
        .map_or(0, |k| k + 1) as f64
        * W;
    eprintln!(
        "echo {reference:.1} dB off; converged at {converged_s:.2} s; after the delay change \
         at {change:.2} s, below again within {reconverged_s:.2} s"
    );
    assert!(converged_s <= 1.0, "converged at {converged_s} s");
    assert!(reconverged_s <= 2.0, "re-converged after {reconverged_s} s");
    assert!(
        after.len() as f64 * W > 3.0,
        "the run must last past the change"
    );
    // Double talk: Bo's tone over Ann's, against Bo alone, from 1 s after
    // he starts.
    let from = ((on.bo_mic_at + 2.5) / W) as usize;
    let talker = |h: &Heard| mean_db(levels(&h.rec, 660.0, W).get(from..).unwrap_or_default());
    let (double, single) = (talker(&on), talker(&alone));
    eprintln!("Bo's 660 Hz at Ann: {double:.1} dB over Ann, {single:.1} dB alone");
    assert!(single > -20.0, "Bo alone is heard: {single:.1} dB");
    assert!(
        double >= single - 3.0,
        "double talk lost {:.1} dB",
        single - double
    );
}

fn rms_db(x: &(Vec<f32>, Vec<f32>)) -> f64 {
    db(common::rms(&x.0).hypot(common::rms(&x.1)))
}

/// Speech, not tones: Ann reads a sentence to Bo, whose microphone hears
/// only his room. With echo cancellation on, what comes back to Ann is at
/// least 30 dB below what comes back with it off (after the first second),
/// and Bo's processing says the same of his microphone from 2 s on (with
/// speech it dips once, at a word onset before its filter covers the whole
/// echo path: docs/benchmarks.md).
#[test]
fn echo_cancellation_removes_a_spoken_echo() {
    let _one = ONE_AT_A_TIME.lock();
    let server = Server::start(false);
    let room = "delay=80,gain=0.5";
    let off = call(
        &server,
        "off",
        speech("ann"),
        MicSpec::Silence,
        room,
        ProcessingConfig::OFF,
        7.5,
    );
    let on = call(
        &server,
        "on",
        speech("ann"),
        MicSpec::Silence,
        room,
        ECHO_ONLY,
        7.5,
    );
    // One whole loop of the sentence (6.2 s) from 1 s on, so both runs
    // measure the same words.
    let part = |h: &Heard| window(&h.rec, 48_000, 48_000 + 6 * 48_000 + 9_600);
    let (echo_off, echo_on) = (rms_db(&part(&off)), rms_db(&part(&on)));
    eprintln!("spoken echo at Ann: {echo_off:.1} dB off, {echo_on:.1} dB on");
    assert!(
        echo_off > -40.0,
        "no echo without cancellation: {echo_off:.1} dB"
    );
    assert!(
        echo_on <= echo_off - 30.0,
        "only {:.1} dB less echo",
        echo_off - echo_on
    );
    let processing = on.bo.voice.and_then(|v| v.processing).unwrap();
    let erle: Vec<f32> = processing
        .windows
        .iter()
        .skip(4)
        .filter(|(mic, _)| *mic > -60.0)
        .map(|(mic, out)| mic - out)
        .collect();
    eprintln!("Bo's echo return loss enhancement per 0.5 s: {erle:.0?}");
    let worst = erle.iter().copied().fold(f32::MAX, f32::min);
    assert!(erle.len() >= 8 && worst >= 30.0, "ERLE {erle:?}");
}

/// Both talk at once, in words: Bo's voice at Ann loses at most 3 dB
/// against Bo talking alone.
#[test]
fn double_talk_keeps_the_near_voice() {
    let _one = ONE_AT_A_TIME.lock();
    let server = Server::start(false);
    let room = "delay=80,gain=0.5";
    let both = call(
        &server,
        "both",
        speech("ann"),
        speech("bo"),
        room,
        ECHO_ONLY,
        7.5,
    );
    let alone = call(
        &server,
        "alone",
        MicSpec::Silence,
        speech("bo"),
        room,
        ECHO_ONLY,
        7.5,
    );
    // One whole loop of Bo's sentence (5.5 s), from 1.5 s on.
    let part = |h: &Heard| window(&h.rec, 72_000, 72_000 + 5 * 48_000 + 24_000);
    let (double, single) = (rms_db(&part(&both)), rms_db(&part(&alone)));
    eprintln!("Bo's voice at Ann: {double:.1} dB while Ann talks, {single:.1} dB alone");
    assert!(single > -40.0, "Bo alone is heard: {single:.1} dB");
    assert!(
        (double - single).abs() <= 3.0,
        "double talk changed Bo by {:.1} dB",
        double - single
    );
}
