//! A fake room, for tests and the bot: the microphone hears the speaker.
//! `mic = source + gain × (what the speaker played, `delay` ago)`, the
//! acoustic echo a laptop without headphones makes. The mixer hands every
//! frame it plays to a [`RoomSpeaker`]; the capture thread adds it, delayed
//! and scaled, to what its source captured through a [`RoomMic`]. Between
//! them is a lock-free ring (rtrb) that starts with `delay` of silence, so a
//! sample played at `t` is heard at about `t + delay` (plus up to one frame:
//! the two threads tick with their own phase, as a real device's would).

use super::{FRAME, MonoFrame, SAMPLE_RATE, StereoFrame};

/// A room's echo: how late and how loud the speaker reaches the mic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RoomSpec {
    pub delay_ms: u32,
    pub gain: f32,
    /// The delay becomes `.0` ms once the microphone has heard `.1` ms
    /// (someone moved the laptop), for re-convergence tests.
    pub later: Option<(u32, u32)>,
}

/// Why a `--fake-room` is not understood.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error(
    "{0:?}: expected delay=MS,gain=G[,then=MS,at=S] (MS 0-1000, G 0-2), e.g. delay=80,gain=0.5 \
     or delay=80,gain=0.5,then=150,at=6"
)]
pub struct RoomSpecError(String);

/// Samples in `ms` milliseconds.
fn samples(ms: u32) -> usize {
    (ms as usize) * SAMPLE_RATE as usize / 1000
}

impl RoomSpec {
    /// Parses `delay=MS,gain=G`, either may be left out (80 ms, 0.5), and
    /// optionally `then=MS,at=S`: the delay changes to `then` after `S`
    /// seconds.
    pub fn parse(arg: &str) -> Result<RoomSpec, RoomSpecError> {
        let err = || RoomSpecError(arg.to_owned());
        let mut spec = RoomSpec {
            delay_ms: 80,
            gain: 0.5,
            later: None,
        };
        let (mut then, mut at) = (None, None);
        for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=').ok_or_else(err)? {
                ("delay", v) => spec.delay_ms = v.parse().map_err(|_| err())?,
                ("gain", v) => spec.gain = v.parse().map_err(|_| err())?,
                ("then", v) => then = Some(v.parse::<u32>().map_err(|_| err())?),
                ("at", v) => at = Some(v.parse::<f32>().map_err(|_| err())?),
                _ => return Err(err()),
            }
        }
        spec.later = match (then, at) {
            (None, None) => None,
            (Some(ms), Some(s)) if ms <= 1000 && (0.0..=86_400.0).contains(&s) => {
                Some((ms, (s * 1000.0) as u32))
            }
            _ => return Err(err()),
        };
        if spec.delay_ms > 1000 || !(0.0..=2.0).contains(&spec.gain) {
            return Err(err());
        }
        Ok(spec)
    }

    /// The two ends of the room: one for the mixer, one for the capture.
    pub fn build(self) -> (RoomSpeaker, RoomMic) {
        let delay = samples(self.delay_ms);
        let longest = self.later.map_or(delay, |(ms, _)| delay.max(samples(ms)));
        // The delay, and half a second of slack for the threads' jitter.
        let (mut producer, consumer) = rtrb::RingBuffer::new(longest + SAMPLE_RATE as usize / 2);
        for _ in 0..delay {
            let _ = producer.push(0.0);
        }
        (
            RoomSpeaker { ring: producer },
            RoomMic {
                ring: consumer,
                gain: self.gain,
                later: self
                    .later
                    .map(|(ms, at)| (samples(at), samples(ms) as i64 - delay as i64)),
                heard: 0,
                hold: 0,
            },
        )
    }
}

/// The speaker's end: every played frame goes in (as mono).
#[derive(Debug)]
pub struct RoomSpeaker {
    ring: rtrb::Producer<f32>,
}

impl RoomSpeaker {
    pub fn played(&mut self, frame: &StereoFrame) {
        for lr in frame.chunks_exact(2) {
            // A full ring (a capture that stopped reading) drops the rest.
            if self.ring.push((lr[0] + lr[1]) * 0.5).is_err() {
                break;
            }
        }
    }
}

/// The microphone's end: adds what reaches it to a captured frame.
#[derive(Debug)]
pub struct RoomMic {
    ring: rtrb::Consumer<f32>,
    gain: f32,
    /// When (samples heard) the delay changes, and by how many samples.
    later: Option<(usize, i64)>,
    heard: usize,
    /// Samples of silence still to hear before the ring again (a delay
    /// that grew).
    hold: usize,
}

impl RoomMic {
    pub fn hear(&mut self, frame: &mut MonoFrame) {
        if let Some((at, change)) = self.later
            && self.heard >= at
        {
            self.later = None;
            let n = change.unsigned_abs() as usize;
            if change > 0 {
                self.hold = n;
            } else if let Ok(skipped) = self.ring.read_chunk(n.min(self.ring.slots())) {
                skipped.commit_all();
            }
        }
        self.heard = self.heard.saturating_add(FRAME);
        let held = self.hold.min(FRAME);
        self.hold -= held;
        // Nothing played yet (or the mixer fell behind): silence.
        let n = self.ring.slots().min(FRAME - held);
        if let Ok(chunk) = self.ring.read_chunk(n) {
            for (s, echo) in frame.iter_mut().skip(held).zip(chunk) {
                *s += self.gain * echo;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_refuse() {
        assert_eq!(
            RoomSpec::parse("delay=150,gain=0.25"),
            Ok(RoomSpec {
                delay_ms: 150,
                gain: 0.25,
                later: None,
            })
        );
        assert_eq!(
            RoomSpec::parse("delay=80,gain=0.5,then=150,at=6").map(|s| s.later),
            Ok(Some((150, 6000)))
        );
        assert_eq!(RoomSpec::parse("gain=1").map(|s| s.delay_ms), Ok(80));
        for bad in [
            "delay",
            "delay=x",
            "gain=3",
            "delay=5000",
            "echo=1",
            "delay=-1",
            "then=150",
            "at=3",
            "then=2000,at=1",
            "then=100,at=-1",
        ] {
            assert!(RoomSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mic_hears_the_speaker_late_and_softer() {
        let (mut speaker, mut mic) = RoomSpec {
            delay_ms: 40,
            gain: 0.5,
            later: None,
        }
        .build();
        // Played: one frame of 0.8 on both channels, then silence.
        let mut loud: StereoFrame = [0.8; FRAME * 2];
        speaker.played(&loud);
        loud.fill(0.0);
        speaker.played(&loud);
        speaker.played(&loud);
        // Heard: 40 ms of the source alone, then 0.4 on top for a frame.
        let mut heard = Vec::new();
        for _ in 0..super::super::frames(40) + 2 {
            let mut frame: MonoFrame = [0.1; FRAME];
            mic.hear(&mut frame);
            heard.extend_from_slice(&frame);
        }
        let delay = 40 * 48;
        assert!(heard[..delay].iter().all(|s| (*s - 0.1).abs() < 1e-6));
        assert!(
            heard[delay..delay + FRAME]
                .iter()
                .all(|s| (*s - 0.5).abs() < 1e-6)
        );
        assert!(
            heard[delay + FRAME..]
                .iter()
                .all(|s| (*s - 0.1).abs() < 1e-6)
        );
        // Nothing more played: the mic hears only its source.
        let mut frame: MonoFrame = [0.1; FRAME];
        mic.hear(&mut frame);
        assert!(frame.iter().all(|s| (*s - 0.1).abs() < 1e-6));
    }

    /// A click played every 100 ms is heard 40 ms later, then, once the
    /// delay changes to 100 ms, 100 ms later; and back down to 20 ms.
    #[test]
    fn the_delay_can_change_mid_call() {
        for (later, before, after) in [(100, 40, 100), (20, 40, 20)] {
            let (mut speaker, mut mic) = RoomSpec {
                delay_ms: before,
                gain: 1.0,
                later: Some((later, 1000)),
            }
            .build();
            let mut heard = Vec::new();
            for k in 0..super::super::frames(2000) {
                let mut out: StereoFrame = [0.0; FRAME * 2];
                if k % super::super::frames(100) == 0 {
                    out[0] = 1.0;
                    out[1] = 1.0;
                }
                speaker.played(&out);
                let mut frame: MonoFrame = [0.0; FRAME];
                mic.hear(&mut frame);
                heard.extend_from_slice(&frame);
            }
            let clicks: Vec<usize> = heard
                .iter()
                .enumerate()
                .filter(|(_, s)| **s > 0.5)
                .map(|(i, _)| i / 48)
                .collect();
            // Played at 0, 100, 200 ... ms.
            assert_eq!(clicks.first(), Some(&(before as usize)), "{clicks:?}");
            let late = clicks.iter().find(|ms| **ms > 1200).copied();
            assert_eq!(
                late.map(|ms| ms % 100),
                Some(after as usize % 100),
                "{clicks:?}"
            );
        }
    }
}
