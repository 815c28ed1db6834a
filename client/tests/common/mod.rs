//! What the voice tests share: a real server on port 0 and voice bots.
#![allow(clippy::unwrap_used, dead_code)]

use hallway_client::bot::{Bot, BotOptions};
use hallway_client::call::CallOptions;
use hallway_client::media::video::camera::CameraSpec;
use hallway_client::media::{MicSpec, SpeakerSpec};
use hallway_server::{Config, RunningServer};
use hallway_shared::TilePos;
use std::path::{Path, PathBuf};

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
