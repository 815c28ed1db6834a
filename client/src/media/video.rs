//! Camera video, Bevy-free: a fake camera (a moving test pattern with its
//! frame counter drawn in it as a row of black and white blocks), and H.264
//! through openh264 (Constrained Baseline, Annex-B access units) for encoding
//! and decoding RGB frames. The pattern's counter survives compression, so a
//! receiver can tell which frame it is looking at (for glass-to-glass latency
//! and for comparing a decoded frame with the frame that was sent).

use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

/// One RGB frame (8 bits per channel, rows top to bottom).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("h264: {0}")]
    Codec(String),
    #[error("frame sizes must be even and at least 64×48, not {0}×{1}")]
    Size(usize, usize),
}

impl From<openh264::Error> for VideoError {
    fn from(e: openh264::Error) -> Self {
        VideoError::Codec(e.to_string())
    }
}

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

/// Peak signal-to-noise ratio between two frames of the same size, in dB.
pub fn psnr(a: &VideoFrame, b: &VideoFrame) -> f64 {
    if a.width != b.width || a.height != b.height || a.rgb.len() != b.rgb.len() {
        return 0.0;
    }
    let mse = a
        .rgb
        .iter()
        .zip(&b.rgb)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum::<f64>()
        / a.rgb.len().max(1) as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0 * 255.0 / mse).log10()
}

/// Converts a packed YUYV (4:2:2, BT.601 limited range) picture, as most
/// webcams deliver it, to RGB. `None` if `raw` is too short for the size.
pub fn yuyv_to_rgb(raw: &[u8], width: usize, height: usize) -> Option<VideoFrame> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || raw.len() < width * height * 2 {
        return None;
    }
    let mut rgb = vec![0u8; width * height * 3];
    let convert = |y: u8, u: u8, v: u8, out: &mut [u8]| {
        let c = (i32::from(y) - 16) * 298;
        let d = i32::from(u) - 128;
        let e = i32::from(v) - 128;
        let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
        out[0] = clamp(c + 409 * e);
        out[1] = clamp(c - 100 * d - 208 * e);
        out[2] = clamp(c + 516 * d);
    };
    for (pair, out) in raw[..width * height * 2]
        .chunks_exact(4)
        .zip(rgb.chunks_exact_mut(6))
    {
        let (y0, u, y1, v) = (pair[0], pair[1], pair[2], pair[3]);
        convert(y0, u, v, &mut out[..3]);
        convert(y1, u, v, &mut out[3..]);
    }
    Some(VideoFrame { width, height, rgb })
}

/// Fits `frame` to `width`×`height`: crops the middle to that aspect ratio,
/// then scales with a box filter (each output pixel is the mean of the
/// source pixels it covers), so a 1280×720 camera becomes a clean 320×240.
/// A frame of the right size is returned as it is.
pub fn fit(frame: VideoFrame, width: usize, height: usize) -> VideoFrame {
    if frame.width == width && frame.height == height {
        return frame;
    }
    if frame.width == 0 || frame.height == 0 || frame.rgb.len() < frame.width * frame.height * 3 {
        return VideoFrame {
            width,
            height,
            rgb: vec![0; width * height * 3],
        };
    }
    let (sw, sh) = (frame.width.max(1), frame.height.max(1));
    // The largest centred source rectangle with the target's aspect ratio.
    let (cw, ch) = if sw * height > sh * width {
        (sh * width / height.max(1), sh)
    } else {
        (sw, sw * height / width.max(1))
    };
    let (cx, cy) = ((sw - cw) / 2, (sh - ch) / 2);
    let mut rgb = vec![0u8; width * height * 3];
    for y in 0..height {
        let y0 = cy + y * ch / height;
        let y1 = (cy + (y + 1) * ch / height).max(y0 + 1).min(sh);
        for x in 0..width {
            let x0 = cx + x * cw / width;
            let x1 = (cx + (x + 1) * cw / width).max(x0 + 1).min(sw);
            let mut sum = [0u32; 3];
            for sy in y0..y1 {
                let row = &frame.rgb[(sy * sw + x0) * 3..(sy * sw + x1) * 3];
                for px in row.chunks_exact(3) {
                    sum[0] += u32::from(px[0]);
                    sum[1] += u32::from(px[1]);
                    sum[2] += u32::from(px[2]);
                }
            }
            let n = ((y1 - y0) * (x1 - x0)) as u32;
            let i = (y * width + x) * 3;
            for c in 0..3 {
                rgb[i + c] = ((sum[c] + n / 2) / n) as u8;
            }
        }
    }
    VideoFrame { width, height, rgb }
}

/// An encoded picture: one H.264 access unit in Annex-B form.
#[derive(Clone, Debug)]
pub struct EncodedVideo {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// How long the picture is shown (1 / frame rate): the RTP clock
    /// advances by this much after it.
    pub duration: std::time::Duration,
}

/// H.264 encoder for camera frames. The resolution follows the frames it is
/// given (a change restarts the stream with a keyframe).
pub struct VideoEncoder {
    inner: Encoder,
    yuv: Option<YUVBuffer>,
    frames: u64,
    fps: f32,
}

impl VideoEncoder {
    /// `bitrate` in bits per second, `fps` the camera's frame rate.
    pub fn new(bitrate: u32, fps: f32) -> Result<VideoEncoder, VideoError> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            // A keyframe every 3 s at most, so a lost one heals by itself.
            .intra_frame_period(IntraFramePeriod::from_num_frames((fps * 3.0) as u32))
            // Rate control may drop a frame (empty `data`) to hold the bitrate.
            .skip_frames(true);
        Ok(VideoEncoder {
            inner: Encoder::with_api_config(OpenH264API::from_source(), config)?,
            yuv: None,
            frames: 0,
            fps,
        })
    }

    /// The next frame will be a keyframe (a peer joined or lost one).
    pub fn request_keyframe(&mut self) {
        self.inner.force_intra_frame();
    }

    /// Encodes one frame. Empty `data` means the rate control skipped it.
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<EncodedVideo, VideoError> {
        let (w, h) = (frame.width, frame.height);
        if w % 2 != 0 || h % 2 != 0 || w < 64 || h < 48 || frame.rgb.len() != w * h * 3 {
            return Err(VideoError::Size(w, h));
        }
        let yuv = match self.yuv.take() {
            Some(buf) if buf.dimensions() == (w, h) => buf,
            _ => YUVBuffer::new(w, h),
        };
        let mut yuv = yuv;
        yuv.read_rgb8(RgbSliceU8::new(&frame.rgb, (w, h)));
        let ms = (self.frames as f64 * 1000.0 / f64::from(self.fps)) as u64;
        self.frames += 1;
        let stream = self
            .inner
            .encode_at(&yuv, openh264::Timestamp::from_millis(ms))?;
        let encoded = EncodedVideo {
            keyframe: stream.frame_type() == FrameType::IDR,
            data: stream.to_vec(),
            duration: std::time::Duration::from_secs_f32(1.0 / self.fps.max(1.0)),
        };
        self.yuv = Some(yuv);
        Ok(encoded)
    }
}

/// H.264 decoder for one peer's video.
pub struct VideoDecoder {
    inner: Decoder,
}

impl VideoDecoder {
    pub fn new() -> Result<VideoDecoder, VideoError> {
        Ok(VideoDecoder {
            inner: Decoder::new()?,
        })
    }

    /// Decodes one access unit; `None` until a picture can be shown (e.g.
    /// before the first keyframe). An error means "ask for a keyframe".
    pub fn decode(&mut self, access_unit: &[u8]) -> Result<Option<VideoFrame>, VideoError> {
        let Some(yuv) = self.inner.decode(access_unit)? else {
            return Ok(None);
        };
        let (width, height) = yuv.dimensions();
        let mut rgb = vec![0u8; width * height * 3];
        yuv.write_rgb8(&mut rgb);
        Ok(Some(VideoFrame { width, height, rgb }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(n: u16) -> Stamp {
        Stamp {
            frame: n,
            clock_ms: n.wrapping_mul(33),
        }
    }

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

    #[test]
    fn camera_pictures_are_converted_and_fitted() {
        // YUYV: white, black, mid grey, and saturated red (BT.601).
        let raw = [
            235, 128, 16, 128, 126, 128, 126, 128, 81, 90, 81, 240, 81, 90, 81, 240,
        ];
        let f = yuyv_to_rgb(&raw, 4, 2).unwrap();
        let px = |i: usize| &f.rgb[i * 3..i * 3 + 3];
        assert_eq!(px(0), [255, 255, 255]);
        assert_eq!(px(1), [0, 0, 0]);
        assert!(px(2).iter().all(|c| (127..=129).contains(c)), "{:?}", px(2));
        assert!(
            px(4)[0] > 250 && px(4)[1] < 5 && px(4)[2] < 5,
            "{:?}",
            px(4)
        );
        assert!(yuyv_to_rgb(&raw, 4, 3).is_none(), "too short");
        assert!(yuyv_to_rgb(&raw, 0, 2).is_none(), "empty");
        let empty = VideoFrame {
            width: 0,
            height: 0,
            rgb: Vec::new(),
        };
        assert_eq!(fit(empty, 32, 24).rgb.len(), 32 * 24 * 3);
        // A 16:9 camera picture becomes 4:3 by cropping the sides.
        let mut wide = VideoFrame {
            width: 64,
            height: 36,
            rgb: vec![0; 64 * 36 * 3],
        };
        for y in 0..36 {
            for x in 16..48 {
                wide.rgb[(y * 64 + x) * 3] = 200;
            }
        }
        let small = fit(wide, 32, 24);
        assert_eq!(
            (small.width, small.height, small.rgb.len()),
            (32, 24, 32 * 24 * 3)
        );
        // The red middle (x 16..48 of the 48 wide crop from x 8) keeps its place.
        assert_eq!(small.rgb[(12 * 32 + 16) * 3], 200);
        assert_eq!(small.rgb[(12 * 32 + 2) * 3], 0);
        assert_eq!(fit(small.clone(), 32, 24), small);
    }

    #[test]
    fn h264_round_trip_keeps_the_picture_at_both_sizes() {
        for (w, h, bitrate) in [(640, 480, 800_000), (320, 240, 300_000)] {
            let mut enc = VideoEncoder::new(bitrate, 15.0).unwrap();
            let mut dec = VideoDecoder::new().unwrap();
            let mut last = None;
            for n in 0..30u16 {
                let sent = test_pattern(stamp(n), w, h);
                let au = enc.encode(&sent).unwrap();
                assert_eq!(au.keyframe, n == 0, "frame {n} at {w}x{h}");
                if au.data.is_empty() {
                    continue;
                }
                assert_eq!(&au.data[..4], &[0, 0, 0, 1], "Annex-B");
                if let Some(got) = dec.decode(&au.data).unwrap() {
                    assert_eq!((got.width, got.height), (w, h));
                    last = Some((sent, got));
                }
            }
            let (sent, got) = last.expect("decoded frames");
            let p = psnr(&sent, &got);
            assert!(p >= 30.0, "PSNR {p:.1} dB at {w}x{h}");
            assert_eq!(read_stamp(&got), read_stamp(&sent));
        }
    }

    #[test]
    fn a_requested_keyframe_and_a_size_change_restart_cleanly() {
        let mut enc = VideoEncoder::new(500_000, 15.0).unwrap();
        let mut dec = VideoDecoder::new().unwrap();
        for n in 0..5 {
            enc.encode(&test_pattern(stamp(n), 320, 240)).unwrap();
        }
        enc.request_keyframe();
        let key = enc.encode(&test_pattern(stamp(5), 320, 240)).unwrap();
        assert!(key.keyframe);
        // A decoder that joins late starts from that keyframe alone.
        let got = dec
            .decode(&key.data)
            .unwrap()
            .expect("a keyframe decodes alone");
        assert_eq!(read_stamp(&got), stamp(5));
        let bigger = enc.encode(&test_pattern(stamp(6), 640, 480)).unwrap();
        assert!(bigger.keyframe);
        let got = dec.decode(&bigger.data).unwrap().unwrap();
        assert_eq!((got.width, got.height), (640, 480));
        assert!(matches!(
            enc.encode(&test_pattern(stamp(0), 321, 240)),
            Err(VideoError::Size(321, 240))
        ));
        // Garbage is an error or nothing, never a panic.
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0xff, 0xff]);
    }
}
