//! A small streaming linear resampler for devices that do not run at 48 kHz.
//! Voice is band-limited by Opus anyway; linear interpolation is enough for
//! the rare device that refuses 48 kHz (most ALSA and CoreAudio ones accept it).

/// Converts a stream of mono samples from `from` Hz to `to` Hz.
#[derive(Debug, Clone)]
pub struct Resampler {
    step: f64,
    /// Position of the next output sample, in input samples after `prev`.
    pos: f64,
    prev: f32,
}

impl Resampler {
    pub fn new(from: u32, to: u32) -> Resampler {
        Resampler {
            step: f64::from(from) / f64::from(to),
            pos: 0.0,
            prev: 0.0,
        }
    }

    pub fn is_identity(&self) -> bool {
        (self.step - 1.0).abs() < 1e-12
    }

    /// Feeds `input`, appending the output samples to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if self.is_identity() {
            out.extend_from_slice(input);
            return;
        }
        for &next in input {
            // Emit every output sample that falls between `prev` and `next`.
            while self.pos < 1.0 {
                let t = self.pos as f32;
                out.push(self.prev + (next - self.prev) * t);
                self.pos += self.step;
            }
            self.pos -= 1.0;
            self.prev = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_passes_through() {
        let mut r = Resampler::new(48_000, 48_000);
        let mut out = Vec::new();
        r.process(&[0.1, 0.2, 0.3], &mut out);
        assert_eq!(out, vec![0.1, 0.2, 0.3]);
    }

    #[test]
    fn rate_conversion_keeps_duration_and_shape() {
        for (from, to) in [(44_100, 48_000), (48_000, 16_000), (16_000, 48_000)] {
            let mut r = Resampler::new(from, to);
            let input: Vec<f32> = (0..from)
                .map(|i| (2.0 * std::f32::consts::PI * 200.0 * i as f32 / from as f32).sin())
                .collect();
            let mut out = Vec::new();
            for chunk in input.chunks(333) {
                r.process(chunk, &mut out);
            }
            let diff = (out.len() as i64 - i64::from(to)).abs();
            assert!(diff <= 2, "{from}->{to}: {} samples", out.len());
            // Still a 200 Hz sine: compare with the ideal at the output rate.
            let err: f32 = out
                .iter()
                .enumerate()
                .skip(10)
                .map(|(i, s)| {
                    let t = i as f32 / to as f32 - 1.0 / from as f32;
                    (s - (2.0 * std::f32::consts::PI * 200.0 * t).sin()).abs()
                })
                .fold(0.0, f32::max);
            assert!(err < 0.05, "{from}->{to}: error {err}");
        }
    }
}
