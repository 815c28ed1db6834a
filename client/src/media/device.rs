//! The hardware edge: microphones and speakers through cpal, and the fake
//! devices that stand in for them (a tone, a click train or a WAV file for a
//! microphone; a WAV file for a speaker). A source hands out 20 ms frames at
//! the pace of real time; a sink takes them at that pace. Everything after a
//! source and before a sink is the same pipeline whichever device it is.
//!
//! cpal streams cannot move between threads, so sources and sinks are opened
//! on the thread that uses them. The device callbacks only move samples
//! through lock-free rings: they never lock, allocate or block.

use super::resample::Resampler;
use super::{FRAME, FRAME_DURATION, MediaError, MonoFrame, SAMPLE_RATE, StereoFrame};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// Where voice comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum MicSpec {
    /// The system's default microphone.
    Default,
    /// A microphone by name (as [`input_devices`] lists them).
    Named(String),
    /// A sine tone at this frequency (Hz), at -13 dBFS.
    Tone(f32),
    /// A click every this many milliseconds (5 ms bursts at 1 kHz), for
    /// measuring latency.
    Clicks(u32),
    /// A WAV file, looped.
    Wav(PathBuf),
    /// No microphone: listen only.
    None,
}

impl MicSpec {
    /// Parses a `--fake-mic` value: `tone:HZ`, `clicks:MS` or `wav:PATH`.
    pub fn parse_fake(s: &str) -> Result<MicSpec, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "tone" => match arg.parse::<f32>() {
                Ok(hz) if (20.0..=20_000.0).contains(&hz) => Ok(MicSpec::Tone(hz)),
                _ => Err(format!(
                    "tone:HZ needs a frequency from 20 to 20000, not {arg:?}"
                )),
            },
            "clicks" => match arg.parse::<u32>() {
                Ok(ms) if (50..=10_000).contains(&ms) => Ok(MicSpec::Clicks(ms)),
                _ => Err(format!(
                    "clicks:MS needs a period from 50 to 10000 ms, not {arg:?}"
                )),
            },
            "wav" if !arg.is_empty() => Ok(MicSpec::Wav(PathBuf::from(arg))),
            _ => Err(format!(
                "unknown fake microphone {s:?}: use tone:HZ, clicks:MS or wav:PATH"
            )),
        }
    }

    pub fn is_fake(&self) -> bool {
        matches!(
            self,
            MicSpec::Tone(_) | MicSpec::Clicks(_) | MicSpec::Wav(_)
        )
    }
}

/// Where the mixed voices go.
#[derive(Clone, Debug, PartialEq)]
pub enum SpeakerSpec {
    Default,
    Named(String),
    /// A stereo 48 kHz 16-bit WAV file, written at the pace of real time.
    Wav(PathBuf),
    /// Nowhere (no speaker); the mixer still runs, so levels are measured.
    None,
}

impl SpeakerSpec {
    /// Parses an `--audio-out` value: `wav:PATH`, `none` or `default`.
    pub fn parse(s: &str) -> Result<SpeakerSpec, String> {
        match s.split_once(':') {
            Some(("wav", path)) if !path.is_empty() => Ok(SpeakerSpec::Wav(PathBuf::from(path))),
            None if s == "none" => Ok(SpeakerSpec::None),
            None if s == "default" => Ok(SpeakerSpec::Default),
            _ => Err(format!(
                "unknown audio output {s:?}: use wav:PATH, none or default"
            )),
        }
    }
}

/// Names of the microphones cpal can see.
pub fn input_devices() -> Vec<String> {
    let host = cpal::default_host();
    host.input_devices()
        .map(|devs| devs.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

/// Names of the speakers cpal can see.
pub fn output_devices() -> Vec<String> {
    let host = cpal::default_host();
    host.output_devices()
        .map(|devs| devs.filter_map(|d| d.name().ok()).collect())
        .unwrap_or_default()
}

/// A place voice comes from, one 20 ms frame at a time.
pub trait Source {
    /// Fills `frame` with the next 20 ms, waiting until they have been captured.
    fn read(&mut self, frame: &mut MonoFrame) -> Result<(), MediaError>;
    /// A human-readable name for settings and logs.
    fn name(&self) -> String;
    /// For fakes: the wall-clock time of sample 0 (sample `i` is captured at
    /// `started + i / 48 kHz`), for latency measurements.
    fn started(&self) -> Option<SystemTime> {
        None
    }
}

/// A place mixed voice goes to, one 20 ms stereo frame at a time.
pub trait Sink {
    /// Waits until the device wants the next frame.
    fn wait(&mut self) -> Result<(), MediaError>;
    fn write(&mut self, frame: &StereoFrame) -> Result<(), MediaError>;
    fn name(&self) -> String;
}

/// Opens a microphone (or fake) on the calling thread.
pub fn open_source(spec: &MicSpec) -> Result<Box<dyn Source>, MediaError> {
    Ok(match spec {
        MicSpec::Default | MicSpec::Named(_) => Box::new(CpalSource::open(spec)?),
        MicSpec::Tone(hz) => Box::new(FakeSource::new(
            format!("tone {hz} Hz"),
            Generator::Tone {
                hz: *hz,
                phase: 0.0,
            },
        )),
        MicSpec::Clicks(ms) => Box::new(FakeSource::new(
            format!("clicks every {ms} ms"),
            Generator::Clicks {
                period: (*ms as usize) * SAMPLE_RATE as usize / 1000,
                clock: 0,
            },
        )),
        MicSpec::Wav(path) => Box::new(FakeSource::new(
            format!("file {}", path.display()),
            Generator::Wav {
                samples: read_wav_mono(path)?,
                at: 0,
            },
        )),
        MicSpec::None => return Err(MediaError::NoInputDevice),
    })
}

/// Opens a speaker (or WAV file) on the calling thread.
pub fn open_sink(spec: &SpeakerSpec) -> Result<Box<dyn Sink>, MediaError> {
    Ok(match spec {
        SpeakerSpec::Default | SpeakerSpec::Named(_) => Box::new(CpalSink::open(spec)?),
        SpeakerSpec::Wav(path) => Box::new(WavSink::create(path)?),
        SpeakerSpec::None => Box::new(NullSink::new()),
    })
}

/// Sleeps until `deadline`. Linux wakes sleepers within ~0.1 ms, plenty for
/// 20 ms frames; spinning for the last bit cost ~7% of a core per pacer.
pub(crate) fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// Real-time pacing for fakes: frame `n` is due at `start + n * 20 ms`.
/// If the thread fell far behind (a suspended laptop, a debugger), it skips
/// ahead instead of bursting.
#[derive(Debug)]
pub struct Pacer {
    start: Instant,
    frames: u64,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            start: Instant::now(),
            frames: 0,
        }
    }

    /// Waits for the next frame's deadline.
    pub fn wait(&mut self) {
        self.frames += 1;
        let due = self.start + FRAME_DURATION * self.frames as u32;
        let now = Instant::now();
        if now > due + Duration::from_millis(200) {
            self.start = now - FRAME_DURATION * self.frames as u32;
            return;
        }
        sleep_until(due);
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// What a fake microphone plays.
#[derive(Debug)]
enum Generator {
    Tone { hz: f32, phase: f32 },
    Clicks { period: usize, clock: usize },
    Wav { samples: Vec<f32>, at: usize },
}

/// Samples per click burst (5 ms).
pub const CLICK_LEN: usize = 240;

impl Generator {
    fn fill(&mut self, frame: &mut MonoFrame) {
        match self {
            Generator::Tone { hz, phase } => {
                let step = 2.0 * std::f32::consts::PI * *hz / SAMPLE_RATE as f32;
                for s in frame.iter_mut() {
                    *s = 0.3 * phase.sin();
                    *phase = (*phase + step) % (2.0 * std::f32::consts::PI);
                }
            }
            Generator::Clicks { period, clock } => {
                for s in frame.iter_mut() {
                    let k = *clock % *period;
                    *s = if k < CLICK_LEN {
                        // A Hann-windowed 1 kHz burst: survives a voice codec
                        // and has a clear onset.
                        let w = (std::f32::consts::PI * k as f32 / CLICK_LEN as f32).sin();
                        0.8 * w
                            * w
                            * (2.0 * std::f32::consts::PI * 1000.0 * k as f32 / SAMPLE_RATE as f32)
                                .sin()
                    } else {
                        0.0
                    };
                    *clock += 1;
                }
            }
            Generator::Wav { samples, at } => {
                for s in frame.iter_mut() {
                    *s = samples.get(*at).copied().unwrap_or(0.0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
        }
    }
}

/// A fake microphone: generates 20 ms at a time, paced like a real one.
#[derive(Debug)]
pub struct FakeSource {
    name: String,
    generator: Generator,
    pacer: Pacer,
    started: SystemTime,
}

impl FakeSource {
    fn new(name: String, generator: Generator) -> FakeSource {
        FakeSource {
            name,
            generator,
            started: SystemTime::now(),
            pacer: Pacer::new(),
        }
    }
}

impl Source for FakeSource {
    fn read(&mut self, frame: &mut MonoFrame) -> Result<(), MediaError> {
        // The frame is complete once its 20 ms have passed, as with a device.
        self.pacer.wait();
        self.generator.fill(frame);
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn started(&self) -> Option<SystemTime> {
        Some(self.started)
    }
}

/// Reads a WAV file as mono 48 kHz samples in -1..1.
pub fn read_wav_mono(path: &std::path::Path) -> Result<Vec<f32>, MediaError> {
    let err = |message: String| MediaError::File {
        path: path.display().to_string(),
        message,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.to_string()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.to_string()))?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    if mono.is_empty() {
        return Err(err("no samples".into()));
    }
    let mut out = Vec::with_capacity(mono.len());
    Resampler::new(spec.sample_rate, SAMPLE_RATE).process(&mono, &mut out);
    Ok(out)
}

/// Reads a stereo WAV recording (as [`WavSink`] writes them) into left and
/// right channels in -1..1.
pub fn read_wav_stereo(path: &std::path::Path) -> Result<(Vec<f32>, Vec<f32>), MediaError> {
    let err = |message: String| MediaError::File {
        path: path.display().to_string(),
        message,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels != 2 || spec.sample_format != hound::SampleFormat::Int {
        return Err(err("not a 16-bit stereo recording".into()));
    }
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for pair in samples.chunks_exact(2) {
        l.push(f32::from(pair[0]) / 32767.0);
        r.push(f32::from(pair[1]) / 32767.0);
    }
    Ok((l, r))
}

// ------------------------------------------------------------------ cpal

fn find_device(spec_name: Option<&str>, input: bool) -> Result<cpal::Device, MediaError> {
    let host = cpal::default_host();
    match spec_name {
        None => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or(if input {
            MediaError::NoInputDevice
        } else {
            MediaError::NoOutputDevice
        }),
        Some(name) => {
            let mut devices = if input {
                host.input_devices()
            } else {
                host.output_devices()
            }
            .map_err(|e| MediaError::Device(e.to_string()))?;
            devices
                .find(|d| d.name().is_ok_and(|n| n == name))
                .ok_or_else(|| MediaError::DeviceNotFound(name.to_string()))
        }
    }
}

/// Picks 48 kHz if the device can do it, else its default rate.
fn pick_config(
    configs: Vec<cpal::SupportedStreamConfigRange>,
    default: cpal::SupportedStreamConfig,
    want_channels: u16,
) -> cpal::SupportedStreamConfig {
    let rate = cpal::SampleRate(SAMPLE_RATE);
    let usable = |c: &cpal::SupportedStreamConfigRange| {
        matches!(
            c.sample_format(),
            SampleFormat::F32 | SampleFormat::I16 | SampleFormat::I32 | SampleFormat::U16
        ) && c.min_sample_rate() <= rate
            && rate <= c.max_sample_rate()
    };
    configs
        .iter()
        .filter(|c| usable(c))
        .min_by_key(|c| {
            (
                c.channels() != want_channels,
                c.sample_format() != SampleFormat::F32,
            )
        })
        .and_then(|c| (*c).try_with_sample_rate(rate))
        .unwrap_or(default)
}

/// Samples buffered between the device callback and our thread: 1 s.
const RING: usize = SAMPLE_RATE as usize * 2;

/// A microphone through cpal. The callback pushes raw interleaved samples
/// into a ring; `read` downmixes, resamples and cuts 20 ms frames.
pub struct CpalSource {
    name: String,
    _stream: cpal::Stream,
    ring: rtrb::Consumer<f32>,
    channels: usize,
    resampler: Resampler,
    pending: Vec<f32>,
    scratch: Vec<f32>,
    mono: Vec<f32>,
    errors: Arc<AtomicU64>,
}

impl CpalSource {
    fn open(spec: &MicSpec) -> Result<CpalSource, MediaError> {
        let name = match spec {
            MicSpec::Named(n) => Some(n.as_str()),
            _ => None,
        };
        let device = find_device(name, true)?;
        let dev_err = |e: &dyn std::fmt::Display| MediaError::Device(e.to_string());
        let default = device.default_input_config().map_err(|e| dev_err(&e))?;
        let configs = device
            .supported_input_configs()
            .map(|c| c.collect())
            .unwrap_or_default();
        let config = pick_config(configs, default, 1);
        let (producer, ring) = rtrb::RingBuffer::new(RING);
        let errors = Arc::new(AtomicU64::new(0));
        let stream_config: cpal::StreamConfig = config.config();
        let stream = match config.sample_format() {
            SampleFormat::F32 => build_input::<f32>(&device, &stream_config, producer, &errors),
            SampleFormat::I16 => build_input::<i16>(&device, &stream_config, producer, &errors),
            SampleFormat::I32 => build_input::<i32>(&device, &stream_config, producer, &errors),
            SampleFormat::U16 => build_input::<u16>(&device, &stream_config, producer, &errors),
            other => {
                return Err(MediaError::Device(format!(
                    "unsupported sample format {other}"
                )));
            }
        }
        .map_err(|e| dev_err(&e))?;
        stream.play().map_err(|e| dev_err(&e))?;
        Ok(CpalSource {
            name: device.name().unwrap_or_else(|_| "microphone".into()),
            _stream: stream,
            ring,
            channels: usize::from(stream_config.channels.max(1)),
            resampler: Resampler::new(stream_config.sample_rate.0, SAMPLE_RATE),
            pending: Vec::with_capacity(FRAME * 4),
            scratch: Vec::with_capacity(FRAME * 8),
            mono: Vec::with_capacity(FRAME * 4),
            errors,
        })
    }
}

fn build_input<T: SizedSample + Send + 'static>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut producer: rtrb::Producer<f32>,
    errors: &Arc<AtomicU64>,
) -> Result<cpal::Stream, cpal::BuildStreamError>
where
    f32: cpal::FromSample<T>,
{
    let errors = errors.clone();
    device.build_input_stream(
        config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            // Real-time: no locks, no allocation. If our thread fell behind,
            // the newest samples are dropped.
            for &s in data {
                if producer.push(s.to_sample::<f32>()).is_err() {
                    break;
                }
            }
        },
        move |e| {
            errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("microphone: {e}");
        },
        None,
    )
}

impl Source for CpalSource {
    fn read(&mut self, frame: &mut MonoFrame) -> Result<(), MediaError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.pending.len() < FRAME {
            let n = self.ring.slots();
            if n >= self.channels {
                let take = n - n % self.channels;
                self.scratch.clear();
                if let Ok(chunk) = self.ring.read_chunk(take) {
                    let (a, b) = chunk.as_slices();
                    self.scratch.extend_from_slice(a);
                    self.scratch.extend_from_slice(b);
                    chunk.commit_all();
                }
                let ch = self.channels;
                self.mono.clear();
                self.mono.extend(
                    self.scratch
                        .chunks(ch)
                        .map(|c| c.iter().sum::<f32>() / ch as f32),
                );
                self.resampler.process(&self.mono, &mut self.pending);
            } else {
                if Instant::now() > deadline {
                    return Err(match self.errors.load(Ordering::Relaxed) {
                        0 => MediaError::Stopped,
                        n => MediaError::Device(format!("the microphone stopped after {n} errors")),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        frame.copy_from_slice(&self.pending[..FRAME]);
        self.pending.drain(..FRAME);
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A speaker through cpal. `write` pushes stereo samples into a ring that the
/// callback drains; `wait` holds the mixer back while more than 10 ms are queued.
pub struct CpalSink {
    name: String,
    _stream: cpal::Stream,
    ring: rtrb::Producer<f32>,
    /// Device frames per 48 kHz frame, via this resampler per channel.
    resamplers: [Resampler; 2],
    scratch: [Vec<f32>; 2],
    mono: Vec<f32>,
}

/// The mixer writes its next 20 ms once no more than this is still queued
/// for the device: 10 ms of stereo, so our ring adds 10–30 ms (20 on
/// average) on top of the device's own buffer, and a mixer tick may come up
/// to 10 ms late without a gap.
const SINK_QUEUE: usize = FRAME;

impl CpalSink {
    fn open(spec: &SpeakerSpec) -> Result<CpalSink, MediaError> {
        let name = match spec {
            SpeakerSpec::Named(n) => Some(n.as_str()),
            _ => None,
        };
        let device = find_device(name, false)?;
        let dev_err = |e: &dyn std::fmt::Display| MediaError::Device(e.to_string());
        let default = device.default_output_config().map_err(|e| dev_err(&e))?;
        let configs = device
            .supported_output_configs()
            .map(|c| c.collect())
            .unwrap_or_default();
        let config = pick_config(configs, default, 2);
        let stream_config: cpal::StreamConfig = config.config();
        let (ring, consumer) = rtrb::RingBuffer::new(RING);
        let channels = usize::from(stream_config.channels.max(1));
        let stream = match config.sample_format() {
            SampleFormat::F32 => build_output::<f32>(&device, &stream_config, consumer, channels),
            SampleFormat::I16 => build_output::<i16>(&device, &stream_config, consumer, channels),
            SampleFormat::I32 => build_output::<i32>(&device, &stream_config, consumer, channels),
            SampleFormat::U16 => build_output::<u16>(&device, &stream_config, consumer, channels),
            other => {
                return Err(MediaError::Device(format!(
                    "unsupported sample format {other}"
                )));
            }
        }
        .map_err(|e| dev_err(&e))?;
        stream.play().map_err(|e| dev_err(&e))?;
        let rate = stream_config.sample_rate.0;
        Ok(CpalSink {
            name: device.name().unwrap_or_else(|_| "speaker".into()),
            _stream: stream,
            ring,
            resamplers: [
                Resampler::new(SAMPLE_RATE, rate),
                Resampler::new(SAMPLE_RATE, rate),
            ],
            scratch: [Vec::with_capacity(FRAME * 2), Vec::with_capacity(FRAME * 2)],
            mono: Vec::with_capacity(FRAME),
        })
    }
}

fn build_output<T: SizedSample + cpal::FromSample<f32> + Send + 'static>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut consumer: rtrb::Consumer<f32>,
    channels: usize,
) -> Result<cpal::Stream, cpal::BuildStreamError> {
    device.build_output_stream(
        config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| {
            // Real-time: no locks, no allocation; silence on underrun.
            for frame in data.chunks_mut(channels) {
                let l = consumer.pop().unwrap_or(0.0);
                let r = consumer.pop().unwrap_or(0.0);
                match frame {
                    [only] => *only = T::from_sample((l + r) * 0.5),
                    [a, b, rest @ ..] => {
                        *a = T::from_sample(l);
                        *b = T::from_sample(r);
                        for x in rest {
                            *x = T::EQUILIBRIUM;
                        }
                    }
                    [] => {}
                }
            }
        },
        |e| tracing::warn!("speaker: {e}"),
        None,
    )
}

impl Sink for CpalSink {
    fn wait(&mut self) -> Result<(), MediaError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while RING - self.ring.slots() > SINK_QUEUE {
            if Instant::now() > deadline {
                return Err(MediaError::Stopped);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn write(&mut self, frame: &StereoFrame) -> Result<(), MediaError> {
        for (ch, (resampler, out)) in self
            .resamplers
            .iter_mut()
            .zip(self.scratch.iter_mut())
            .enumerate()
        {
            out.clear();
            self.mono.clear();
            self.mono.extend(frame.iter().skip(ch).step_by(2));
            resampler.process(&self.mono, out);
        }
        let n = self.scratch[0].len().min(self.scratch[1].len());
        for i in 0..n {
            if self.ring.slots() < 2 {
                break;
            }
            let _ = self.ring.push(self.scratch[0][i]);
            let _ = self.ring.push(self.scratch[1][i]);
        }
        Ok(())
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

/// Where a WAV recording stands: frames written and when sample 0 "played".
#[derive(Debug, Clone)]
pub struct RecordingClock {
    pub frames: Arc<AtomicU64>,
    pub started: SystemTime,
}

impl RecordingClock {
    /// Stereo sample frames written so far.
    pub fn position(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

/// A speaker that is a file: 48 kHz stereo 16-bit WAV, paced in real time.
/// The header is rewritten every second, so the file is valid even if the
/// process is killed.
pub struct WavSink {
    path: PathBuf,
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    pacer: Pacer,
    clock: RecordingClock,
    since_flush: u32,
}

impl WavSink {
    pub fn create(path: &std::path::Path) -> Result<WavSink, MediaError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(|e| MediaError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer,
            pacer: Pacer::new(),
            clock: RecordingClock {
                frames: Arc::new(AtomicU64::new(0)),
                // Frame 0 is written (played) when its first 20 ms tick ends.
                started: SystemTime::now() + FRAME_DURATION,
            },
            since_flush: 0,
        })
    }

    pub fn clock(&self) -> RecordingClock {
        self.clock.clone()
    }
}

impl Sink for WavSink {
    fn wait(&mut self) -> Result<(), MediaError> {
        self.pacer.wait();
        Ok(())
    }

    fn write(&mut self, frame: &StereoFrame) -> Result<(), MediaError> {
        let err = |e: hound::Error| MediaError::File {
            path: self.path.display().to_string(),
            message: e.to_string(),
        };
        for &s in frame.iter() {
            let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
            self.writer.write_sample(v).map_err(err)?;
        }
        self.clock.frames.fetch_add(FRAME as u64, Ordering::Relaxed);
        self.since_flush += 1;
        if self.since_flush >= 50 {
            self.since_flush = 0;
            self.writer.flush().map_err(err)?;
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!("file {}", self.path.display())
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        let _ = self.writer.flush();
    }
}

/// No speaker: keeps time and drops the audio.
#[derive(Debug, Default)]
pub struct NullSink {
    pacer: Pacer,
}

impl NullSink {
    pub fn new() -> NullSink {
        NullSink::default()
    }
}

impl Sink for NullSink {
    fn wait(&mut self) -> Result<(), MediaError> {
        self.pacer.wait();
        Ok(())
    }

    fn write(&mut self, _frame: &StereoFrame) -> Result<(), MediaError> {
        Ok(())
    }

    fn name(&self) -> String {
        "no speaker".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_specs_parse_with_clear_errors() {
        assert_eq!(MicSpec::parse_fake("tone:440"), Ok(MicSpec::Tone(440.0)));
        assert_eq!(MicSpec::parse_fake("clicks:500"), Ok(MicSpec::Clicks(500)));
        assert_eq!(
            MicSpec::parse_fake("wav:/tmp/a.wav"),
            Ok(MicSpec::Wav("/tmp/a.wav".into()))
        );
        assert!(
            MicSpec::parse_fake("tone:abc")
                .unwrap_err()
                .contains("frequency")
        );
        assert!(MicSpec::parse_fake("beep").unwrap_err().contains("tone:HZ"));
        assert_eq!(
            SpeakerSpec::parse("wav:out.wav"),
            Ok(SpeakerSpec::Wav("out.wav".into()))
        );
        assert!(SpeakerSpec::parse("mp3:x").is_err());
    }

    #[test]
    fn a_fake_mic_keeps_real_time() {
        let mut src = open_source(&MicSpec::Tone(440.0)).unwrap();
        let mut frame = [0.0; FRAME];
        let start = Instant::now();
        for _ in 0..10 {
            src.read(&mut frame).unwrap();
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!((super::super::rms(&frame) - 0.3 / 2f32.sqrt()).abs() < 0.01);
    }

    #[test]
    fn wav_files_round_trip_through_sink_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        {
            let mut sink = WavSink::create(&path).unwrap();
            let mut frame = [0.0f32; FRAME * 2];
            for (i, s) in frame.iter_mut().enumerate() {
                *s = if i % 2 == 0 { 0.5 } else { -0.25 };
            }
            sink.write(&frame).unwrap();
            assert_eq!(sink.clock().position(), FRAME as u64);
        }
        let mono = read_wav_mono(&path).unwrap();
        assert_eq!(mono.len(), FRAME);
        assert!((mono[100] - 0.125).abs() < 0.001);
        let missing = read_wav_mono(std::path::Path::new("/nonexistent.wav")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent.wav"));
    }
}
