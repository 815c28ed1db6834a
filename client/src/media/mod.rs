//! Call media, Bevy-free. Voice: capture from a microphone (or a fake one)
//! ([`device`]), echo cancellation, noise suppression, automatic gain
//! ([`processing`]), voice activity and Opus encode ([`capture`], [`opus`]); per-peer jitter buffers ([`jitter`]), Opus decode
//! with FEC and concealment, and a spatial mixer that plays to a speaker (or a
//! WAV file) ([`mixer`]), which also plays the notification sounds
//! ([`sounds`]). Each direction runs on its own thread; the audio
//! device callbacks only touch lock-free rings. Video: the camera (or a test
//! pattern) through H.264 out, and each peer's pictures decoded in ([`video`]).

pub mod capture;
pub mod device;
pub mod jitter;
pub mod mixer;
pub mod opus;
pub mod processing;
pub mod resample;
pub mod room;
pub mod sounds;
pub mod stretch;
pub mod video;

pub use capture::{Capture, CaptureControl, CaptureLinks, CaptureStats};
pub use device::{MicSpec, SpeakerSpec};
pub use mixer::{
    Mixer, MixerControl, MixerLinks, MixerPacket, MixerSender, MixerStats, PeerAudioStats,
};

/// Every stream in the pipeline runs at 48 kHz.
pub const SAMPLE_RATE: u32 = 48_000;
/// 10 ms: one mixer tick, one read from the microphone, one block of
/// WebRTC's processing. Opus packets are [`opus::OPUS_FRAME`] long.
pub const FRAME: usize = 480;
/// Duration of one frame.
pub const FRAME_DURATION: std::time::Duration = std::time::Duration::from_millis(10);

/// Frames in `ms` milliseconds (for hold times and windows counted in ticks).
pub const fn frames(ms: u32) -> u32 {
    ms / FRAME_DURATION.as_millis() as u32
}

/// 10 ms of mono audio, samples in -1..1.
pub type MonoFrame = [f32; FRAME];
/// 10 ms of interleaved stereo audio (left, right, left, ...).
pub type StereoFrame = [f32; FRAME * 2];

/// What can go wrong with audio devices and codecs.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("no microphone found")]
    NoInputDevice,
    #[error("no speaker found")]
    NoOutputDevice,
    #[error("audio device {0:?} not found")]
    DeviceNotFound(String),
    /// What cpal reported (listing devices, configuring or starting a stream).
    #[error("audio device error: {0}")]
    Device(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the audio device offers no usable sample format (it has {0})")]
    SampleFormat(cpal::SampleFormat),
    #[error("the microphone stopped after {0} errors")]
    Failed(u64),
    #[error("audio file {}: {problem}", path.display())]
    File {
        path: std::path::PathBuf,
        #[source]
        problem: WavProblem,
    },
    #[error("opus: {0}")]
    Codec(#[from] ::opus::Error),
    #[error("the audio stream stopped")]
    Stopped,
}

/// What is wrong with a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavProblem {
    #[error(transparent)]
    Wav(#[from] hound::Error),
    #[error("no samples")]
    Empty,
    #[error("not a 16-bit stereo recording")]
    NotStereo16,
}

/// Root-mean-square level of a block of samples.
pub fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f32 = samples.iter().map(|s| s * s).sum();
    (sum / samples.len() as f32).sqrt()
}

/// Level in dBFS (full-scale sine ≈ -3 dBFS); silence is -120.
pub fn dbfs(level: f32) -> f32 {
    if level <= 1e-6 {
        -120.0
    } else {
        20.0 * level.log10()
    }
}
