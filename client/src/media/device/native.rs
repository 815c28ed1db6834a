//! Real microphones and speakers through cpal. cpal streams cannot move
//! between threads, so they are opened on the thread that uses them; their
//! callbacks only move samples through lock-free rings (rtrb): they never
//! lock, allocate or block.

use super::{MicSpec, Sink, Source, SpeakerSpec};
use crate::media::resample::Resampler;
use crate::media::{FRAME, MediaError, MonoFrame, SAMPLE_RATE, StereoFrame};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SizedSample};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
            .map_err(|e| MediaError::Device(Box::new(e)))?;
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
/// into a ring; `read` downmixes, resamples and cuts 10 ms frames.
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
    pub(super) fn open(spec: &MicSpec) -> Result<CpalSource, MediaError> {
        let name = match spec {
            MicSpec::Named(n) => Some(n.as_str()),
            _ => None,
        };
        let device = find_device(name, true)?;
        let default = device
            .default_input_config()
            .map_err(|e| MediaError::Device(e.into()))?;
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
                return Err(MediaError::SampleFormat(other));
            }
        }
        .map_err(|e| MediaError::Device(e.into()))?;
        stream.play().map_err(|e| MediaError::Device(e.into()))?;
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
                        n => MediaError::Failed(n),
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

/// The mixer writes its next 10 ms once no more than this is still queued
/// for the device: 10 ms of stereo, so our ring adds 10–20 ms (15 on
/// average) on top of the device's own buffer, and a mixer tick may come up
/// to 10 ms late without a gap.
const SINK_QUEUE: usize = 2 * SAMPLE_RATE as usize / 100;

impl CpalSink {
    pub(super) fn open(spec: &SpeakerSpec) -> Result<CpalSink, MediaError> {
        let name = match spec {
            SpeakerSpec::Named(n) => Some(n.as_str()),
            _ => None,
        };
        let device = find_device(name, false)?;
        let default = device
            .default_output_config()
            .map_err(|e| MediaError::Device(e.into()))?;
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
                return Err(MediaError::SampleFormat(other));
            }
        }
        .map_err(|e| MediaError::Device(e.into()))?;
        stream.play().map_err(|e| MediaError::Device(e.into()))?;
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
