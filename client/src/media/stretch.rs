//! Time-scale modification of decoded speech, so that the jitter buffer can
//! move its playout delay in the middle of a talk spurt (NetEq's "preemptive
//! expand" and "accelerate"). Both work a pitch period at a time: in voiced
//! speech one period is played twice, or left out, with the seam
//! cross-faded over the whole period, so the waveform carries on. Quiet
//! audio is stretched at any lag. Speech that is neither periodic nor quiet
//! (a fricative, a plosive) is left alone, and the caller tries again on the
//! next packet.
//!
//! The period is the lag that best correlates the audio with itself: found
//! on every 4th sample, then refined sample by sample. Written here rather
//! than taken from a crate: the crates that stretch audio (Signalsmith
//! Stretch and Rubber Band bindings, `pitch_shift`, `rubato` by resampling)
//! are built for music and whole streams, need C++ or change the pitch, and
//! none cuts one 10 ms packet at a pitch period as a voice jitter buffer
//! needs.

use super::FRAME;

/// Shortest period looked for: 2.5 ms (400 Hz).
pub const MIN_LAG: usize = 120;
/// Longest: 10 ms (100 Hz). One step moves the delay by at most this.
pub const MAX_LAG: usize = FRAME;
/// The audio the periodicity is measured on: 10 ms.
const WINDOW: usize = FRAME;
/// Played audio an expansion looks back on.
pub const HISTORY: usize = WINDOW / 2 + MAX_LAG;
/// Decoded audio an acceleration needs ahead to take out the longest period.
pub const ACCELERATE_NEEDS: usize = WINDOW + MAX_LAG;
/// Normalised correlation from which a lag counts as a pitch period
/// (NetEq's threshold).
const PERIODIC: f32 = 0.9;
/// RMS below which audio is quiet enough to stretch anywhere (-50 dBFS).
const QUIET: f32 = 0.003;
/// The coarse search looks at every this many samples (12 kHz).
const DECIMATE: usize = 4;

/// Normalised cross-correlation of `x` and `y` on every `step`-th sample,
/// and the mean energy of both.
fn correlate(x: &[f32], y: &[f32], step: usize) -> (f32, f32) {
    let (mut xy, mut xx, mut yy) = (0.0f32, 0.0f32, 0.0f32);
    let mut n = 0usize;
    for (a, b) in x.iter().step_by(step).zip(y.iter().step_by(step)) {
        xy += a * b;
        xx += a * a;
        yy += b * b;
        n += 1;
    }
    let energy = (xx + yy) / (2 * n.max(1)) as f32;
    if xx <= f32::MIN_POSITIVE || yy <= f32::MIN_POSITIVE {
        return (0.0, energy);
    }
    (xy / (xx * yy).sqrt(), energy)
}

/// The lag in `MIN_LAG..=max_lag` at which `pair(lag)` (the window and the
/// window that lag away) correlate best, if the audio is periodic there or
/// quiet; quiet audio takes the longest lag.
fn period<'a>(max_lag: usize, pair: impl Fn(usize) -> (&'a [f32], &'a [f32])) -> Option<usize> {
    if max_lag < MIN_LAG {
        return None;
    }
    let (x, y) = pair(MIN_LAG);
    let (_, energy) = correlate(x, y, 1);
    if energy.sqrt() < QUIET {
        return Some(max_lag);
    }
    let mut best = (MIN_LAG, f32::MIN);
    for lag in (MIN_LAG..=max_lag).step_by(DECIMATE) {
        let (x, y) = pair(lag);
        let (c, _) = correlate(x, y, DECIMATE);
        if c > best.1 {
            best = (lag, c);
        }
    }
    let around =
        best.0.saturating_sub(DECIMATE - 1).max(MIN_LAG)..=(best.0 + DECIMATE - 1).min(max_lag);
    let mut best = (best.0, f32::MIN);
    for lag in around {
        let (x, y) = pair(lag);
        let (c, _) = correlate(x, y, 1);
        if c > best.1 {
            best = (lag, c);
        }
    }
    (best.1 >= PERIODIC).then_some(best.0)
}

/// Plays a pitch period more before the `len` samples at the start of
/// `buf`, which follow the `history` just played (the last [`HISTORY`]
/// samples, oldest first). Returns the new length, or `None` where the
/// audio is not periodic enough (or `buf` has no room, or the packet is
/// shorter than half a window).
pub fn expand(history: &[f32; HISTORY], buf: &mut [f32], len: usize) -> Option<usize> {
    if len < WINDOW / 2 || len.checked_add(MAX_LAG)? > buf.len() {
        return None;
    }
    // The window straddles the seam: its half before it from the history,
    // half after from the packet.
    let mut around = [0.0f32; HISTORY + WINDOW / 2];
    around[..HISTORY].copy_from_slice(history);
    around[HISTORY..].copy_from_slice(&buf[..WINDOW / 2]);
    let x = &around[HISTORY - WINDOW / 2..];
    let lag = period(MAX_LAG, |lag| {
        let from = HISTORY - WINDOW / 2 - lag;
        (x, &around[from..from + WINDOW])
    })?;
    // The inserted period starts as the packet's start (which follows the
    // history's end) and turns into the period before it (which the
    // packet's start follows).
    buf.copy_within(..len, lag);
    for i in 0..lag {
        let w = (i as f32 + 0.5) / lag as f32;
        buf[i] = (1.0 - w) * buf[lag + i] + w * history[HISTORY - lag + i];
    }
    Some(len + lag)
}

/// Leaves out a pitch period at the start of `buf[..len]`, in place.
/// Returns the new length, or `None` where the audio is not periodic enough
/// (or too short: the longest period needs [`ACCELERATE_NEEDS`]).
pub fn accelerate(buf: &mut [f32], len: usize) -> Option<usize> {
    let audio = buf.get(..len)?;
    let max_lag = len.saturating_sub(WINDOW).min(MAX_LAG);
    let lag = period(max_lag, |lag| (&audio[..WINDOW], &audio[lag..lag + WINDOW]))?;
    // The first period turns into the second; the third follows it.
    for i in 0..lag {
        let w = (i as f32 + 0.5) / lag as f32;
        buf[i] = (1.0 - w) * buf[i] + w * buf[lag + i];
    }
    buf.copy_within(2 * lag..len, lag);
    Some(len - lag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A voiced sound: a 150 Hz fundamental (6.67 ms, 320 samples) and two
    /// harmonics.
    fn voiced(n: usize) -> f32 {
        let t = n as f32 / 48_000.0;
        let w = 2.0 * std::f32::consts::PI * 150.0 * t;
        0.3 * w.sin() + 0.15 * (2.0 * w + 0.3).sin() + 0.08 * (3.0 * w + 1.1).sin()
    }

    /// The largest step between neighbouring samples.
    fn roughness(s: &[f32]) -> f32 {
        s.windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0, f32::max)
    }

    fn history_and_packet(from: usize) -> ([f32; HISTORY], Vec<f32>) {
        let history = std::array::from_fn(|i| voiced(from + i));
        let mut buf = vec![0.0; 4 * FRAME];
        for (i, s) in buf[..FRAME].iter_mut().enumerate() {
            *s = voiced(from + HISTORY + i);
        }
        (history, buf)
    }

    #[test]
    fn expanding_voiced_speech_adds_whole_periods_without_a_seam() {
        let (history, mut buf) = history_and_packet(1000);
        let len = expand(&history, &mut buf, FRAME).expect("periodic");
        let added = len - FRAME;
        assert_eq!(added % 320, 0, "added {added}");
        let mut played = history.to_vec();
        played.extend_from_slice(&buf[..len]);
        let smooth: Vec<f32> = (0..played.len()).map(|i| voiced(1000 + i)).collect();
        assert!(
            roughness(&played) <= roughness(&smooth) * 1.05,
            "{} against {}",
            roughness(&played),
            roughness(&smooth)
        );
        // The packet follows the inserted period unchanged.
        for i in 0..FRAME {
            assert_eq!(buf[added + i], voiced(1000 + HISTORY + i));
        }
    }

    #[test]
    fn accelerating_voiced_speech_removes_whole_periods_without_a_seam() {
        let mut buf: Vec<f32> = (0..ACCELERATE_NEEDS).map(|i| voiced(500 + i)).collect();
        let len = accelerate(&mut buf, ACCELERATE_NEEDS).expect("periodic");
        let removed = ACCELERATE_NEEDS - len;
        assert_eq!(removed % 320, 0, "removed {removed}");
        let mut played: Vec<f32> = (0..500).map(voiced).collect();
        played.extend_from_slice(&buf[..len]);
        let smooth: Vec<f32> = (0..played.len()).map(voiced).collect();
        assert!(roughness(&played) <= roughness(&smooth) * 1.05);
        // The rest is the audio a period later, as it was.
        assert_eq!(buf[len - 1], voiced(500 + ACCELERATE_NEEDS - 1));
    }

    #[test]
    fn loud_noise_is_left_alone_and_quiet_noise_is_not() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut noise = |amp: f32| -> ([f32; HISTORY], Vec<f32>) {
            let history = std::array::from_fn(|_| rng.random_range(-amp..amp));
            let mut buf = vec![0.0; 4 * FRAME];
            for s in &mut buf[..FRAME] {
                *s = rng.random_range(-amp..amp);
            }
            (history, buf)
        };
        let (history, mut buf) = noise(0.3);
        let before = buf.clone();
        assert_eq!(expand(&history, &mut buf, FRAME), None);
        assert_eq!(buf, before, "a refused stretch changes nothing");
        assert_eq!(accelerate(&mut buf, ACCELERATE_NEEDS), None);
        let (history, mut buf) = noise(0.001);
        assert_eq!(expand(&history, &mut buf, FRAME), Some(FRAME + MAX_LAG));
        let (_, mut buf) = noise(0.001);
        assert_eq!(
            accelerate(&mut buf, ACCELERATE_NEEDS),
            Some(ACCELERATE_NEEDS - MAX_LAG)
        );
    }

    #[test]
    fn too_little_audio_or_room_is_refused() {
        let (history, mut buf) = history_and_packet(0);
        assert_eq!(expand(&history, &mut buf[..FRAME + 10], FRAME), None);
        assert_eq!(expand(&history, &mut buf, WINDOW / 2 - 1), None);
        // One packet of ours takes out periods up to 0 ms: none.
        assert_eq!(accelerate(&mut buf, FRAME), None);
        assert_eq!(accelerate(&mut buf[..10], 20), None);
    }
}
