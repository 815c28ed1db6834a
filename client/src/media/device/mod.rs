//! The hardware edge: microphones and speakers through cpal ([`native`]), and the fake
//! devices that stand in for them ([`fake`]: a tone, a click train or a WAV file for a
//! microphone; a WAV file for a speaker). A source hands out 10 ms frames at
//! the pace of real time; a sink takes them at that pace. Everything after a
//! source and before a sink is the same pipeline whichever device it is.
//!
//! cpal streams cannot move between threads, so sources and sinks are opened
//! on the thread that uses them. The device callbacks only move samples
//! through lock-free rings: they never lock, allocate or block.

mod fake;
mod native;

pub use fake::{CLICK_LEN, NullSink, RecordingClock, WavSink, read_wav_mono, read_wav_stereo};
pub use native::{input_devices, output_devices};

use super::{FRAME_DURATION, MediaError, MonoFrame, SAMPLE_RATE, StereoFrame};
use fake::{FakeSource, Generator};
use native::{CpalSink, CpalSource};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// A device given on the command line that Hallway does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("tone:HZ needs a frequency from 20 to 20000, not {0:?}")]
    Tone(String),
    #[error("clicks:MS needs a period from 50 to 10000 ms, not {0:?}")]
    Clicks(String),
    #[error(
        "unknown fake microphone {0:?}: use tone:HZ, clicks:MS, wav:PATH or silence, \
         optionally followed by ,start=S (silent for S seconds) and ,fail=S (stops after S)"
    )]
    Mic(String),
    #[error(
        "unknown audio output {0:?}: use wav:PATH (optionally followed by ,fail=S: \
         stops after S seconds), none or default"
    )]
    Speaker(String),
}

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
    /// A microphone in a silent room (with `--fake-room` it hears only
    /// the speaker).
    Silence,
    /// A fake microphone that is silent for its first `start` seconds
    /// (someone who answers rather than speaks first), and, with `fail`,
    /// stops working after that many seconds (a headset unplugged).
    Timed {
        mic: Box<MicSpec>,
        start: f32,
        fail: Option<f32>,
    },
    /// No microphone: listen only.
    None,
}

impl MicSpec {
    /// Parses a `--fake-mic` value: `tone:HZ`, `clicks:MS`, `wav:PATH` or
    /// `silence`.
    pub fn parse_fake(s: &str) -> Result<MicSpec, SpecError> {
        // Options come last: ",start=S" and ",fail=S".
        let (mut base, mut start, mut fail) = (s, None, None);
        while let Some((head, tail)) = base.rsplit_once(',') {
            let seconds = |v: &str| match v.parse::<f32>() {
                Ok(x) if (0.0..=86_400.0).contains(&x) => Ok(x),
                _ => Err(SpecError::Mic(s.to_owned())),
            };
            match tail.split_once('=') {
                Some(("start", v)) if start.is_none() => start = Some(seconds(v)?),
                Some(("fail", v)) if fail.is_none() => fail = Some(seconds(v)?),
                _ => break,
            }
            base = head;
        }
        let mic = MicSpec::parse_plain_fake(base)?;
        Ok(if start.is_some() || fail.is_some() {
            MicSpec::Timed {
                mic: Box::new(mic),
                start: start.unwrap_or(0.0),
                fail,
            }
        } else {
            mic
        })
    }

    fn parse_plain_fake(s: &str) -> Result<MicSpec, SpecError> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "tone" => match arg.parse::<f32>() {
                Ok(hz) if (20.0..=20_000.0).contains(&hz) => Ok(MicSpec::Tone(hz)),
                _ => Err(SpecError::Tone(arg.to_owned())),
            },
            "clicks" => match arg.parse::<u32>() {
                Ok(ms) if (50..=10_000).contains(&ms) => Ok(MicSpec::Clicks(ms)),
                _ => Err(SpecError::Clicks(arg.to_owned())),
            },
            "wav" if !arg.is_empty() => Ok(MicSpec::Wav(PathBuf::from(arg))),
            "silence" if arg.is_empty() => Ok(MicSpec::Silence),
            _ => Err(SpecError::Mic(s.to_owned())),
        }
    }

    pub fn is_fake(&self) -> bool {
        matches!(
            self,
            MicSpec::Tone(_)
                | MicSpec::Clicks(_)
                | MicSpec::Wav(_)
                | MicSpec::Silence
                | MicSpec::Timed { .. }
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
    /// A WAV file that stops working after `fail` seconds, as a headset
    /// unplugged mid-call.
    FailingWav {
        path: PathBuf,
        fail: f32,
    },
    /// Nowhere (no speaker); the mixer still runs, so levels are measured.
    None,
}

impl SpeakerSpec {
    /// Parses an `--audio-out` value: `wav:PATH` (optionally followed by
    /// `,fail=S`), `none` or `default`.
    pub fn parse(s: &str) -> Result<SpeakerSpec, SpecError> {
        let err = || SpecError::Speaker(s.to_owned());
        match s.split_once(':') {
            Some(("wav", rest)) => {
                let (path, fail) = match rest.rsplit_once(",fail=") {
                    Some((path, secs)) => match secs.parse::<f32>() {
                        Ok(x) if (0.0..=86_400.0).contains(&x) => (path, Some(x)),
                        _ => return Err(err()),
                    },
                    None => (rest, None),
                };
                if path.is_empty() {
                    return Err(err());
                }
                let path = PathBuf::from(path);
                Ok(match fail {
                    Some(fail) => SpeakerSpec::FailingWav { path, fail },
                    None => SpeakerSpec::Wav(path),
                })
            }
            None if s == "none" => Ok(SpeakerSpec::None),
            None if s == "default" => Ok(SpeakerSpec::Default),
            _ => Err(err()),
        }
    }
}

/// A place voice comes from, one 10 ms frame at a time.
pub trait Source {
    /// Fills `frame` with the next 10 ms, waiting until they have been captured.
    fn read(&mut self, frame: &mut MonoFrame) -> Result<(), MediaError>;
    /// A human-readable name for settings and logs.
    fn name(&self) -> String;
    /// For fakes: the wall-clock time of sample 0 (sample `i` is captured at
    /// `started + i / 48 kHz`), for latency measurements.
    fn started(&self) -> Option<SystemTime> {
        None
    }
}

/// A place mixed voice goes to, one 10 ms stereo frame at a time.
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
        MicSpec::None => return Err(MediaError::NoInputDevice),
        fake => Box::new(open_fake(fake)?),
    })
}

fn open_fake(spec: &MicSpec) -> Result<FakeSource, MediaError> {
    Ok(match spec {
        MicSpec::Default | MicSpec::Named(_) | MicSpec::None => {
            return Err(MediaError::NoInputDevice);
        }
        MicSpec::Timed { mic, start, fail } => {
            if matches!(**mic, MicSpec::Timed { .. }) {
                return Err(MediaError::NoInputDevice);
            }
            open_fake(mic)?.timed(*start, *fail)
        }
        MicSpec::Tone(hz) => FakeSource::new(
            format!("tone {hz} Hz"),
            Generator::Tone {
                hz: *hz,
                phase: 0.0,
            },
        ),
        MicSpec::Clicks(ms) => FakeSource::new(
            format!("clicks every {ms} ms"),
            Generator::Clicks {
                period: (*ms as usize) * SAMPLE_RATE as usize / 1000,
                clock: 0,
            },
        ),
        MicSpec::Wav(path) => FakeSource::new(
            format!("file {}", path.display()),
            Generator::Wav {
                samples: read_wav_mono(path)?,
                at: 0,
            },
        ),
        MicSpec::Silence => FakeSource::new("silence".into(), Generator::Silence),
    })
}

/// Opens a speaker (or WAV file) on the calling thread.
pub fn open_sink(spec: &SpeakerSpec) -> Result<Box<dyn Sink>, MediaError> {
    if let Some(wav) = open_wav(spec) {
        return Ok(Box::new(wav?));
    }
    Ok(match spec {
        SpeakerSpec::Default | SpeakerSpec::Named(_) => Box::new(CpalSink::open(spec)?),
        // Files were opened above.
        SpeakerSpec::None | SpeakerSpec::Wav(_) | SpeakerSpec::FailingWav { .. } => {
            Box::new(NullSink::new())
        }
    })
}

/// The WAV file a speaker spec names, created (and set to fail, for
/// [`SpeakerSpec::FailingWav`]); `None` for a spec that is not a file.
pub fn open_wav(spec: &SpeakerSpec) -> Option<Result<WavSink, MediaError>> {
    match spec {
        SpeakerSpec::Wav(path) => Some(WavSink::create(path)),
        SpeakerSpec::FailingWav { path, fail } => {
            Some(WavSink::create(path).map(|w| w.failing_after(Duration::from_secs_f32(*fail))))
        }
        _ => None,
    }
}

/// Sleeps until `deadline`. Linux wakes sleepers within ~0.1 ms, plenty for
/// 10 ms frames; spinning for the last bit cost ~7% of a core per pacer.
pub(crate) fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now {
        std::thread::sleep(deadline - now);
    }
}

/// Real-time pacing for fakes: frame `n` is due at `start + n * 10 ms`.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_specs_parse_with_clear_errors() {
        assert_eq!(MicSpec::parse_fake("tone:440"), Ok(MicSpec::Tone(440.0)));
        assert_eq!(MicSpec::parse_fake("silence"), Ok(MicSpec::Silence));
        assert_eq!(
            MicSpec::parse_fake("tone:660,start=1.5"),
            Ok(MicSpec::Timed {
                mic: Box::new(MicSpec::Tone(660.0)),
                start: 1.5,
                fail: None
            })
        );
        assert_eq!(
            MicSpec::parse_fake("wav:/a,b.wav,fail=3,start=1"),
            Ok(MicSpec::Timed {
                mic: Box::new(MicSpec::Wav("/a,b.wav".into())),
                start: 1.0,
                fail: Some(3.0)
            })
        );
        for bad in [
            "tone:440,fail=-1",
            "tone:440,start=x",
            "silence,fail=1,fail=2",
        ] {
            assert!(MicSpec::parse_fake(bad).is_err(), "{bad}");
        }
        assert_eq!(MicSpec::parse_fake("clicks:500"), Ok(MicSpec::Clicks(500)));
        assert_eq!(
            MicSpec::parse_fake("wav:/tmp/a.wav"),
            Ok(MicSpec::Wav("/tmp/a.wav".into()))
        );
        let e = MicSpec::parse_fake("tone:abc").unwrap_err();
        assert!(e.to_string().contains("frequency"), "{e}");
        let e = MicSpec::parse_fake("beep").unwrap_err();
        assert!(e.to_string().contains("tone:HZ"), "{e}");
        assert_eq!(
            SpeakerSpec::parse("wav:out.wav"),
            Ok(SpeakerSpec::Wav("out.wav".into()))
        );
        assert!(SpeakerSpec::parse("mp3:x").is_err());
        assert_eq!(
            SpeakerSpec::parse("wav:out.wav,fail=2.5"),
            Ok(SpeakerSpec::FailingWav {
                path: "out.wav".into(),
                fail: 2.5
            })
        );
        for bad in [
            "wav:",
            "wav:,fail=1",
            "wav:a.wav,fail=-1",
            "wav:a.wav,fail=x",
        ] {
            assert!(SpeakerSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
