//! Maps: Tiled `.tmx` files turned into the shared [`MapModel`]. The default
//! office map ships inside the binary, so the server needs no files beside it;
//! more maps can be loaded from a directory.
//!
//! Conventions (see `assets/maps/README.md`): tiles with a `collides = true`
//! property block walking; rectangles in an object group named `zones` are
//! meeting zones (their `name` is shown, their class/type is the kind);
//! points in an object group named `spawns` are where newcomers appear.

use base64::Engine;
use hallway_shared::map::{TileLayer, Tileset, Zone};
use hallway_shared::{MapModel, TilePos, ZoneId};
use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tiled::{LayerType, ObjectShape, PropertyValue};

/// The map new spaces use.
pub const DEFAULT_MAP: &str = "office";

const BUILTIN: &[(&str, &[u8])] = &[
    ("office.tmx", include_bytes!("../../assets/maps/office.tmx")),
    (
        "office.tsx",
        include_bytes!("../../assets/tilesets/office.tsx"),
    ),
    (
        "office.png",
        include_bytes!("../../assets/tilesets/office.png"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("cannot read map {0}: {1}")]
    Tiled(String, #[source] tiled::Error),
    #[error("cannot read {0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("map {0} is invalid: {1}")]
    Invalid(String, String),
}

/// All maps the server knows, by name.
#[derive(Clone, Debug, Default)]
pub struct MapStore {
    maps: HashMap<String, Arc<MapModel>>,
}

impl MapStore {
    /// The built-in maps, plus every `*.tmx` in `dir` if given (a map there
    /// replaces a built-in one of the same name).
    pub fn load(dir: Option<&Path>) -> Result<MapStore, MapError> {
        let mut maps = HashMap::new();
        let builtin = load_map(DEFAULT_MAP, Path::new("office.tmx"), |p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, bytes)| bytes.to_vec())
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, name.to_owned()))
        })?;
        maps.insert(DEFAULT_MAP.to_owned(), Arc::new(builtin));
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|e| MapError::Io(dir.to_owned(), e))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "tmx") {
                    let name = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or_default()
                        .to_owned();
                    let map = load_map(&name, &path, |p: &Path| std::fs::read(p))?;
                    maps.insert(name, Arc::new(map));
                }
            }
        }
        Ok(MapStore { maps })
    }

    pub fn get(&self, name: &str) -> Option<Arc<MapModel>> {
        self.maps.get(name).cloned()
    }
}

/// Reads the map at `path`, fetching it and everything it refers to with `read`.
pub fn load_map(
    name: &str,
    path: &Path,
    read: impl Fn(&Path) -> std::io::Result<Vec<u8>>,
) -> Result<MapModel, MapError> {
    let invalid = |msg: String| MapError::Invalid(name.to_owned(), msg);
    let read = &read;
    let mut loader = tiled::Loader::with_reader(|p: &Path| read(p).map(Cursor::new));
    let map = loader
        .load_tmx_map(path)
        .map_err(|e| MapError::Tiled(name.to_owned(), e))?;
    if map.orientation != tiled::Orientation::Orthogonal || map.infinite() {
        return Err(invalid("only finite orthogonal maps are supported".into()));
    }
    let (width, height) = (map.width as i32, map.height as i32);
    let cells = (width * height) as usize;

    let mut tilesets = Vec::new();
    let mut first_gids = Vec::new();
    let mut next_gid = 1;
    for ts in map.tilesets() {
        let image = ts
            .image
            .as_ref()
            .ok_or_else(|| invalid(format!("tileset {} has no single image", ts.name)))?;
        let png = read(&image.source).map_err(|e| MapError::Io(image.source.clone(), e))?;
        first_gids.push(next_gid);
        tilesets.push(Tileset {
            first_gid: next_gid,
            name: ts.name.clone(),
            tile_width: ts.tile_width,
            tile_height: ts.tile_height,
            columns: ts.columns,
            tile_count: ts.tilecount,
            image: image
                .source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned(),
            image_png_base64: base64::engine::general_purpose::STANDARD.encode(png),
        });
        next_gid += ts.tilecount;
    }

    let mut layers = Vec::new();
    let mut blocked = vec![false; cells];
    let mut zones = Vec::new();
    let mut spawns = Vec::new();
    let to_tile = |px: f32, size: u32| (px / size as f32).floor() as i32;
    for layer in map.layers() {
        match layer.layer_type() {
            LayerType::Tiles(tiles) => {
                let mut data = vec![0u32; cells];
                for y in 0..height {
                    for x in 0..width {
                        let Some(t) = tiles.get_tile(x, y) else {
                            continue;
                        };
                        let i = (y * width + x) as usize;
                        data[i] = first_gids[t.tileset_index()] + t.id();
                        let collides = t.get_tile().is_some_and(|tile| {
                            matches!(
                                tile.properties.get("collides"),
                                Some(PropertyValue::BoolValue(true))
                            )
                        });
                        blocked[i] |= collides;
                    }
                }
                // A hidden layer still blocks (a common way to draw collisions)
                // but is not drawn.
                if layer.visible {
                    layers.push(TileLayer {
                        name: layer.name.clone(),
                        tiles: data,
                    });
                }
            }
            LayerType::Objects(objects) if layer.name == "zones" => {
                for o in objects.objects() {
                    let ObjectShape::Rect {
                        width: w,
                        height: h,
                    } = o.shape
                    else {
                        return Err(invalid(format!("zone {:?} is not a rectangle", o.name)));
                    };
                    let x = to_tile(o.x, map.tile_width);
                    let y = to_tile(o.y, map.tile_height);
                    let zone = Zone {
                        id: ZoneId(zones.len() as u32),
                        name: o.name.clone(),
                        kind: if o.user_type.is_empty() {
                            "meeting".to_owned()
                        } else {
                            o.user_type.clone()
                        },
                        x,
                        y,
                        width: to_tile(o.x + w, map.tile_width) - x,
                        height: to_tile(o.y + h, map.tile_height) - y,
                    };
                    if zone.width <= 0 || zone.height <= 0 {
                        return Err(invalid(format!("zone {:?} is empty", o.name)));
                    }
                    zones.push(zone);
                }
            }
            LayerType::Objects(objects) if layer.name == "spawns" => {
                for o in objects.objects() {
                    spawns.push(TilePos::new(
                        to_tile(o.x, map.tile_width),
                        to_tile(o.y, map.tile_height),
                    ));
                }
            }
            _ => {}
        }
    }

    let model = MapModel {
        name: name.to_owned(),
        width,
        height,
        tile_width: map.tile_width,
        tile_height: map.tile_height,
        layers,
        tilesets,
        blocked,
        zones,
        spawns,
    };
    if model.spawns.is_empty() {
        return Err(invalid("no spawn points (object group `spawns`)".into()));
    }
    if let Some(p) = model.spawns.iter().find(|p| !model.is_walkable(**p)) {
        return Err(invalid(format!("spawn point {p:?} is not walkable")));
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_office_map_loads_with_walls_zones_and_spawns() {
        let store = MapStore::load(None).unwrap();
        let map = store.get(DEFAULT_MAP).unwrap();
        assert!(map.width >= 40 && map.height >= 30);
        assert!(map.zones.iter().filter(|z| z.kind == "meeting").count() >= 2);
        assert!(!map.spawns.is_empty());
        // The outer wall blocks, and the map is mostly walkable inside.
        assert!(!map.is_walkable(TilePos::new(0, 0)));
        assert!(!map.is_walkable(TilePos::new(map.width - 1, map.height / 2)));
        let open = map.blocked.iter().filter(|b| !**b).count();
        assert!(open > map.blocked.len() / 3, "only {open} open tiles");
        assert_eq!(map.tilesets.len(), 1);
        assert!(map.tilesets[0].image_png_base64.starts_with("iVBORw0KGgo"));
        for layer in &map.layers {
            assert_eq!(layer.tiles.len(), (map.width * map.height) as usize);
        }
    }

    #[test]
    fn a_broken_map_is_a_clear_error() {
        let err = load_map("bad", Path::new("bad.tmx"), |_| Ok(b"<map".to_vec())).unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
    }
}
