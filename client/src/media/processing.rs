//! What the capture path does to the microphone before it is encoded: a
//! high-pass filter, echo cancellation (AEC3), noise suppression (WebRTC's
//! suppressor or RNNoise) and automatic gain (AGC2). The WebRTC parts are
//! `sonora`, a pure-Rust port of WebRTC's audio processing (chosen over the
//! `aec3` crate, see docs/benchmarks.md "Echo cancellation").
//!
//! The echo canceller's far-end reference is the mixer's final output: every
//! stereo frame the mixer hands the speaker (after distance gain, pan and
//! per-user volume) also goes, through a lock-free ring, to the capture
//! thread ([`echo_reference`]). The canceller finds the delay between the two
//! itself (AEC3's delay estimator), so device latencies need not be known.
//! The reference is downmixed to mono before the canceller: a microphone
//! hears the sum of both speakers, and AEC3's multichannel mode, which
//! panned voices switch on, muted the near end in double talk (the near
//! talker's tone fell by 50 dB in `tests/echo.rs`; mono keeps it within 1 dB).
//!
//! Everything here runs on the capture thread, never in a device callback.

use super::{FRAME, MonoFrame, SAMPLE_RATE, StereoFrame};
use serde::{Deserialize, Serialize};
use sonora::config::{
    AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, NoiseSuppression,
};
use std::collections::VecDeque;
use std::time::Instant;

/// 10 ms: the unit WebRTC's processing works in.
pub const BLOCK: usize = SAMPLE_RATE as usize / 100;
const _: () = assert!(FRAME.is_multiple_of(BLOCK));

/// Which noise suppressor runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppressor {
    /// WebRTC's (moderate, about 12 dB), as browsers use.
    #[default]
    Webrtc,
    /// RNNoise (nnnoiseless), a small neural network.
    Rnnoise,
}

impl std::str::FromStr for Suppressor {
    type Err = String;

    fn from_str(s: &str) -> Result<Suppressor, String> {
        match s {
            "webrtc" => Ok(Suppressor::Webrtc),
            "rnnoise" => Ok(Suppressor::Rnnoise),
            _ => Err(format!("{s:?}: expected webrtc or rnnoise")),
        }
    }
}

/// What runs on the microphone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessingConfig {
    pub echo_cancellation: bool,
    pub noise_suppression: Option<Suppressor>,
    pub auto_gain: bool,
}

impl ProcessingConfig {
    /// Nothing: the microphone as it is (what test bots use by default, so
    /// their tones arrive untouched).
    pub const OFF: ProcessingConfig = ProcessingConfig {
        echo_cancellation: false,
        noise_suppression: None,
        auto_gain: false,
    };

    /// What the app starts with: everything on, as in a browser.
    pub const APP: ProcessingConfig = ProcessingConfig {
        echo_cancellation: true,
        noise_suppression: Some(Suppressor::Webrtc),
        auto_gain: true,
    };

    fn any(self) -> bool {
        self != ProcessingConfig::OFF
    }

    /// Packs the config into a byte, for an atomic the UI writes and the
    /// capture thread reads every frame.
    pub fn to_bits(self) -> u8 {
        let ns = match self.noise_suppression {
            None => 0,
            Some(Suppressor::Webrtc) => 4,
            Some(Suppressor::Rnnoise) => 8,
        };
        u8::from(self.echo_cancellation) | (u8::from(self.auto_gain) << 1) | ns
    }

    pub fn from_bits(bits: u8) -> ProcessingConfig {
        ProcessingConfig {
            echo_cancellation: bits & 1 != 0,
            auto_gain: bits & 2 != 0,
            noise_suppression: if bits & 8 != 0 {
                Some(Suppressor::Rnnoise)
            } else if bits & 4 != 0 {
                Some(Suppressor::Webrtc)
            } else {
                None
            },
        }
    }
}

/// Room for half a second of the mixer's stereo output.
const REFERENCE_SAMPLES: usize = SAMPLE_RATE as usize;

/// The two ends of the echo reference: the mixer's and the capture's.
pub fn echo_reference() -> (EchoTap, EchoReference) {
    let (producer, consumer) = rtrb::RingBuffer::new(REFERENCE_SAMPLES);
    (EchoTap { ring: producer }, EchoReference { ring: consumer })
}

/// The mixer's end: every frame it plays goes in.
#[derive(Debug)]
pub struct EchoTap {
    ring: rtrb::Producer<f32>,
}

impl EchoTap {
    pub fn played(&mut self, frame: &StereoFrame) {
        // A full ring (a capture that is not reading: no microphone, or
        // echo cancellation off) drops the frame.
        if let Ok(chunk) = self.ring.write_chunk_uninit(frame.len()) {
            chunk.fill_from_iter(frame.iter().copied());
        }
    }
}

/// The capture's end.
#[derive(Debug)]
pub struct EchoReference {
    ring: rtrb::Consumer<f32>,
}

impl EchoReference {
    /// Takes the next 10 ms of output, downmixed to mono, if there is one.
    fn next(&mut self, mono: &mut [f32; BLOCK]) -> bool {
        let Ok(chunk) = self.ring.read_chunk(BLOCK * 2) else {
            return false;
        };
        let (a, b) = chunk.as_slices();
        mono.fill(0.0);
        for (i, s) in a.iter().chain(b.iter()).enumerate() {
            if let Some(m) = mono.get_mut(i / 2) {
                *m += 0.5 * s;
            }
        }
        chunk.commit_all();
        true
    }

    /// Throws away what is queued (echo cancellation off, or after the
    /// microphone was reopened: old output would only mislead the canceller).
    fn discard(&mut self) {
        let n = self.ring.slots();
        if let Ok(chunk) = self.ring.read_chunk(n) {
            chunk.commit_all();
        }
    }
}

/// What the processing reports (on the capture stats).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessingStats {
    /// The canceller's own estimates, once it has them.
    pub echo_delay_ms: Option<i32>,
    pub erle_db: Option<f64>,
    /// Half-second windows, oldest first (the last minute): the
    /// microphone's level before processing and after, in dBFS. With nobody
    /// talking near the microphone, their difference is the echo return
    /// loss enhancement.
    pub windows: VecDeque<(f32, f32)>,
    /// Mean processing time of a 10 ms block, in microseconds.
    pub micros_per_block: f64,
}

/// Windows kept in [`ProcessingStats::windows`].
const WINDOWS: usize = 120;
/// Frames per window (0.5 s).
const WINDOW_FRAMES: u32 = super::frames(500);

/// The capture processing chain. One per capture thread.
pub struct Processor {
    config: ProcessingConfig,
    /// High-pass filter, echo canceller, WebRTC's suppressor and the gain
    /// controller, as configured.
    apm: sonora::AudioProcessing,
    /// With RNNoise the gain controller runs after it, in its own stage.
    agc: Option<sonora::AudioProcessing>,
    rnnoise: Option<Denoiser>,
    reference: Option<EchoReference>,
    far: [f32; BLOCK],
    input: [f32; BLOCK],
    window: (f64, f64, u32),
    busy: (f64, u64),
    stats: ProcessingStats,
}

fn apm(config: sonora::Config) -> sonora::AudioProcessing {
    sonora::AudioProcessing::builder()
        .config(config)
        .capture_config(sonora::StreamConfig::new(SAMPLE_RATE, 1))
        .render_config(sonora::StreamConfig::new(SAMPLE_RATE, 1))
        .build()
}

fn gain_controller() -> GainController2 {
    GainController2 {
        adaptive_digital: Some(AdaptiveDigital::default()),
        ..GainController2::default()
    }
}

impl Processor {
    pub fn new(config: ProcessingConfig, reference: Option<EchoReference>) -> Processor {
        let mut p = Processor {
            config: ProcessingConfig::OFF,
            apm: apm(sonora::Config::default()),
            agc: None,
            rnnoise: None,
            reference,
            far: [0.0; BLOCK],
            input: [0.0; BLOCK],
            window: (0.0, 0.0, 0),
            busy: (0.0, 0),
            stats: ProcessingStats::default(),
        };
        p.build(config);
        p
    }

    pub fn config(&self) -> ProcessingConfig {
        self.config
    }

    /// Changes what runs. Turning the canceller on starts it afresh.
    pub fn configure(&mut self, config: ProcessingConfig) {
        if config != self.config {
            self.build(config);
        }
    }

    fn build(&mut self, config: ProcessingConfig) {
        let rnnoise = config.noise_suppression == Some(Suppressor::Rnnoise);
        self.apm = apm(sonora::Config {
            high_pass_filter: config.any().then(HighPassFilter::default),
            echo_canceller: config.echo_cancellation.then(EchoCanceller::default),
            noise_suppression: (config.noise_suppression == Some(Suppressor::Webrtc))
                .then(NoiseSuppression::default),
            gain_controller2: (config.auto_gain && !rnnoise).then(gain_controller),
            ..sonora::Config::default()
        });
        self.agc = (config.auto_gain && rnnoise).then(|| {
            apm(sonora::Config {
                gain_controller2: Some(gain_controller()),
                ..sonora::Config::default()
            })
        });
        self.rnnoise = rnnoise.then(Denoiser::new);
        self.config = config;
        self.stats.echo_delay_ms = None;
        self.stats.erle_db = None;
    }

    /// Forgets the far end queued so far (call after the microphone was
    /// reopened).
    pub fn reset_reference(&mut self) {
        if let Some(r) = self.reference.as_mut() {
            r.discard();
        }
    }

    /// Processes one frame in place; returns RNNoise's voice
    /// probability when it ran.
    pub fn process(&mut self, frame: &mut MonoFrame) -> Option<f32> {
        let before = super::rms(frame);
        if !self.config.echo_cancellation {
            self.reset_reference();
        }
        if !self.config.any() {
            self.account(before, before);
            return None;
        }
        let started = Instant::now();
        let mut vad = None;
        for block in frame.chunks_exact_mut(BLOCK) {
            if self.config.echo_cancellation
                && let Some(reference) = self.reference.as_mut()
            {
                while reference.next(&mut self.far) {
                    // The render output is unused (nothing is done to it).
                    let mut unused = [0.0; BLOCK];
                    if let Err(e) = self
                        .apm
                        .process_render_f32(&[&self.far], &mut [&mut unused])
                    {
                        tracing::debug!("echo reference: {e:?}");
                    }
                }
            }
            self.input.copy_from_slice(block);
            if let Err(e) = self.apm.process_capture_f32(&[&self.input], &mut [block]) {
                tracing::debug!("capture processing: {e:?}");
            }
            if let Some(d) = self.rnnoise.as_mut() {
                let p = d.process(block);
                vad = Some(vad.map_or(p, |v: f32| v.max(p)));
            }
            if let Some(agc) = self.agc.as_mut() {
                self.input.copy_from_slice(block);
                if let Err(e) = agc.process_capture_f32(&[&self.input], &mut [block]) {
                    tracing::debug!("gain control: {e:?}");
                }
            }
        }
        self.busy.0 += started.elapsed().as_secs_f64();
        self.busy.1 += (FRAME / BLOCK) as u64;
        self.account(before, super::rms(frame));
        vad
    }

    fn account(&mut self, before: f32, after: f32) {
        let (b, a, n) = &mut self.window;
        *b += f64::from(before * before);
        *a += f64::from(after * after);
        *n += 1;
        if *n < WINDOW_FRAMES {
            return;
        }
        let db = |p: f64| (10.0 * (p / f64::from(WINDOW_FRAMES)).max(1e-12).log10()) as f32;
        if self.stats.windows.len() == WINDOWS {
            self.stats.windows.pop_front();
        }
        self.stats.windows.push_back((db(*b), db(*a)));
        self.window = (0.0, 0.0, 0);
        let s = self.apm.statistics();
        self.stats.echo_delay_ms = s.delay_ms;
        self.stats.erle_db = s.echo_return_loss_enhancement;
        if self.busy.1 > 0 {
            self.stats.micros_per_block = self.busy.0 * 1e6 / self.busy.1 as f64;
        }
    }

    /// Stats, refreshed every half second.
    pub fn stats(&self) -> &ProcessingStats {
        &self.stats
    }

    /// True at the end of each half-second window (when to publish stats).
    pub fn window_closed(&self) -> bool {
        self.window.2 == 0
    }
}

/// RNNoise (nnnoiseless) on a 10 ms block; returns the voice probability.
/// It works on 16-bit-scaled floats.
struct Denoiser {
    state: Box<nnnoiseless::DenoiseState<'static>>,
    buf_in: [f32; nnnoiseless::FRAME_SIZE],
    buf_out: [f32; nnnoiseless::FRAME_SIZE],
}

impl Denoiser {
    fn new() -> Denoiser {
        Denoiser {
            state: nnnoiseless::DenoiseState::new(),
            buf_in: [0.0; nnnoiseless::FRAME_SIZE],
            buf_out: [0.0; nnnoiseless::FRAME_SIZE],
        }
    }

    fn process(&mut self, block: &mut [f32]) -> f32 {
        for (d, s) in self.buf_in.iter_mut().zip(block.iter()) {
            *d = s * 32767.0;
        }
        let vad = self.state.process_frame(&mut self.buf_out, &self.buf_in);
        for (d, s) in block.iter_mut().zip(self.buf_out.iter()) {
            *d = s / 32767.0;
        }
        vad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_survive_the_atomic() {
        for ec in [false, true] {
            for agc in [false, true] {
                for ns in [None, Some(Suppressor::Webrtc), Some(Suppressor::Rnnoise)] {
                    let c = ProcessingConfig {
                        echo_cancellation: ec,
                        noise_suppression: ns,
                        auto_gain: agc,
                    };
                    assert_eq!(ProcessingConfig::from_bits(c.to_bits()), c);
                }
            }
        }
    }

    #[test]
    fn the_reference_arrives_downmixed_in_10_ms_blocks() {
        let (mut tap, mut reference) = echo_reference();
        let mut frame: StereoFrame = [0.0; FRAME * 2];
        for (i, s) in frame.iter_mut().enumerate() {
            *s = if i % 2 == 0 { 0.25 } else { -0.5 };
        }
        tap.played(&frame);
        let mut mono = [0.0; BLOCK];
        for _ in 0..FRAME / BLOCK {
            assert!(reference.next(&mut mono));
            assert!(mono.iter().all(|s| *s == -0.125), "{:?}", &mono[..4]);
        }
        assert!(!reference.next(&mut mono), "one frame, and no more");
        // A capture that does not read: the ring fills and the mixer goes on.
        for _ in 0..100 {
            tap.played(&frame);
        }
        reference.discard();
        assert!(!reference.next(&mut mono));
    }

    /// A pure echo (nobody near the microphone) is removed: after a second,
    /// what is left is at least 30 dB below what came in.
    #[test]
    fn the_canceller_removes_a_pure_echo() {
        let (mut tap, reference) = echo_reference();
        let mut p = Processor::new(
            ProcessingConfig {
                echo_cancellation: true,
                noise_suppression: None,
                auto_gain: false,
            },
            Some(reference),
        );
        // The far end: noise in syllables (broadband, like speech, and
        // seeded); the echo comes back 60 ms later at half level.
        let mut played: VecDeque<MonoFrame> = VecDeque::new();
        let mut t = 0usize;
        let mut seed = 0x2545_f491_u32;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 - 0.5
        };
        let mut energy = (0.0f64, 0.0f64);
        let echo_frames = super::super::frames(60) as usize;
        for k in 0..super::super::frames(3000) {
            let mut out: StereoFrame = [0.0; FRAME * 2];
            let mut mono: MonoFrame = [0.0; FRAME];
            for (i, m) in mono.iter_mut().enumerate() {
                let x = (t + i) as f32 / SAMPLE_RATE as f32;
                *m = 0.5 * noise() * (2.0 * std::f32::consts::PI * 3.0 * x).sin().abs();
            }
            t += FRAME;
            for (i, m) in mono.iter().enumerate() {
                out[2 * i] = *m;
                out[2 * i + 1] = *m;
            }
            tap.played(&out);
            played.push_back(mono);
            let mut mic: MonoFrame = [0.0; FRAME];
            if played.len() > echo_frames
                && let Some(old) = played.pop_front()
            {
                for (d, s) in mic.iter_mut().zip(old.iter()) {
                    *d = 0.5 * s;
                }
            }
            let before = super::super::rms(&mic);
            p.process(&mut mic);
            if k >= super::super::frames(1000) {
                energy.0 += f64::from(before * before);
                energy.1 += f64::from(super::super::rms(&mic).powi(2));
            }
        }
        let erle = 10.0 * (energy.0 / energy.1.max(1e-15)).log10();
        assert!(erle > 30.0, "echo return loss enhancement {erle:.1} dB");
    }

    /// With everything off the microphone is untouched, bit for bit.
    #[test]
    fn off_is_off() {
        let mut p = Processor::new(ProcessingConfig::OFF, None);
        let mut frame: MonoFrame = [0.0; FRAME];
        for (i, s) in frame.iter_mut().enumerate() {
            *s = (i as f32 * 0.01).sin() * 0.3;
        }
        let copy = frame;
        p.process(&mut frame);
        assert_eq!(frame, copy);
    }

    /// How late the processing delivers what the microphone heard: a train
    /// of speech-like bursts (a 300 Hz to 3 kHz chirp, 40 ms, every 500 ms)
    /// in, the lag of the best cross-correlation out. Measured (ms): gain
    /// 0.9; the standard suppressor 6.9; the echo canceller 8.9 (with the
    /// high-pass filter and the three-band split at 48 kHz); the app's
    /// chain 14.9; RNNoise 10.9, with the echo canceller and gain 18.9. The
    /// bounds catch a stage that starts buffering more.
    #[test]
    fn the_processing_delay_is_what_its_stages_need() {
        let burst: Vec<f32> = (0..1920)
            .map(|i| {
                let t = i as f32 / 48_000.0;
                let f = 300.0 + 2700.0 * t / 0.04;
                0.3 * (std::f32::consts::PI * f * t).sin() * (std::f32::consts::PI * t / 0.04).sin()
            })
            .collect();
        let input: Vec<f32> = (0..48_000 * 4)
            .map(|i| burst.get(i % 24_000).copied().unwrap_or(0.0))
            .collect();
        let only = |echo_cancellation, noise_suppression, auto_gain| ProcessingConfig {
            echo_cancellation,
            noise_suppression,
            auto_gain,
        };
        let rnnoise = Some(Suppressor::Rnnoise);
        for (config, most_ms) in [
            (only(false, None, true), 2.0),
            (only(false, Some(Suppressor::Webrtc), false), 8.0),
            (only(true, None, false), 10.0),
            (ProcessingConfig::APP, 16.0),
            (only(false, rnnoise, false), 12.0),
            (only(true, rnnoise, true), 20.0),
        ] {
            let (mut tap, reference) = echo_reference();
            let mut p = Processor::new(config, Some(reference));
            let mut out = Vec::with_capacity(input.len());
            for chunk in input.chunks_exact(FRAME) {
                let mut f: MonoFrame = [0.0; FRAME];
                f.copy_from_slice(chunk);
                tap.played(&[0.0; 2 * FRAME]);
                p.process(&mut f);
                out.extend_from_slice(&f);
            }
            // The last two seconds, settled.
            let from = 48_000 * 2;
            let correlation = |lag: usize| -> f64 {
                (from..from + 48_000)
                    .map(|i| f64::from(input[i]) * f64::from(out[i + lag]))
                    .sum()
            };
            let lag = (0..2400)
                .max_by(|&a, &b| correlation(a).total_cmp(&correlation(b)))
                .unwrap_or(0);
            let ms = lag as f64 / 48.0;
            eprintln!("{config:?}: {ms:.1} ms");
            assert!(
                ms <= most_ms,
                "{config:?} delays the microphone by {ms:.1} ms"
            );
        }
    }
}
