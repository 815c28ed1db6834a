//! What the benchmarks share (each uses a part of it).
#![allow(dead_code)]

/// The sections named on the command line (cargo's own `--bench` and other
/// flags left out); empty means all.
pub fn sections() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect()
}

/// Process CPU time (user + system) in seconds, from /proc.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Writes 48 kHz 16-bit samples in -1..1 (interleaved if `channels` > 1).
pub fn write_wav(
    path: &std::path::Path,
    channels: u16,
    samples: impl IntoIterator<Item = f32>,
) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: 48_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
    }
    w.finalize()
}

/// A real server on a loopback port, in its own runtime, with its database
/// in a temporary folder; stopped when dropped.
pub struct BenchServer {
    rt: tokio::runtime::Runtime,
    server: Option<hallway_server::RunningServer>,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl BenchServer {
    /// Starts with the default configuration, changed by `configure`.
    pub fn start(configure: impl FnOnce(&mut hallway_server::Config)) -> BenchServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = hallway_server::Config::new(dir.path());
        configure(&mut config);
        let server = rt
            .block_on(hallway_server::RunningServer::start(
                "127.0.0.1:0".parse().expect("addr"),
                config,
            ))
            .expect("server");
        BenchServer {
            addr: server.addr.to_string(),
            rt,
            server: Some(server),
            dir,
        }
    }

    /// A folder for the benchmark's files, removed with the server.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let _ = self.rt.block_on(s.stop());
        }
    }
}
