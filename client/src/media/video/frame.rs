//! Pictures as the call handles them: RGB frames, what webcams deliver
//! converted to them, fitted to the size a call sends, and compared (PSNR).

/// One RGB frame (8 bits per channel, rows top to bottom).
#[derive(Clone, Debug, PartialEq)]
pub struct VideoFrame {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
