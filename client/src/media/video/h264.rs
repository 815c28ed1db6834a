//! H.264 through openh264: Constrained Baseline, Annex-B access units, for
//! encoding and decoding RGB frames.

use super::frame::VideoFrame;
use openh264::OpenH264API;
use openh264::decoder::Decoder;
use openh264::encoder::{
    BitRate, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::{RgbSliceU8, YUVBuffer, YUVSource};

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("h264: {0}")]
    Codec(#[from] openh264::Error),
    #[error("frame sizes must be even and at least 64×48, not {0}×{1}")]
    Size(usize, usize),
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
    use crate::media::video::{Stamp, psnr, read_stamp, test_pattern};

    fn stamp(n: u16) -> Stamp {
        Stamp {
            frame: n,
            clock_ms: n.wrapping_mul(33),
        }
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
