//! What the voice tests share: a real server on port 0 and voice bots.
#![allow(clippy::unwrap_used, dead_code)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_server::{Config, RunningServer};
use hallway_shared::TilePos;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Server {
    pub rt: tokio::runtime::Runtime,
    server: Option<RunningServer>,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    pub fn start(fast_steps: bool) -> Server {
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

    pub fn path(&self, name: &str) -> PathBuf {
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

pub fn voice_bot(server: &Server, name: &str, tone: f32, at: TilePos, out: Option<&Path>) -> Bot {
    Bot::start(BotOptions {
        voice: Some(CallOptions::fakes(
            MicSpec::Tone(tone),
            out.map_or(SpeakerSpec::None, |p| SpeakerSpec::Wav(p.to_path_buf())),
            CameraSpec::None,
        )),
        start_at: Some(at),
        ..BotOptions::new(&server.addr, name)
    })
    .unwrap()
}

pub const RATE: f64 = 48_000.0;

/// Amplitude of the `hz` component of `x` (Goertzel), for a sine of
/// amplitude A this is ≈ A.
pub fn tone_amplitude(x: &[f32], hz: f64) -> f64 {
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

/// Amplitude of `hz` in both channels of a window, added.
pub fn tone_both(w: &(Vec<f32>, Vec<f32>), hz: f64) -> f64 {
    tone_amplitude(&w.0, hz) + tone_amplitude(&w.1, hz)
}

pub fn rms(x: &[f32]) -> f64 {
    (x.iter().map(|v| f64::from(*v) * f64::from(*v)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// Left and right channels of frames `from..to` of a recording.
pub fn window(rec: &(Vec<f32>, Vec<f32>), from: u64, to: u64) -> (Vec<f32>, Vec<f32>) {
    let (l, r) = rec;
    let to = (to as usize).min(l.len());
    let from = (from as usize).min(to);
    (l[from..to].to_vec(), r[from..to].to_vec())
}

/// Waits `secs` and returns the recording frames covering that time.
pub fn record(bot: &Bot, secs: f64) -> (u64, u64) {
    let from = bot.output_frame().unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
    (from, bot.output_frame().unwrap())
}
