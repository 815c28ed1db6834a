//! The real device path (cpal → ALSA) without a sound card: ALSA's null
//! device stands in for both the microphone and the speaker. ALSA reads its
//! configuration once per process, so the check runs in a child process of
//! this test binary with `ALSA_CONFIG_PATH` pointing at a null-only config.
#![allow(clippy::unwrap_used)]

use hallway_client::media::device::{open_sink, open_source};
use hallway_client::media::{FRAME, MicSpec, SpeakerSpec};
use std::time::{Duration, Instant};

#[test]
fn cpal_devices_open_and_stream_on_alsas_null_device() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("asound.conf");
    std::fs::write(&conf, "pcm.!default { type null }\n").unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "null_device_child", "--ignored", "--nocapture"])
        .env("ALSA_CONFIG_PATH", &conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs only as the child of the test above.
#[test]
#[ignore = "run by cpal_devices_open_and_stream_on_alsas_null_device"]
fn null_device_child() {
    let mut mic = open_source(&MicSpec::Default).expect("the default microphone opens");
    let mut frame = [1.0f32; FRAME];
    for _ in 0..5 {
        mic.read(&mut frame).expect("20 ms from the microphone");
    }
    assert!(
        frame.iter().all(|s| s.abs() < 1e-3),
        "the null device is silent"
    );

    let mut speaker = open_sink(&SpeakerSpec::Default).expect("the default speaker opens");
    let stereo = [0.1f32; FRAME * 2];
    let start = Instant::now();
    for _ in 0..5 {
        speaker.wait().expect("the speaker wants more");
        speaker.write(&stereo).expect("20 ms to the speaker");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // A device that does not exist is a clear error, not a panic.
    let err = open_source(&MicSpec::Named("No Such Microphone".into()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("No Such Microphone"), "{err}");
}
