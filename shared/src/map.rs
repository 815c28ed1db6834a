//! The map model both sides use: size, tile layers for drawing, which tiles block,
//! meeting zones and spawn points. The server builds it from a Tiled map and sends it
//! to clients as JSON (`GET /api/spaces/{id}/map`).

use crate::ZoneId;
use serde::{Deserialize, Serialize};

/// A tile coordinate: `x` grows to the right, `y` grows downwards, `(0, 0)` is the
/// top-left tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TilePos {
    pub x: i32,
    pub y: i32,
}

impl TilePos {
    pub const fn new(x: i32, y: i32) -> Self {
        Self { x, y }
    }

    /// Euclidean distance in tiles. Defined for any two `i32` positions: the
    /// differences are taken in `i64`, so opposite corners of the plane do not
    /// overflow.
    pub fn distance(self, other: TilePos) -> f32 {
        let dx = (i64::from(self.x) - i64::from(other.x)) as f32;
        let dy = (i64::from(self.y) - i64::from(other.y)) as f32;
        (dx * dx + dy * dy).sqrt()
    }

    /// Manhattan distance in tiles (a legal step has 0 or 1). Up to 2^33 - 2,
    /// so it is a `u64`: the sum of two `u32` differences can exceed `u32`.
    pub fn manhattan(self, other: TilePos) -> u64 {
        u64::from(self.x.abs_diff(other.x)) + u64::from(self.y.abs_diff(other.y))
    }
}

/// Which way an avatar looks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facing {
    Up,
    #[default]
    Down,
    Left,
    Right,
}

/// A rectangular zone in tile coordinates (`x..x+width`, `y..y+height`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub id: ZoneId,
    pub name: String,
    /// The zone's kind from the map (`"meeting"` for meeting rooms).
    pub kind: String,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl Zone {
    /// True if `p` is inside. Computed in `i64`, so neither a zone at the edge of
    /// the `i32` range nor any position overflows.
    pub fn contains(&self, p: TilePos) -> bool {
        let (x, y) = (i64::from(p.x), i64::from(p.y));
        let (left, top) = (i64::from(self.x), i64::from(self.y));
        x >= left
            && y >= top
            && x < left + i64::from(self.width)
            && y < top + i64::from(self.height)
    }
}

/// One drawable tile layer: `width * height` global tile ids, row by row; 0 is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TileLayer {
    pub name: String,
    pub tiles: Vec<u32>,
}

/// A tileset image. Global tile id `gid` belongs to the tileset with the greatest
/// `first_gid <= gid`; its local index is `gid - first_gid`, found at column
/// `local % columns`, row `local / columns` of the image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tileset {
    pub first_gid: u32,
    pub name: String,
    pub tile_width: u32,
    pub tile_height: u32,
    pub columns: u32,
    pub tile_count: u32,
    /// The image's file name, as the map refers to it.
    pub image: String,
    /// The image itself: PNG, base64 (standard alphabet, padded).
    pub image_png_base64: String,
}

/// Everything a client needs to draw a space and everything the server needs to
/// validate movement in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapModel {
    pub name: String,
    pub width: i32,
    pub height: i32,
    pub tile_width: u32,
    pub tile_height: u32,
    /// Drawing order: first layer at the bottom.
    pub layers: Vec<TileLayer>,
    pub tilesets: Vec<Tileset>,
    /// `width * height` flags, row by row: `true` where a tile blocks walking.
    pub blocked: Vec<bool>,
    pub zones: Vec<Zone>,
    /// Where newcomers appear; never empty for a valid map.
    pub spawns: Vec<TilePos>,
}

impl MapModel {
    pub fn in_bounds(&self, p: TilePos) -> bool {
        p.x >= 0 && p.y >= 0 && p.x < self.width && p.y < self.height
    }

    /// The index of `p` in row-by-row tile arrays, if it is inside the map.
    pub fn tile_index(&self, p: TilePos) -> Option<usize> {
        if !self.in_bounds(p) {
            return None;
        }
        // In bounds, so all three are non-negative and the product fits i64.
        let i = i64::from(p.y) * i64::from(self.width) + i64::from(p.x);
        usize::try_from(i).ok()
    }

    /// True if an avatar may stand on `p` (inside the map and not blocked). A
    /// `blocked` array shorter than the map (a malformed map from the network)
    /// counts the missing tiles as blocked.
    pub fn is_walkable(&self, p: TilePos) -> bool {
        self.tile_index(p)
            .and_then(|i| self.blocked.get(i))
            .is_some_and(|blocked| !blocked)
    }

    /// The zone containing `p`, if any (the first one listed wins on overlap).
    pub fn zone_at(&self, p: TilePos) -> Option<ZoneId> {
        self.zones.iter().find(|z| z.contains(p)).map(|z| z.id)
    }

    pub fn zone(&self, id: ZoneId) -> Option<&Zone> {
        self.zones.get(id.0 as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> MapModel {
        MapModel {
            name: "t".into(),
            width: 3,
            height: 2,
            tile_width: 32,
            tile_height: 32,
            layers: vec![],
            tilesets: vec![],
            blocked: vec![false, true, false, false, false, false],
            zones: vec![Zone {
                id: ZoneId(0),
                name: "Room".into(),
                kind: "meeting".into(),
                x: 1,
                y: 1,
                width: 2,
                height: 1,
            }],
            spawns: vec![TilePos::new(0, 0)],
        }
    }

    #[test]
    fn walkability_respects_bounds_and_blocks() {
        let m = tiny();
        assert!(m.is_walkable(TilePos::new(0, 0)));
        assert!(!m.is_walkable(TilePos::new(1, 0)));
        assert!(!m.is_walkable(TilePos::new(-1, 0)));
        assert!(!m.is_walkable(TilePos::new(3, 0)));
        assert!(!m.is_walkable(TilePos::new(0, 2)));
    }

    #[test]
    fn zones_are_half_open_rectangles() {
        let m = tiny();
        assert_eq!(m.zone_at(TilePos::new(1, 1)), Some(ZoneId(0)));
        assert_eq!(m.zone_at(TilePos::new(2, 1)), Some(ZoneId(0)));
        assert_eq!(m.zone_at(TilePos::new(0, 1)), None);
        assert_eq!(m.zone_at(TilePos::new(1, 0)), None);
    }

    #[test]
    fn distances() {
        let a = TilePos::new(0, 0);
        assert_eq!(a.distance(TilePos::new(3, 4)), 5.0);
        assert_eq!(a.manhattan(TilePos::new(3, -4)), 7);
    }

    #[test]
    fn extreme_coordinates_do_not_overflow() {
        let min = TilePos::new(i32::MIN, i32::MIN);
        let max = TilePos::new(i32::MAX, i32::MAX);
        assert_eq!(min.manhattan(max), 2 * u64::from(u32::MAX));
        assert_eq!(
            TilePos::new(5, 26).manhattan(min),
            2_147_483_653 + 2_147_483_674
        );
        assert!(min.distance(max) > 6.0e9);
        let m = tiny();
        for p in [
            min,
            max,
            TilePos::new(i32::MIN, 0),
            TilePos::new(0, i32::MAX),
        ] {
            assert!(!m.is_walkable(p));
            assert_eq!(m.zone_at(p), None);
        }
        let edge = Zone {
            id: ZoneId(1),
            name: "Edge".into(),
            kind: "meeting".into(),
            x: i32::MAX - 1,
            y: i32::MAX - 1,
            width: i32::MAX,
            height: i32::MAX,
        };
        assert!(edge.contains(max));
        assert!(!edge.contains(min));
    }

    #[test]
    fn a_short_blocked_array_blocks_the_missing_tiles() {
        let mut m = tiny();
        m.blocked.truncate(2);
        assert!(m.is_walkable(TilePos::new(0, 0)));
        assert!(!m.is_walkable(TilePos::new(2, 1)));
    }
}
