//! The fake devices: a microphone that plays a tone, a click train, a WAV
//! file or silence, paced like a real one; speakers that write a WAV file in real time
//! or play nowhere.

use super::{Pacer, Sink, Source};
use crate::media::resample::Resampler;
use crate::media::{
    FRAME, FRAME_DURATION, MediaError, MonoFrame, SAMPLE_RATE, StereoFrame, WavProblem,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// What a fake microphone plays.
#[derive(Debug)]
pub(super) enum Generator {
    Tone { hz: f32, phase: f32 },
    Clicks { period: usize, clock: usize },
    Wav { samples: Vec<f32>, at: usize },
    Silence,
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
            Generator::Silence => frame.fill(0.0),
            Generator::Wav { samples, at } => {
                for s in frame.iter_mut() {
                    *s = samples.get(*at).copied().unwrap_or(0.0);
                    *at = (*at + 1) % samples.len().max(1);
                }
            }
        }
    }
}

/// A fake microphone: generates 10 ms at a time, paced like a real one.
#[derive(Debug)]
pub struct FakeSource {
    name: String,
    generator: Generator,
    pacer: Pacer,
    started: SystemTime,
    frames: u64,
    /// Frames of silence before the generator starts.
    silent: u64,
    /// The frame at which the microphone stops working.
    fail_at: Option<u64>,
}

impl FakeSource {
    pub(super) fn new(name: String, generator: Generator) -> FakeSource {
        FakeSource {
            name,
            generator,
            started: SystemTime::now(),
            pacer: Pacer::new(),
            frames: 0,
            silent: 0,
            fail_at: None,
        }
    }

    /// Silent for `start` seconds; fails after `fail` seconds.
    pub(super) fn timed(mut self, start: f32, fail: Option<f32>) -> FakeSource {
        fn frames(s: f32) -> u64 {
            (s / FRAME_DURATION.as_secs_f32()) as u64
        }
        self.silent = frames(start);
        self.fail_at = fail.map(frames);
        if start > 0.0 {
            self.name = format!("{}, from {start} s", self.name);
        }
        self
    }
}

impl Source for FakeSource {
    fn read(&mut self, frame: &mut MonoFrame) -> Result<(), MediaError> {
        // The frame is complete once its 10 ms have passed, as with a device.
        if self.fail_at.is_some_and(|at| self.frames >= at) {
            return Err(MediaError::Stopped);
        }
        self.pacer.wait();
        self.frames += 1;
        if self.frames <= self.silent {
            frame.fill(0.0);
        } else {
            self.generator.fill(frame);
        }
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
    let err = |problem: WavProblem| MediaError::File {
        path: path.to_path_buf(),
        problem,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.into()))?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(|e| err(e.into()))?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(|e| err(e.into()))?
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    if mono.is_empty() {
        return Err(err(WavProblem::Empty));
    }
    let mut out = Vec::with_capacity(mono.len());
    Resampler::new(spec.sample_rate, SAMPLE_RATE).process(&mono, &mut out);
    Ok(out)
}

/// Reads a stereo WAV recording (as [`WavSink`] writes them) into left and
/// right channels in -1..1.
pub fn read_wav_stereo(path: &std::path::Path) -> Result<(Vec<f32>, Vec<f32>), MediaError> {
    let err = |problem: WavProblem| MediaError::File {
        path: path.to_path_buf(),
        problem,
    };
    let mut reader = hound::WavReader::open(path).map_err(|e| err(e.into()))?;
    let spec = reader.spec();
    if spec.channels != 2 || spec.sample_format != hound::SampleFormat::Int {
        return Err(err(WavProblem::NotStereo16));
    }
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.into()))?;
    let (mut l, mut r) = (Vec::new(), Vec::new());
    for pair in samples.chunks_exact(2) {
        l.push(f32::from(pair[0]) / 32767.0);
        r.push(f32::from(pair[1]) / 32767.0);
    }
    Ok((l, r))
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
    /// A fake that stops working at this time.
    fail_at: Option<Instant>,
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
            path: path.to_path_buf(),
            problem: e.into(),
        })?;
        Ok(WavSink {
            path: path.to_path_buf(),
            writer,
            pacer: Pacer::new(),
            clock: RecordingClock {
                frames: Arc::new(AtomicU64::new(0)),
                // Frame 0 is written (played) when its first 10 ms tick ends.
                started: SystemTime::now() + FRAME_DURATION,
            },
            since_flush: 0,
            fail_at: None,
        })
    }

    /// Makes this file a speaker that stops working after `after`.
    pub fn failing_after(mut self, after: Duration) -> WavSink {
        self.fail_at = Some(Instant::now() + after);
        self
    }

    pub fn clock(&self) -> RecordingClock {
        self.clock.clone()
    }
}

impl Sink for WavSink {
    fn wait(&mut self) -> Result<(), MediaError> {
        if self.fail_at.is_some_and(|t| Instant::now() >= t) {
            return Err(MediaError::Stopped);
        }
        self.pacer.wait();
        Ok(())
    }

    fn write(&mut self, frame: &StereoFrame) -> Result<(), MediaError> {
        let err = |e: hound::Error| MediaError::File {
            path: self.path.clone(),
            problem: e.into(),
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
    use crate::media::device::{MicSpec, open_source};
    use std::time::{Duration, Instant};

    #[test]
    fn a_fake_mic_keeps_real_time() {
        let mut src = open_source(&MicSpec::Tone(440.0)).unwrap();
        let mut frame = [0.0; FRAME];
        let start = Instant::now();
        for _ in 0..10 {
            src.read(&mut frame).unwrap();
        }
        let took = start.elapsed();
        assert!(
            took >= FRAME_DURATION * 10 - Duration::from_millis(5),
            "{took:?}"
        );
        assert!((crate::media::rms(&frame) - 0.3 / 2f32.sqrt()).abs() < 0.01);
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
