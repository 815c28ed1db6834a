//! Devices while in a call: choosing another microphone or speaker switches
//! without dropping the call, and a microphone that stops mid-call (a fake
//! that fails) gives way to the default with a message while the call goes
//! on; so does a speaker that stops.
#![allow(clippy::unwrap_used)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::device::read_wav_stereo;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_shared::TilePos;
use std::time::Duration;

mod common;
use common::{Server, record, tone_both, window};

fn bot(server: &Server, name: &str, options: CallOptions, x: i32) -> Bot {
    Bot::start(BotOptions {
        voice: Some(options),
        start_at: Some(TilePos::new(x, 9)),
        ..BotOptions::new(&server.addr, name)
    })
    .unwrap()
}

/// Ann talks with `mic` (and `fallback` if it stops); after `switch_at`
/// seconds `then` runs on her. Returns the 440 and 550 Hz levels Bo heard
/// before and after, and both reports.
fn talk(
    mic: MicSpec,
    fallback: Option<MicSpec>,
    then: impl FnOnce(&Bot),
) -> (
    (f64, f64),
    (f64, f64),
    hallway_client::bot::report::Report,
    hallway_client::bot::report::Report,
) {
    let server = Server::start(false);
    let mut options = CallOptions::fakes(mic, SpeakerSpec::None, CameraSpec::None);
    options.fallback_mic = fallback;
    let ann = bot(&server, "Ann", options, 20);
    let out = server.path("bo.wav");
    let bo = bot(
        &server,
        "Bo",
        CallOptions::fakes(
            MicSpec::None,
            SpeakerSpec::Wav(out.clone()),
            CameraSpec::None,
        ),
        21,
    );
    assert!(bo.wait_for(Duration::from_secs(10), |b| {
        b.connected().contains(&ann.user_id)
    }));
    std::thread::sleep(Duration::from_millis(500));
    let (a0, a1) = record(&bo, 1.0);
    then(&ann);
    std::thread::sleep(Duration::from_millis(1500));
    let (b0, b1) = record(&bo, 1.5);
    let bo_report = bo.stop();
    let ann_report = ann.stop();
    let rec = read_wav_stereo(&out).unwrap();
    let levels = |from, to| {
        let w = window(&rec, from, to);
        (tone_both(&w, 440.0), tone_both(&w, 550.0))
    };
    (levels(a0, a1), levels(b0, b1), bo_report, ann_report)
}

fn one_connection(report: &hallway_client::bot::report::Report, peer: i64) {
    let p = &report.peers[&peer];
    assert_eq!(p.connected_at.len(), 1, "the call was not re-made: {p:?}");
    assert!(p.unlinked_at.is_empty(), "never unlinked: {p:?}");
    assert_eq!(p.ice_restarts, 0);
}

#[test]
fn choosing_another_microphone_mid_call_keeps_the_call() {
    let (before, after, bo, ann) = talk(MicSpec::Tone(440.0), None, |ann| {
        ann.set_mic(MicSpec::Tone(550.0));
    });
    eprintln!("Bo hears 440/550: before {before:.3?}, after {after:.3?}");
    assert!(before.0 > 0.05 && before.1 < 0.01, "{before:?}");
    assert!(after.1 > 0.05 && after.0 < 0.01, "{after:?}");
    one_connection(&bo, ann.user_id);
}

#[test]
fn a_microphone_that_stops_gives_way_to_the_default() {
    // Ann's microphone stops 2.5 s after it started; the fallback (the
    // default, here a fake) takes over.
    let (before, after, bo, ann) = talk(
        MicSpec::parse_fake("tone:440,fail=2.5").unwrap(),
        Some(MicSpec::Tone(550.0)),
        |_| {},
    );
    eprintln!("Bo hears 440/550: before {before:.3?}, after {after:.3?}");
    assert!(before.0 > 0.05 && before.1 < 0.01, "{before:?}");
    assert!(after.1 > 0.05 && after.0 < 0.01, "{after:?}");
    let voice = ann.voice.as_ref().unwrap();
    let notice = voice.microphone_notice.as_deref().unwrap_or_default();
    assert!(
        notice.contains("stopped") && notice.contains("fallback"),
        "{notice:?}"
    );
    assert_eq!(voice.microphone.as_deref(), Some("tone 550 Hz"));
    one_connection(&bo, ann.user_id);
}

#[test]
fn choosing_another_speaker_mid_call_keeps_the_call() {
    let server = Server::start(false);
    let ann = bot(
        &server,
        "Ann",
        CallOptions::fakes(MicSpec::Tone(440.0), SpeakerSpec::None, CameraSpec::None),
        20,
    );
    let (first, second) = (server.path("first.wav"), server.path("second.wav"));
    let bo = bot(
        &server,
        "Bo",
        CallOptions::fakes(
            MicSpec::None,
            SpeakerSpec::Wav(first.clone()),
            CameraSpec::None,
        ),
        21,
    );
    assert!(bo.wait_for(Duration::from_secs(10), |b| {
        b.connected().contains(&ann.user_id)
    }));
    std::thread::sleep(Duration::from_millis(1000));
    bo.set_speaker(SpeakerSpec::Wav(second.clone()));
    std::thread::sleep(Duration::from_millis(2000));
    let report = bo.stop();
    drop(ann);
    for path in [&first, &second] {
        let rec = read_wav_stereo(path).unwrap();
        let len = rec.0.len() as u64;
        let tail = window(&rec, len.saturating_sub(24_000), len);
        let level = tone_both(&tail, 440.0);
        eprintln!(
            "{}: {} samples, 440 Hz at the end {level:.3}",
            path.display(),
            len
        );
        assert!(level > 0.05, "{} hears Ann: {level}", path.display());
    }
    let p = &report.peers.values().next().unwrap();
    assert_eq!(p.connected_at.len(), 1);
}

#[test]
fn a_speaker_that_stops_gives_way_to_the_default() {
    let server = Server::start(false);
    let ann = bot(
        &server,
        "Ann",
        CallOptions::fakes(MicSpec::Tone(440.0), SpeakerSpec::None, CameraSpec::None),
        20,
    );
    let (failing, fallback) = (server.path("failing.wav"), server.path("fallback.wav"));
    let mut options = CallOptions::fakes(
        MicSpec::None,
        SpeakerSpec::parse(&format!("wav:{},fail=3", failing.display())).unwrap(),
        CameraSpec::None,
    );
    options.fallback_speaker = Some(SpeakerSpec::Wav(fallback.clone()));
    let bo = bot(&server, "Bo", options, 21);
    assert!(bo.wait_for(Duration::from_secs(10), |b| {
        b.connected().contains(&ann.user_id)
    }));
    // The failing speaker stops 3 s after it opened; give the fallback 2 s.
    std::thread::sleep(Duration::from_millis(4500));
    let report = bo.stop();
    let ann_id = ann.user_id.0;
    drop(ann);
    let before = read_wav_stereo(&failing).unwrap();
    let after = read_wav_stereo(&fallback).unwrap();
    let secs = |r: &(Vec<f32>, Vec<f32>)| r.0.len() as f64 / 48_000.0;
    let tail = |r: &(Vec<f32>, Vec<f32>)| {
        let len = r.0.len() as u64;
        tone_both(&window(r, len.saturating_sub(24_000), len), 440.0)
    };
    eprintln!(
        "failing: {:.2} s, 440 Hz at its end {:.3}; fallback: {:.2} s, {:.3}",
        secs(&before),
        tail(&before),
        secs(&after),
        tail(&after)
    );
    assert!((2.8..3.3).contains(&secs(&before)), "{}", secs(&before));
    assert!(tail(&before) > 0.05, "Bo heard Ann before the speaker went");
    assert!(secs(&after) > 1.0, "the fallback played {} s", secs(&after));
    assert!(tail(&after) > 0.05, "Bo hears Ann on the fallback");
    let voice = report.voice.as_ref().unwrap();
    let notice = voice.output_notice.as_deref().unwrap_or_default();
    assert!(
        notice.contains("stopped") && notice.contains("fallback speaker"),
        "{notice:?}"
    );
    assert_eq!(voice.output_error, None);
    one_connection(&report, ann_id);
}
