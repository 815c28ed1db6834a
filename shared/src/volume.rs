//! How loud and from which side a peer's voice plays. The client's mixer applies
//! these; they live here so every client sounds the same.

use crate::proximity::{ProximityConfig, Spot};

/// Neither ear drops below this gain however far to the side a voice is, as in
/// Mumble: a voice fully to one side is still heard a little on the other.
pub const MIN_EAR_GAIN: f32 = 0.25;

/// Gain for a voice `distance` tiles away: 1 within `full_radius`, 0 from
/// `silent_radius` on, and a smoothstep in between (no kink at either end, so
/// walking never makes a step in loudness).
pub fn distance_gain(distance: f32, full_radius: f32, silent_radius: f32) -> f32 {
    if distance <= full_radius {
        return 1.0;
    }
    if distance >= silent_radius || silent_radius <= full_radius {
        return 0.0;
    }
    let t = (distance - full_radius) / (silent_radius - full_radius);
    1.0 - t * t * (3.0 - 2.0 * t)
}

/// Gain for a peer: full inside a shared meeting zone, else by distance, fading
/// to silence at the space's leave radius.
pub fn peer_gain(cfg: &ProximityConfig, me: Spot, peer: Spot) -> f32 {
    match (me.zone, peer.zone) {
        (Some(a), Some(b)) if a == b => 1.0,
        _ => distance_gain(
            me.pos.distance(peer.pos),
            cfg.full_volume_radius,
            cfg.leave_radius,
        ),
    }
}

/// Equal-power stereo gains `(left, right)` for a voice at offset `(dx, dy)` tiles
/// from the listener (`dx < 0`: to the left). `left² + right² = 1` always, and
/// neither is below [`MIN_EAR_GAIN`].
pub fn stereo_pan(dx: f32, dy: f32) -> (f32, f32) {
    let dist = (dx * dx + dy * dy).sqrt();
    let p = if dist > f32::EPSILON {
        (dx / dist).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let min_angle = MIN_EAR_GAIN.asin();
    let angle = min_angle + (p + 1.0) * 0.5 * (std::f32::consts::FRAC_PI_2 - 2.0 * min_angle);
    (angle.cos(), angle.sin())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TilePos, ZoneId};

    #[test]
    fn gain_is_full_near_and_silent_far() {
        assert_eq!(distance_gain(0.0, 2.0, 6.0), 1.0);
        assert_eq!(distance_gain(2.0, 2.0, 6.0), 1.0);
        assert_eq!(distance_gain(6.0, 2.0, 6.0), 0.0);
        assert_eq!(distance_gain(9.0, 2.0, 6.0), 0.0);
        assert!((distance_gain(4.0, 2.0, 6.0) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn gain_falls_monotonically_and_smoothly() {
        let mut last = 1.0;
        for i in 0..=120 {
            let d = i as f32 * 0.05;
            let g = distance_gain(d, 2.0, 6.0);
            assert!(g <= last + 1e-6, "rises at {d}");
            assert!(last - g < 0.03, "steps by {} at {d}", last - g);
            last = g;
        }
    }

    #[test]
    fn zone_mates_hear_each_other_fully() {
        let cfg = ProximityConfig::default();
        let a = Spot::new(TilePos::new(0, 0), Some(ZoneId(3)));
        let b = Spot::new(TilePos::new(9, 0), Some(ZoneId(3)));
        assert_eq!(peer_gain(&cfg, a, b), 1.0);
        let c = Spot::new(TilePos::new(4, 0), None);
        let d = Spot::new(TilePos::new(0, 0), None);
        assert!((peer_gain(&cfg, c, d) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn pan_is_equal_power_with_a_floor() {
        for (dx, dy) in [(-3.0, 0.0), (3.0, 0.0), (0.0, 2.0), (1.0, 1.0), (0.0, 0.0)] {
            let (l, r) = stereo_pan(dx, dy);
            assert!((l * l + r * r - 1.0).abs() < 1e-5);
            assert!(l >= MIN_EAR_GAIN - 1e-6 && r >= MIN_EAR_GAIN - 1e-6);
        }
        let (l, r) = stereo_pan(-3.0, 0.0);
        assert!(l > 0.95 && (r - MIN_EAR_GAIN).abs() < 1e-5, "{l} {r}");
        let (l, r) = stereo_pan(0.0, 5.0);
        assert!((l - r).abs() < 1e-6, "straight ahead is centred");
        let (l, r) = stereo_pan(2.0, 1.0);
        assert!(r > l);
    }
}
