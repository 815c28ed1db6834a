//! Camera video, Bevy-free: the camera thread with its fake, the test pattern
//! ([`camera`], [`pattern`]), H.264 both ways ([`h264`]), each peer's
//! pictures decoded ([`remote`]), and the RGB frames between them ([`frame`]).

pub mod camera;
pub mod frame;
pub mod h264;
pub mod pattern;
pub mod remote;

pub use frame::{VideoFrame, fit, psnr, yuyv_to_rgb};
pub use h264::{EncodedVideo, VideoDecoder, VideoEncoder, VideoError};
pub use pattern::{PATTERN_BARS, PATTERN_WHITE, Stamp, clock_ms, read_stamp, test_pattern};
