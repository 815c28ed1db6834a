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
    let (w, h) = (map.width as u32 * tw, map.height as u32 * th);
    let mut out = vec![0u8; (w * h * 4) as usize];
    for layer in &map.layers {
        for (i, &gid) in layer.tiles.iter().enumerate() {
            if gid == 0 {
                continue;
            }
            let Some(sheet) = sheets.iter().rev().find(|s| s.first_gid <= gid) else {
                continue;
            };
            let local = gid - sheet.first_gid;
            let (sx, sy) = (
                (local % sheet.columns) * sheet.tile_w,
                (local / sheet.columns) * sheet.tile_h,
            );
            let (dx, dy) = (
                (i as u32 % map.width as u32) * tw,
                (i as u32 / map.width as u32) * th,
            );
            for y in 0..th.min(sheet.tile_h) {
                for x in 0..tw.min(sheet.tile_w) {
                    let s = (((sy + y) * sheet.width + sx + x) * 4) as usize;
                    let d = (((dy + y) * w + dx + x) * 4) as usize;
                    if let (Some(src), true) = (sheet.pixels.get(s..s + 4), d + 4 <= out.len()) {
                        blend(&mut out[d..d + 4], src);
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
fn tint_zone(out: &mut [u8], w: u32, zone: &hallway_shared::map::Zone, tw: u32, th: u32) {
    let (x0, y0) = (zone.x.max(0) as u32 * tw, zone.y.max(0) as u32 * th);
    let (x1, y1) = (x0 + zone.width as u32 * tw, y0 + zone.height as u32 * th);
    let border = 3;
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + border || x >= x1 - border || y < y0 + border || y >= y1 - border;
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
