//! Notification sounds end to end: real server, real bots, the mixer's WAV
//! recording. Each sound has notes of its own (scripts/gen-sounds), so the
//! recording tells which one played: joined ends on 1175 Hz, left on 466,
//! message on 1397, room on 784.
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
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

mod common;
use common::{RATE, Server, tone_both, window};

/// The sounds' own notes.
const NOTES: [(&str, f64); 4] = [
    ("joined", 1174.66),
    ("left", 466.16),
    ("message", 1396.91),
    ("room", 783.99),
];

/// Calls with echo cancellation use most of a core: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn bot(server: &Server, name: &str, options: CallOptions, at: TilePos) -> Bot {
    Bot::start(BotOptions {
        voice: Some(options),
        start_at: Some(at),
        step: Duration::from_millis(40),
        ..BotOptions::new(&server.addr, name)
    })
    .unwrap()
}

fn listener(out: &Path, sounds: bool) -> CallOptions {
    let mut options = CallOptions::fakes(
        MicSpec::None,
        SpeakerSpec::Wav(out.to_path_buf()),
        CameraSpec::None,
    );
    options.sounds = sounds;
    options
}

/// Each note's level in the 0.6 s of `rec` from `frame`.
fn notes_at(rec: &(Vec<f32>, Vec<f32>), frame: u64) -> Vec<(&'static str, f64)> {
    let w = window(rec, frame, frame + (0.6 * RATE) as u64);
    NOTES
        .iter()
        .map(|&(name, hz)| (name, tone_both(&w, hz)))
        .collect()
}

fn cues(report: &Report) -> Vec<&str> {
    report.sounds.iter().map(|s| s.cue.as_str()).collect()
}

#[test]
fn the_conversation_a_mention_and_a_meeting_room_each_sound_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(true);
    let (ann_out, bo_out) = (server.path("ann.wav"), server.path("bo.wav"));
    let ann = bot(
        &server,
        "Ann",
        listener(&ann_out, true),
        TilePos::new(14, 9),
    );
    // Bo has the sounds setting off: his recording stays silent.
    let bo = bot(&server, "Bo", listener(&bo_out, false), TilePos::new(34, 9));
    let general = bo.channels[0].id;
    let pause = || std::thread::sleep(Duration::from_millis(1800));
    pause();
    bo.walk_to(TilePos::new(16, 9)).unwrap();
    assert!(ann.wait_for(Duration::from_secs(5), |a| {
        a.peers().contains(&bo.user_id)
    }));
    pause();
    bo.say(general, "lunch, anyone?");
    pause();
    bo.say(general, "@ann are you coming?");
    pause();
    bo.walk_to(TilePos::new(34, 9)).unwrap();
    assert!(ann.wait_for(Duration::from_secs(5), |a| a.peers().is_empty()));
    pause();
    ann.walk_to(TilePos::new(5, 6)).unwrap();
    pause();
    let (ann_report, bo_report) = (ann.stop(), bo.stop());

    // The message without a mention made no sound.
    assert_eq!(cues(&ann_report), ["joined", "message", "left", "room"]);
    let rec = read_wav_stereo(&ann_out).unwrap();
    for sound in &ann_report.sounds {
        let frame = sound.output_frame.unwrap();
        let after = notes_at(&rec, frame);
        let before = notes_at(&rec, frame.saturating_sub((0.7 * RATE) as u64));
        eprintln!("{}: before {before:.4?}, after {after:.4?}", sound.cue);
        let own = after
            .iter()
            .find(|(name, _)| *name == sound.cue)
            .map_or(0.0, |(_, level)| *level);
        assert!(own > 0.01, "{} not heard: {own}", sound.cue);
        for ((name, level), (_, was)) in after.iter().zip(&before) {
            assert!(*was < 0.002, "{name} before {}: {was}", sound.cue);
            if *name != sound.cue {
                assert!(
                    *level < own / 10.0,
                    "{name} heard for {}: {level}",
                    sound.cue
                );
            }
        }
    }
    // Bo was due sounds too (Ann joined and left his conversation) and
    // heard none of them.
    assert!(
        cues(&bo_report).contains(&"joined"),
        "{:?}",
        bo_report.sounds
    );
    let bo_rec = read_wav_stereo(&bo_out).unwrap();
    for sound in &bo_report.sounds {
        for (name, level) in notes_at(&bo_rec, sound.output_frame.unwrap()) {
            assert!(level < 0.002, "Bo heard {name} with sounds off: {level}");
        }
    }
}

/// Sounds go through the mixer, so the echo canceller hears them as far
/// end: Ann on laptop speakers (a fake room) gets a direct message, and Bo
/// hears its chime come back from her microphone only without echo
/// cancellation.
#[test]
fn the_echo_canceller_removes_sounds_like_voices() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(false);
    let mut levels = Vec::new();
    for (tag, echo_cancellation) in [("off", false), ("on", true)] {
        let mut options = CallOptions::fakes(MicSpec::Silence, SpeakerSpec::None, CameraSpec::None);
        options.sounds = true;
        options.room = Some(RoomSpec::parse("delay=80,gain=0.5").unwrap());
        options.processing = ProcessingConfig {
            echo_cancellation,
            noise_suppression: None,
            auto_gain: false,
        };
        let ann = bot(&server, &format!("Ann{tag}"), options, TilePos::new(20, 9));
        let out = server.path(&format!("bo-{tag}.wav"));
        let speech =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/speech/bo.wav");
        let mut bo_options = CallOptions::fakes(
            MicSpec::Wav(speech),
            SpeakerSpec::Wav(out.clone()),
            CameraSpec::None,
        );
        bo_options.sounds = false;
        let bo = bot(
            &server,
            &format!("Bo{tag}"),
            bo_options,
            TilePos::new(21, 9),
        );
        assert!(bo.wait_for(Duration::from_secs(10), |b| {
            b.connected().contains(&ann.user_id)
        }));
        // Bo talks for a while first: the canceller has heard far end
        // (speech: every frequency) and settled before the chime, as in any
        // call (docs/benchmarks.md: with speech it settles in 1.5 to 2 s).
        std::thread::sleep(Duration::from_secs(4));
        let dm = bo.open_direct(ann.user_id).unwrap();
        let from = bo.output_frame().unwrap();
        bo.say(dm.id, "psst");
        std::thread::sleep(Duration::from_millis(1500));
        let to = bo.output_frame().unwrap();
        let (ann_report, _) = (ann.stop(), bo.stop());
        assert!(
            ann_report.sounds.iter().any(|s| s.cue == "message"),
            "{:?}",
            ann_report.sounds
        );
        let rec = read_wav_stereo(&out).unwrap();
        // The loudest 0.2 s of 1397 Hz (the chime's note) in the span.
        let step = (0.05 * RATE) as u64;
        let chime = (from..to.saturating_sub(4 * step))
            .step_by(step as usize)
            .map(|a| tone_both(&window(&rec, a, a + 4 * step), 1396.91))
            .fold(0.0, f64::max);
        eprintln!("echo cancellation {tag}: the chime's echo at Bo {chime:.5}");
        levels.push(chime);
    }
    let (off, on) = (levels[0], levels[1]);
    assert!(
        off > 0.01,
        "without echo cancellation Bo hears the chime: {off}"
    );
    let down = 20.0 * (off / on.max(1e-9)).log10();
    assert!(down >= 30.0, "the chime's echo is only {down:.1} dB down");
}
