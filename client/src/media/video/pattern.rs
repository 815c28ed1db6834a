//! The fake camera's picture: colour bars that scroll, a square that bounces,
//! and a stamp drawn in as blocks (the frame number and the capture clock).
//! The stamp survives compression, so a receiver can tell which frame it is
//! looking at (glass-to-glass latency) and redraw it (to compare).

use super::frame::VideoFrame;

/// Bits in each of the pattern's two counters.
pub const COUNTER_BITS: usize = 16;

/// What the fake camera draws into each picture, readable after compression:
/// the frame number (it also drives the motion) and the wall clock at capture
/// in ms modulo 65 536, so a receiver on the same clock can tell how old the
/// picture is (glass-to-glass latency) and redraw the exact frame that was
/// sent (to compare it with what it decoded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    pub frame: u16,
    pub clock_ms: u16,
}

impl Stamp {
    /// The stamp for frame `frame` captured now.
    pub fn now(frame: u64) -> Stamp {
        Stamp {
            frame: frame as u16,
            clock_ms: clock_ms(),
        }
    }

    /// How long ago (by the wall clock) this picture was captured, in ms;
    /// meaningful for ages under 65 s.
    pub fn age_ms(&self) -> u16 {
        clock_ms().wrapping_sub(self.clock_ms)
    }
}

/// The wall clock in ms modulo 65 536.
pub fn clock_ms() -> u16 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u16)
}

/// Side of one counter block in pixels, for a frame `width` wide.
fn block_size(width: usize) -> usize {
    (width / (COUNTER_BITS + 2)).max(4) & !1
}

/// Height of the dark strip holding the two counters.
fn strip_height(width: usize) -> usize {
    block_size(width) * 3
}

/// The test pattern's colour bars, left to right (75% grey, yellow, cyan,
/// green, magenta, red, blue).
pub const PATTERN_BARS: [[u8; 3]; 7] = [
    [192, 192, 192],
    [192, 192, 0],
    [0, 192, 192],
    [0, 192, 0],
    [192, 0, 192],
    [192, 0, 0],
    [0, 0, 192],
];
/// The test pattern's bouncing square.
pub const PATTERN_WHITE: [u8; 3] = [235, 235, 235];

/// The fake camera's picture with `stamp` at `width`×`height`: colour bars
/// that scroll, a white square that bounces, and along the bottom the frame
/// number and then the clock as two rows of blocks (most significant bit
/// first, white = 1).
pub fn test_pattern(stamp: Stamp, width: usize, height: usize) -> VideoFrame {
    let n = usize::from(stamp.frame);
    let mut rgb = vec![0u8; width * height * 3];
    let shift = (n * 4) % width.max(1);
    // Even widths keep bar edges on chroma-sample boundaries (4:2:0).
    let bar_w = ((width / PATTERN_BARS.len()) & !1).max(2);
    let block = block_size(width);
    let strip_top = height.saturating_sub(strip_height(width));
    // The bouncing square.
    let side = height / 5;
    let span = (width - side).max(1);
    let t = (n * 6) % (2 * span);
    let sx = if t < span { t } else { 2 * span - t };
    let sy = height / 4;
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) * 3;
            let c = if y >= strip_top {
                [16, 16, 16]
            } else if (sx..sx + side).contains(&x) && (sy..sy + side).contains(&y) {
                PATTERN_WHITE
            } else {
                PATTERN_BARS[((x + shift) / bar_w) % PATTERN_BARS.len()]
            };
            rgb[i..i + 3].copy_from_slice(&c);
        }
    }
    // The counters, on the dark strip so they stay legible.
    for (row, value) in [stamp.frame, stamp.clock_ms].into_iter().enumerate() {
        let y0 = strip_top + block / 2 + row * block;
        for bit in 0..COUNTER_BITS {
            let on = (value >> (COUNTER_BITS - 1 - bit)) & 1 == 1;
            let v = if on { 235 } else { 16 };
            let x0 = block + bit * block;
            for y in y0..(y0 + block).min(height) {
                for x in x0..(x0 + block).min(width) {
                    let i = (y * width + x) * 3;
                    rgb[i..i + 3].copy_from_slice(&[v, v, v]);
                }
            }
        }
    }
    VideoFrame { width, height, rgb }
}

/// Reads the stamp back from a (decoded) test pattern.
pub fn read_stamp(frame: &VideoFrame) -> Stamp {
    let block = block_size(frame.width);
    let strip_top = frame.height.saturating_sub(strip_height(frame.width));
    let row = |r: usize| -> u16 {
        let y = (strip_top + block / 2 + r * block + block / 2).min(frame.height - 1);
        (0..COUNTER_BITS).fold(0u16, |acc, bit| {
            let x = (block + bit * block + block / 2).min(frame.width - 1);
            let i = (y * frame.width + x) * 3;
            let luma =
                u32::from(frame.rgb[i]) + u32::from(frame.rgb[i + 1]) + u32::from(frame.rgb[i + 2]);
            (acc << 1) | u16::from(luma > 3 * 128)
        })
    };
    Stamp {
        frame: row(0),
        clock_ms: row(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_is_drawn_and_read_back() {
        for (frame, clock_ms) in [(0, 0), (1, 65_535), (2, 1), (1234, 4321), (65_535, 0)] {
            let stamp = Stamp { frame, clock_ms };
            for (w, h) in [(320, 240), (640, 480)] {
                assert_eq!(read_stamp(&test_pattern(stamp, w, h)), stamp);
            }
        }
        let at = |frame| test_pattern(Stamp { frame, clock_ms: 0 }, 320, 240);
        assert_ne!(at(1), at(2), "it moves");
        assert!(Stamp::now(0).age_ms() < 1000);
    }
}
