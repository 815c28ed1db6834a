//! The notification sounds: WAVs made by `scripts/gen-sounds`, embedded in the
//! binary, decoded once with `rodio` (which also converts any rate and channel
//! count to the mixer's 48 kHz stereo) and played by the mixer like one more
//! voice, so they reach the speaker and the echo canceller's far-end
//! reference together ([`super::mixer::MixerControl::Play`]).

use rodio::source::UniformSourceIterator;
use std::io::Cursor;
use std::sync::Arc;

/// A decoded sound: interleaved stereo at 48 kHz.
pub type Sound = Arc<[f32]>;

#[derive(Clone, Debug)]
pub struct SoundBank {
    pub joined: Sound,
    pub left: Sound,
    pub message: Sound,
    pub room: Sound,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode the {name} sound: {source}")]
pub struct SoundError {
    name: &'static str,
    #[source]
    source: rodio::decoder::DecoderError,
}

impl SoundBank {
    /// Decodes the embedded sounds.
    pub fn load() -> Result<SoundBank, SoundError> {
        let get = |name: &'static str, bytes: &'static [u8]| {
            decode(bytes).map_err(|source| SoundError { name, source })
        };
        Ok(SoundBank {
            joined: get(
                "joined",
                include_bytes!("../../../assets/sounds/joined.wav"),
            )?,
            left: get("left", include_bytes!("../../../assets/sounds/left.wav"))?,
            message: get(
                "message",
                include_bytes!("../../../assets/sounds/message.wav"),
            )?,
            room: get("room", include_bytes!("../../../assets/sounds/room.wav"))?,
        })
    }
}

/// Decodes a sound file (any format rodio was built to read) to 48 kHz
/// interleaved stereo.
pub fn decode(bytes: &'static [u8]) -> Result<Sound, rodio::decoder::DecoderError> {
    let source = rodio::Decoder::new(Cursor::new(bytes))?;
    let uniform = UniformSourceIterator::new(source, 2, 48_000);
    Ok(uniform.collect::<Vec<f32>>().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sounds_decode_to_short_stereo_at_48_khz() {
        let bank = SoundBank::load().unwrap();
        for (name, s) in [
            ("joined", &bank.joined),
            ("left", &bank.left),
            ("message", &bank.message),
            ("room", &bank.room),
        ] {
            let secs = s.len() as f64 / 2.0 / 48_000.0;
            assert!((0.2..1.0).contains(&secs), "{name}: {secs} s");
            let peak = s.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            // -14 dBFS as written, give or take the 16-bit rounding.
            assert!((0.18..0.22).contains(&peak), "{name}: peak {peak}");
            // Mono made stereo: both channels carry it.
            assert_eq!(s[0..2000].iter().step_by(2).count(), 1000);
            assert!(s.chunks(2).all(|lr| lr[0] == lr[1]), "{name}");
        }
    }

    #[test]
    fn a_sound_at_another_rate_is_converted() {
        // A 16 kHz mono file: rodio resamples it to 48 kHz stereo.
        let speech = include_bytes!("../../../assets/speech/ann.wav");
        let s = decode(speech).unwrap();
        let secs = s.len() as f64 / 2.0 / 48_000.0;
        assert!((6.0..6.4).contains(&secs), "{secs} s");
        assert!(decode(b"not a sound").is_err());
    }
}
