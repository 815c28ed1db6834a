//! H.264 encode and decode time per frame (openh264, the fake camera's test
//! pattern) at 320×240 and 640×480, and the bitrate the encoder holds.
//!
//! Run: `cargo bench -p hallway-client --bench video`

use hallway_client::media::video::{Stamp, VideoDecoder, VideoEncoder, psnr, test_pattern};
use std::time::{Duration, Instant};

fn main() {
    for (w, h, fps, bitrate) in [(320, 240, 15.0, 300_000), (640, 480, 30.0, 800_000)] {
        let mut enc = VideoEncoder::new(bitrate, fps).expect("encoder");
        let mut dec = VideoDecoder::new().expect("decoder");
        let frames = 300u64;
        let (mut enc_t, mut dec_t) = (Vec::new(), Vec::new());
        let (mut bytes, mut psnr_sum, mut decoded) = (0usize, 0.0, 0u32);
        for n in 0..frames {
            let frame = test_pattern(Stamp::now(n), w, h);
            let t = Instant::now();
            let au = enc.encode(&frame).expect("encode");
            enc_t.push(t.elapsed());
            bytes += au.data.len();
            if au.data.is_empty() {
                continue;
            }
            let t = Instant::now();
            let got = dec.decode(&au.data).expect("decode");
            dec_t.push(t.elapsed());
            if let Some(got) = got {
                psnr_sum += psnr(&frame, &got);
                decoded += 1;
            }
        }
        let ms = |v: &mut Vec<Duration>, p: f64| {
            v.sort();
            v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0
        };
        let kbps = bytes as f64 * 8.0 / (frames as f64 / f64::from(fps)) / 1000.0;
        println!(
            "{w}x{h}@{fps}: encode p50 {:.2} ms p95 {:.2} ms; decode p50 {:.2} ms p95 {:.2} ms; {kbps:.0} kbit/s (target {}); mean PSNR {:.1} dB over {decoded} frames",
            ms(&mut enc_t, 0.5),
            ms(&mut enc_t, 0.95),
            ms(&mut dec_t, 0.5),
            ms(&mut dec_t, 0.95),
            bitrate / 1000,
            psnr_sum / f64::from(decoded.max(1)),
        );
    }
}
