//! Draws the space's map: every tile layer composed once into one image (a
//! single sprite, however large the map), with meeting zones tinted.

use super::{OfficeMap, TILE};
use crate::app::screens::Screen;
use base64::Engine;
use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageSampler, ImageType};
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use hallway_shared::MapModel;

/// The map sprite.
#[derive(Component)]
pub struct MapSprite;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(
        Update,
        spawn_map
            .in_set(crate::app::AppSet::Apply)
            .run_if(in_state(Screen::Office).and_then(resource_exists::<OfficeMap>)),
    );
}

fn spawn_map(
    mut commands: Commands,
    map: Res<OfficeMap>,
    existing: Query<Entity, With<MapSprite>>,
    mut images: ResMut<Assets<Image>>,
) {
    if !map.is_changed() {
        return;
    }
    for e in &existing {
        commands.entity(e).despawn();
    }
    match compose(&map.0) {
        Ok(image) => {
            let (w, h) = (map.0.width as f32 * TILE, map.0.height as f32 * TILE);
            commands.spawn((
                MapSprite,
                Sprite::from_image(images.add(image)),
                Transform::from_xyz(w / 2.0, -h / 2.0, 0.0),
                DespawnOnExit(Screen::Office),
            ));
        }
        Err(e) => error!("cannot draw the map: {e}"),
    }
}

/// The widest and tallest map image drawn (what every GPU takes as a texture).
const MAX_SIDE: u32 = 8192;

/// A decoded tileset: RGBA8 pixels.
struct Sheet {
    first_gid: u32,
    columns: u32,
    tile_w: u32,
    tile_h: u32,
    width: u32,
    pixels: Vec<u8>,
}

/// Composes all layers (alpha-blended, first layer at the bottom) and the zone
/// tints into one RGBA image, one pixel per map pixel.
pub fn compose(map: &MapModel) -> Result<Image, String> {
    let mut sheets = Vec::new();
    for ts in &map.tilesets {
        let png = base64::engine::general_purpose::STANDARD
            .decode(&ts.image_png_base64)
            .map_err(|e| format!("tileset {}: {e}", ts.name))?;
        let image = Image::from_buffer(
            &png,
            ImageType::Extension("png"),
            CompressedImageFormats::NONE,
            true,
            ImageSampler::nearest(),
            RenderAssetUsages::MAIN_WORLD,
        )
        .map_err(|e| format!("tileset {}: {e}", ts.name))?
        .convert(TextureFormat::Rgba8UnormSrgb)
        .ok_or_else(|| format!("tileset {}: unsupported pixel format", ts.name))?;
        sheets.push(Sheet {
            first_gid: ts.first_gid,
            columns: ts.columns.max(1),
            tile_w: ts.tile_width,
            tile_h: ts.tile_height,
            width: image.width(),
            pixels: image.data.clone().unwrap_or_default(),
        });
    }
    sheets.sort_by_key(|s| s.first_gid);
    let (tw, th) = (map.tile_width, map.tile_height);
    // The map comes from the server: its sizes may be anything. One image is
    // at most MAX_SIDE a side (so every product below fits in a u32).
    let side = |tiles: i32, tile: u32| {
        u32::try_from(tiles)
            .ok()
            .and_then(|t| t.checked_mul(tile))
            .filter(|&px| px > 0 && px <= MAX_SIDE)
    };
    let (Some(w), Some(h)) = (side(map.width, tw), side(map.height, th)) else {
        return Err(format!(
            "the map is {}×{} tiles of {tw}×{th} px; at most {MAX_SIDE} px a side can be drawn",
            map.width, map.height
        ));
    };
    let mut out = vec![0u8; (w * h * 4) as usize];
    for layer in &map.layers {
        // A layer longer than the map (a broken map) draws the map's worth.
        let tiles = (w / tw.max(1)) as usize * (h / th.max(1)) as usize;
        for (i, &gid) in layer.tiles.iter().take(tiles).enumerate() {
            if gid == 0 {
                continue;
            }
            let Some(sheet) = sheets.iter().rev().find(|s| s.first_gid <= gid) else {
                continue;
            };
            // In u64: gids and tileset sizes are the server's; a pixel
            // outside the sheet or the image is skipped.
            let local = u64::from(gid - sheet.first_gid);
            let columns = u64::from(sheet.columns);
            let (sx, sy) = (
                (local % columns).saturating_mul(u64::from(sheet.tile_w)),
                (local / columns).saturating_mul(u64::from(sheet.tile_h)),
            );
            let map_w = u64::from(w / tw.max(1));
            let (dx, dy) = (
                (i as u64 % map_w.max(1)) * u64::from(tw),
                (i as u64 / map_w.max(1)) * u64::from(th),
            );
            for y in 0..u64::from(th.min(sheet.tile_h)) {
                for x in 0..u64::from(tw.min(sheet.tile_w)) {
                    let s = sy
                        .saturating_add(y)
                        .saturating_mul(u64::from(sheet.width))
                        .saturating_add(sx.saturating_add(x))
                        .saturating_mul(4);
                    let d = ((dy + y) * u64::from(w) + dx + x) * 4;
                    let range = |at: u64| {
                        usize::try_from(at)
                            .ok()
                            .and_then(|a| Some(a..a.checked_add(4)?))
                    };
                    let src = range(s).and_then(|r| sheet.pixels.get(r));
                    let dst = range(d).and_then(|r| out.get_mut(r));
                    if let (Some(src), Some(dst)) = (src, dst) {
                        blend(dst, src);
                    }
                }
            }
        }
    }
    for zone in &map.zones {
        tint_zone(&mut out, w, zone, tw, th);
    }
    let mut image = Image::new(
        Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        out,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    );
    image.sampler = ImageSampler::nearest();
    Ok(image)
}

/// Source-over blending of one RGBA8 pixel.
fn blend(dst: &mut [u8], src: &[u8]) {
    let a = src[3] as u32;
    if a == 0 {
        return;
    }
    if a == 255 {
        dst.copy_from_slice(src);
        return;
    }
    for c in 0..3 {
        dst[c] = ((src[c] as u32 * a + dst[c] as u32 * (255 - a)) / 255) as u8;
    }
    dst[3] = (a + dst[3] as u32 * (255 - a) / 255).min(255) as u8;
}

/// A soft inner border around a meeting zone, so people see where it is.
/// The zone is clipped to the image (its coordinates are the server's).
fn tint_zone(out: &mut [u8], w: u32, zone: &hallway_shared::map::Zone, tw: u32, th: u32) {
    let h = (out.len() / 4) as u64 / u64::from(w.max(1));
    let clip = |tiles: i64, tile: u32, max: u64| {
        (tiles.max(0) as u64)
            .saturating_mul(u64::from(tile))
            .min(max)
    };
    let (x0, y0) = (
        clip(i64::from(zone.x), tw, u64::from(w)),
        clip(i64::from(zone.y), th, h),
    );
    let (x1, y1) = (
        clip(i64::from(zone.x) + i64::from(zone.width), tw, u64::from(w)),
        clip(i64::from(zone.y) + i64::from(zone.height), th, h),
    );
    let (x0, y0, x1, y1) = (x0 as u32, y0 as u32, x1 as u32, y1 as u32);
    let border = 3;
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + border
                || x >= x1.saturating_sub(border)
                || y < y0 + border
                || y >= y1.saturating_sub(border);
            if !edge {
                continue;
            }
            let d = ((y * w + x) * 4) as usize;
            if let Some(px) = out.get_mut(d..d + 4) {
                blend(px, &[255, 214, 102, 150]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hallway_shared::map::{TileLayer, Tileset, Zone};
    use hallway_shared::{TilePos, ZoneId};

    fn png(w: u32, h: u32) -> String {
        let img = image::RgbaImage::from_pixel(w, h, image::Rgba([200, 10, 10, 255]));
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)
            .expect("encode");
        base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
    }

    fn zone(x: i32, y: i32, width: i32, height: i32) -> Zone {
        Zone {
            id: ZoneId(0),
            name: "z".into(),
            kind: "meeting".into(),
            x,
            y,
            width,
            height,
        }
    }

    /// The map comes from the server: whatever its numbers, it is drawn (what
    /// fits) or refused with an error, never a panic.
    #[test]
    fn hostile_map_numbers_are_drawn_or_refused() {
        let mut map = MapModel {
            name: "hostile".into(),
            width: 4,
            height: 3,
            tile_width: 8,
            tile_height: 8,
            layers: vec![TileLayer {
                name: "floor".into(),
                tiles: vec![1, u32::MAX, 7, 0, 2, 1, 1, 1, 1, 1, 1, 1, 5, 5, 5],
            }],
            tilesets: vec![Tileset {
                first_gid: 1,
                name: "t".into(),
                tile_width: u32::MAX,
                tile_height: 8,
                columns: 0,
                tile_count: 1,
                image: "t.png".into(),
                image_png_base64: png(8, 8),
            }],
            blocked: vec![],
            zones: vec![
                zone(i32::MIN, i32::MAX, i32::MAX, -5),
                zone(-2, -2, 100, 100),
                zone(i32::MAX, i32::MAX, i32::MAX, i32::MAX),
                zone(1, 1, 1, 1),
            ],
            spawns: vec![TilePos::new(0, 0)],
        };
        let image = compose(&map).expect("a small map is drawn");
        assert_eq!((image.width(), image.height()), (32, 24));
        for (w, tw) in [(i32::MAX, 8), (-1, 8), (4, u32::MAX), (0, 8), (4, 0)] {
            map.width = w;
            map.tile_width = tw;
            assert!(compose(&map).is_err(), "{w} tiles of {tw} px");
        }
    }
}
