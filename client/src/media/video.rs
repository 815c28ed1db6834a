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

/// Bits of frame counter drawn in the pattern.
pub const COUNTER_BITS: usize = 16;

/// Side of one counter block in pixels, for a frame `width` wide.
fn block_size(width: usize) -> usize {
    (width / (COUNTER_BITS + 2)).max(4) & !1
}

/// The fake camera's picture number `n` at `width`×`height`: colour bars that
/// scroll, a white square that bounces, and `n` in binary as blocks along the
/// bottom (most significant bit first, white = 1).
pub fn test_pattern(n: u64, width: usize, height: usize) -> VideoFrame {
    const BARS: [[u8; 3]; 7] = [
        [192, 192, 192],
        [192, 192, 0],
        [0, 192, 192],
        [0, 192, 0],
        [192, 0, 192],
        [192, 0, 0],
        [0, 0, 192],
    ];
    let mut rgb = vec![0u8; width * height * 3];
    let shift = (n as usize * 4) % width.max(1);
    // Even widths keep bar edges on chroma-sample boundaries (4:2:0).
    let bar_w = ((width / BARS.len()) & !1).max(2);
    let block = block_size(width);
    let counter_top = height - block * 2;
    // The bouncing square.
    let side = height / 5;
    let span = (width - side).max(1);
    let t = (n as usize * 6) % (2 * span);
    let sx = if t < span { t } else { 2 * span - t };
    let sy = height / 3;
    for y in 0..height {
        for x in 0..width {
            let i = (y * width + x) * 3;
            let c = if y >= counter_top {
                [16, 16, 16]
            } else if (sx..sx + side).contains(&x) && (sy..sy + side).contains(&y) {
                [235, 235, 235]
            } else {
                BARS[((x + shift) / bar_w) % BARS.len()]
            };
            rgb[i..i + 3].copy_from_slice(&c);
        }
    }
    // The counter, on a dark strip so it stays legible.
    for bit in 0..COUNTER_BITS {
        let on = (n >> (COUNTER_BITS - 1 - bit)) & 1 == 1;
        let v = if on { 235 } else { 16 };
        let x0 = block + bit * block;
        for y in counter_top + block / 2..counter_top + block / 2 + block {
            for x in x0..x0 + block {
                let i = (y * width + x) * 3;
                rgb[i..i + 3].copy_from_slice(&[v, v, v]);
            }
        }
    }
    VideoFrame { width, height, rgb }
}

/// Reads the frame counter back from a (decoded) test pattern.
pub fn read_counter(frame: &VideoFrame) -> u64 {
    let block = block_size(frame.width);
    let y = frame.height - block * 2 + block / 2 + block / 2;
    (0..COUNTER_BITS).fold(0u64, |acc, bit| {
        let x = block + bit * block + block / 2;
        let i = (y * frame.width + x) * 3;
        let luma =
            u32::from(frame.rgb[i]) + u32::from(frame.rgb[i + 1]) + u32::from(frame.rgb[i + 2]);
        (acc << 1) | u64::from(luma > 3 * 128)
    })
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

/// An encoded picture: one H.264 access unit in Annex-B form.
#[derive(Clone, Debug)]
pub struct EncodedVideo {
    pub data: Vec<u8>,
    pub keyframe: bool,
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

    #[test]
    fn the_counter_is_drawn_and_read_back() {
        for n in [0u64, 1, 2, 1234, 65_535] {
            let f = test_pattern(n, 320, 240);
            assert_eq!(read_counter(&f), n);
        }
        assert_ne!(
            test_pattern(1, 320, 240),
            test_pattern(2, 320, 240),
            "it moves"
        );
    }

    #[test]
    fn h264_round_trip_keeps_the_picture_at_both_sizes() {
        for (w, h, bitrate) in [(640, 480, 800_000), (320, 240, 300_000)] {
            let mut enc = VideoEncoder::new(bitrate, 15.0).unwrap();
            let mut dec = VideoDecoder::new().unwrap();
            let mut last = None;
            for n in 0..30u64 {
                let sent = test_pattern(n, w, h);
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
            assert_eq!(read_counter(&got), read_counter(&sent));
        }
    }

    #[test]
    fn a_requested_keyframe_and_a_size_change_restart_cleanly() {
        let mut enc = VideoEncoder::new(500_000, 15.0).unwrap();
        let mut dec = VideoDecoder::new().unwrap();
        for n in 0..5 {
            enc.encode(&test_pattern(n, 320, 240)).unwrap();
        }
        enc.request_keyframe();
        let key = enc.encode(&test_pattern(5, 320, 240)).unwrap();
        assert!(key.keyframe);
        // A decoder that joins late starts from that keyframe alone.
        let got = dec
            .decode(&key.data)
            .unwrap()
            .expect("a keyframe decodes alone");
        assert_eq!(read_counter(&got), 5);
        let bigger = enc.encode(&test_pattern(6, 640, 480)).unwrap();
        assert!(bigger.keyframe);
        let got = dec.decode(&bigger.data).unwrap().unwrap();
        assert_eq!((got.width, got.height), (640, 480));
        assert!(matches!(
            enc.encode(&test_pattern(0, 321, 240)),
            Err(VideoError::Size(321, 240))
        ));
        // Garbage is an error or nothing, never a panic.
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0xff, 0xff]);
    }
}
