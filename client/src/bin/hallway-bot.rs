//! `hallway-bot`: a headless Hallway client for demos, tests and load. Joins a
//! space as a guest, walks a path at normal speed, stays, then prints a JSON
//! report (and writes it to `--report`). With `--fake-mic`, `--audio-out`,
//! `--fake-camera` or `--video-out` it talks, listens, sends and receives
//! video through the real call pipeline.

use anyhow::Context;
use clap::Parser;
use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::core::walk::parse_route;
use hallway_client::media::processing::{ProcessingConfig, Suppressor};
use hallway_client::media::room::RoomSpec;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_client::rtc::RtcOptions;
use hallway_client::rtc::impair::Impairment;
use std::path::PathBuf;
use std::time::Duration;

/// A headless Hallway client: joins a space as a guest, walks a path, stays,
/// and prints a JSON report; with fake devices it talks, listens and sends
/// video through the real call pipeline.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Server address, e.g. 127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// Display name of the guest.
    #[arg(long, default_value = "Bot")]
    name: String,
    /// Space id or name (default: the first space listed).
    #[arg(long)]
    space: Option<String>,
    /// Tiles to walk to, in order: "x,y x,y ...".
    #[arg(long, default_value = "")]
    path: String,
    /// Seconds to stay after the walk.
    #[arg(long, default_value_t = 5.0)]
    stay: f64,
    /// A fake microphone: tone:HZ, clicks:MS, wav:PATH or silence, then
    /// optionally ,start=S (silent until S seconds) and ,fail=S (stops at S).
    /// Turns voice on.
    #[arg(long)]
    fake_mic: Option<String>,
    /// What takes over when the microphone stops (e.g. a fake one with
    /// ,fail=S): a fake microphone as for --fake-mic; default: the system's.
    #[arg(long)]
    fallback_mic: Option<String>,
    /// Where the mixed voices go: wav:PATH (paced in real time; add ,fail=S
    /// for one that stops after S seconds), none, or default (the speaker).
    /// Turns voice on.
    #[arg(long)]
    audio_out: Option<String>,
    /// What takes over when the speaker stops, as for --audio-out; default:
    /// the system's.
    #[arg(long)]
    fallback_speaker: Option<String>,
    /// A fake camera: pattern (a moving test pattern with its frame number
    /// and capture time drawn in). Turns the call on.
    #[arg(long)]
    fake_camera: Option<String>,
    /// Save each peer's video in this folder, one PNG per second. Turns the
    /// call on.
    #[arg(long)]
    video_out: Option<PathBuf>,
    /// A fake room: the microphone also hears the speaker, delay=MS,gain=G
    /// (e.g. delay=80,gain=0.5), as on a laptop without headphones.
    #[arg(long)]
    fake_room: Option<String>,
    /// Cancel the echo of what the bot plays (off by default).
    #[arg(long)]
    echo_cancellation: bool,
    /// Suppress noise on the microphone: webrtc (the default when given
    /// without a value) or rnnoise. Off by default: it removes test tones.
    #[arg(long, num_args = 0..=1, default_missing_value = "webrtc")]
    noise_suppression: Option<Suppressor>,
    /// Automatic gain on the microphone (off by default).
    #[arg(long)]
    auto_gain: bool,
    /// Play the notification sounds (someone joins or leaves the
    /// conversation, a direct message or mention, a meeting room) into the
    /// bot's speaker, as the app does (off by default).
    #[arg(long)]
    sounds: bool,
    /// Gather only loopback ICE candidates.
    #[arg(long)]
    loopback_only: bool,
    /// Connect to peers only through a TURN relay (hides our address).
    #[arg(long)]
    relay_only: bool,
    /// Lose and delay incoming voice, for measurements: loss=P, burst=N
    /// (losses N in a row), jitter=MS (each packet 0..MS late), seed=S;
    /// e.g. loss=0.1,burst=3,jitter=30. See docs/benchmarks.md.
    #[arg(long)]
    impair: Option<Impairment>,
    /// Also write the report to this file.
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    hallway_client::init_logging("warn");
    let args = Args::parse();
    let route = parse_route(&args.path).context("--path")?;
    let camera = match &args.fake_camera {
        Some(s) => Some(CameraSpec::parse_fake(s).context("--fake-camera")?),
        None => None,
    };
    if let Some(dir) = &args.video_out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let room = match &args.fake_room {
        Some(s) => Some(RoomSpec::parse(s).context("--fake-room")?),
        None => None,
    };
    let call = args.fake_mic.is_some()
        || args.audio_out.is_some()
        || camera.is_some()
        || args.video_out.is_some();
    let voice = if call {
        let mic = match &args.fake_mic {
            Some(s) => MicSpec::parse_fake(s).context("--fake-mic")?,
            None => MicSpec::None,
        };
        let speaker = match &args.audio_out {
            Some(s) => SpeakerSpec::parse(s).context("--audio-out")?,
            None => SpeakerSpec::None,
        };
        Some(CallOptions {
            mic,
            speaker,
            processing: ProcessingConfig {
                echo_cancellation: args.echo_cancellation,
                noise_suppression: args.noise_suppression,
                auto_gain: args.auto_gain,
            },
            rtc: RtcOptions {
                loopback_only: args.loopback_only,
                relay_only: args.relay_only,
                impair: args.impair,
            },
            camera_on: camera.is_some(),
            camera: camera.unwrap_or(CameraSpec::None),
            room,
            fallback_mic: match &args.fallback_mic {
                Some(s) => Some(MicSpec::parse_fake(s).context("--fallback-mic")?),
                None => None,
            },
            fallback_speaker: match &args.fallback_speaker {
                Some(s) => Some(SpeakerSpec::parse(s).context("--fallback-speaker")?),
                None => None,
            },
            sounds: args.sounds,
            ..CallOptions::default()
        })
    } else {
        None
    };
    let bot = Bot::start(BotOptions {
        space: args.space.clone(),
        voice,
        video_out: args.video_out.clone(),
        ..BotOptions::new(&args.server, &args.name)
    })
    .context("starting the bot")?;
    bot.walk(&route)?;
    std::thread::sleep(Duration::from_secs_f64(args.stay.max(0.0)));
    let report = bot.stop();
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = &args.report {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
