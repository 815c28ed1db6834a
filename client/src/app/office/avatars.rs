//! Avatars: one entity per person in the space, drawn from the sprite sheet,
//! with a name label, a status dot, and a ring when they are connected to you
//! by proximity. Remote avatars glide between the 20 Hz position updates.

use super::{TILE, tile_center};
use crate::app::bridge::{Session, SpaceChanged};
use crate::app::screens::Screen;
use crate::core::space::Change;
use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageSampler, ImageType};
use bevy::prelude::*;
use hallway_shared::protocol::{Member, Status};
use hallway_shared::{Facing, TilePos, UserId};
use std::collections::HashMap;

/// The sprite sheet: 32×48 frames, 4 walk frames per row, rows
/// `variant * 4 + direction` (down, left, right, up), 8 variants.
const SHEET: &[u8] = include_bytes!("../../../../assets/sprites/avatars.png");
pub const FRAME: UVec2 = UVec2::new(32, 48);
pub const FRAMES: u32 = 4;
pub const VARIANTS: u32 = 8;
/// How long a remote avatar takes to glide to its new tile.
pub const GLIDE_SECONDS: f32 = 0.15;

#[derive(Component, Debug)]
pub struct Avatar {
    pub user: UserId,
    /// The tile it stands on (for the local avatar: the predicted tile).
    pub tile: TilePos,
    pub facing: Facing,
    pub variant: u32,
}

/// The avatar you control.
#[derive(Component, Debug)]
pub struct LocalAvatar;

/// Smooth motion from one point to another.
#[derive(Component, Debug, Clone, Copy, PartialEq)]
pub struct Glide {
    pub from: Vec2,
    pub to: Vec2,
    pub elapsed: f32,
    pub duration: f32,
}

impl Glide {
    pub fn at_rest(p: Vec2) -> Glide {
        Glide {
            from: p,
            to: p,
            elapsed: 0.0,
            duration: 0.0,
        }
    }

    pub fn towards(current: Vec2, to: Vec2, duration: f32) -> Glide {
        Glide {
            from: current,
            to,
            elapsed: 0.0,
            duration,
        }
    }

    pub fn is_moving(&self) -> bool {
        self.elapsed < self.duration
    }

    /// Advances by `dt` seconds; returns the new position.
    pub fn advance(&mut self, dt: f32) -> Vec2 {
        self.elapsed = (self.elapsed + dt).min(self.duration);
        self.position()
    }

    pub fn position(&self) -> Vec2 {
        if self.duration <= 0.0 {
            return self.to;
        }
        self.from.lerp(self.to, self.elapsed / self.duration)
    }
}

/// Walk-cycle timing.
#[derive(Component, Debug, Default)]
pub struct WalkCycle {
    pub time: f32,
}

#[derive(Component)]
pub struct NameLabel;

#[derive(Component)]
pub struct StatusDot;

#[derive(Component)]
pub struct PeerRing;

#[derive(Resource)]
pub struct AvatarAssets {
    pub sheet: Handle<Image>,
    pub layout: Handle<TextureAtlasLayout>,
    pub dot: Handle<Image>,
    pub ring: Handle<Image>,
}

/// Avatar entities by user.
#[derive(Resource, Default)]
pub struct AvatarIndex(pub HashMap<UserId, Entity>);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<AvatarIndex>();
    app.add_systems(Startup, load_avatar_assets);
    app.add_systems(
        Update,
        (
            sync_avatars,
            glide_avatars,
            animate_avatars,
            show_peer_rings,
            show_speaking,
        )
            .chain()
            .in_set(crate::app::AppSet::Apply)
            .run_if(in_state(Screen::Office)),
    );
    app.add_systems(OnExit(Screen::Office), |mut index: ResMut<AvatarIndex>| {
        index.0.clear()
    });
}

/// Height of the name label above the avatar's centre.
const LABEL_Y: f32 = FRAME.y as f32 / 2.0 + 4.0;

/// The status dot sits just left of the name (names are ~6 units a character).
fn dot_x(name: &str) -> f32 {
    -(name.chars().count() as f32 * 3.1) - 6.0
}

/// The world position of an avatar standing on `tile` (feet on the tile).
pub fn avatar_position(tile: TilePos) -> Vec2 {
    tile_center(tile) + Vec2::new(0.0, (FRAME.y as f32 - TILE) / 2.0)
}

/// Draw order: lower on the map is in front.
pub fn avatar_z(y: f32) -> f32 {
    10.0 - y / 10_000.0
}

pub fn atlas_index(variant: u32, facing: Facing, frame: u32) -> usize {
    let row = match facing {
        Facing::Down => 0,
        Facing::Left => 1,
        Facing::Right => 2,
        Facing::Up => 3,
    };
    ((variant % VARIANTS * 4 + row) * FRAMES + frame % FRAMES) as usize
}

fn status_color(status: Status) -> Color {
    match status {
        Status::Available => Color::srgb(0.30, 0.78, 0.40),
        Status::Busy => Color::srgb(0.88, 0.30, 0.28),
        Status::Away => Color::srgb(0.95, 0.72, 0.20),
    }
}

fn load_avatar_assets(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut layouts: ResMut<Assets<TextureAtlasLayout>>,
) {
    let sheet = Image::from_buffer(
        SHEET,
        ImageType::Extension("png"),
        CompressedImageFormats::NONE,
        true,
        ImageSampler::nearest(),
        RenderAssetUsages::RENDER_WORLD,
    )
    .unwrap_or_default();
    let rows = VARIANTS * 4;
    commands.insert_resource(AvatarAssets {
        sheet: images.add(sheet),
        layout: layouts.add(TextureAtlasLayout::from_grid(
            FRAME, FRAMES, rows, None, None,
        )),
        dot: images.add(disc(10, false)),
        ring: images.add(disc(44, true)),
    });
}

/// A white disc (or ring) image to tint.
fn disc(size: u32, ring: bool) -> Image {
    let mut data = vec![0u8; (size * size * 4) as usize];
    let r = size as f32 / 2.0;
    for y in 0..size {
        for x in 0..size {
            let d = Vec2::new(x as f32 + 0.5 - r, y as f32 + 0.5 - r).length();
            let inside = if ring { d <= r && d >= r - 3.0 } else { d <= r };
            let i = ((y * size + x) * 4) as usize;
            if inside {
                data[i..i + 4].copy_from_slice(&[255, 255, 255, 255]);
            } else if !ring && d <= r + 1.0 {
                data[i..i + 4].copy_from_slice(&[40, 40, 40, 200]);
            }
        }
    }
    Image::new(
        bevy::render::render_resource::Extent3d {
            width: size,
            height: size,
            depth_or_array_layers: 1,
        },
        bevy::render::render_resource::TextureDimension::D2,
        data,
        bevy::render::render_resource::TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    )
}

pub fn spawn_avatar(
    commands: &mut Commands,
    assets: &AvatarAssets,
    member: &Member,
    local: bool,
) -> Entity {
    let tile = TilePos::new(member.x, member.y);
    let pos = avatar_position(tile);
    let variant = (member.user_id.0.unsigned_abs() % u64::from(VARIANTS)) as u32;
    let mut e = commands.spawn((
        Avatar {
            user: member.user_id,
            tile,
            facing: member.facing,
            variant,
        },
        Glide::at_rest(pos),
        WalkCycle::default(),
        Sprite::from_atlas_image(
            assets.sheet.clone(),
            TextureAtlas {
                layout: assets.layout.clone(),
                index: atlas_index(variant, member.facing, 0),
            },
        ),
        Transform::from_xyz(pos.x, pos.y, avatar_z(pos.y)),
        DespawnOnExit(Screen::Office),
    ));
    if local {
        e.insert(LocalAvatar);
    }
    e.with_children(|c| {
        c.spawn((
            NameLabel,
            Text2d::new(member.display_name.clone()),
            TextFont::from_font_size(11.0),
            TextColor(Color::WHITE),
            bevy::sprite::Text2dShadow {
                offset: Vec2::new(1.0, -1.0),
                color: Color::srgba(0.0, 0.0, 0.0, 0.8),
            },
            Transform::from_xyz(0.0, LABEL_Y, 0.2),
        ));
        c.spawn((
            StatusDot,
            Sprite {
                image: assets.dot.clone(),
                color: status_color(member.status),
                ..default()
            },
            Transform::from_xyz(dot_x(&member.display_name), LABEL_Y, 0.3),
        ));
        c.spawn((
            PeerRing,
            Sprite {
                image: assets.ring.clone(),
                color: Color::srgba(0.35, 0.75, 1.0, 0.85),
                ..default()
            },
            Transform::from_xyz(0.0, -(FRAME.y as f32 - TILE) / 2.0, -0.1),
            Visibility::Hidden,
        ));
    });
    e.id()
}

/// Spawns, moves, updates and removes avatars as the space changes.
#[allow(clippy::too_many_arguments)]
pub fn sync_avatars(
    mut commands: Commands,
    mut changes: MessageReader<SpaceChanged>,
    session: Res<Session>,
    assets: Option<Res<AvatarAssets>>,
    mut index: ResMut<AvatarIndex>,
    mut avatars: Query<(&mut Avatar, &mut Glide, &Transform, &Children)>,
    mut labels: Query<&mut Text2d, With<NameLabel>>,
    mut dots: Query<(&mut Sprite, &mut Transform), (With<StatusDot>, Without<Avatar>)>,
) {
    let Some(assets) = assets else { return };
    let me = session.client.space.me;
    for SpaceChanged(change) in changes.read() {
        match change {
            Change::Welcomed => {
                for (_, e) in index.0.drain() {
                    commands.entity(e).despawn();
                }
                for m in session.client.space.members.values() {
                    let e = spawn_avatar(&mut commands, &assets, m, Some(m.user_id) == me);
                    index.0.insert(m.user_id, e);
                }
            }
            Change::Joined(user) => {
                if let (Some(m), false) = (
                    session.client.space.members.get(user),
                    index.0.contains_key(user),
                ) {
                    let e = spawn_avatar(&mut commands, &assets, m, Some(*user) == me);
                    index.0.insert(*user, e);
                }
            }
            Change::Left(user) => {
                if let Some(e) = index.0.remove(user) {
                    commands.entity(e).despawn();
                }
            }
            Change::Moved(user) if Some(*user) != me => {
                let (Some(m), Some(&e)) =
                    (session.client.space.members.get(user), index.0.get(user))
                else {
                    continue;
                };
                if let Ok((mut avatar, mut glide, transform, _)) = avatars.get_mut(e) {
                    retarget(&mut avatar, &mut glide, transform, m);
                }
            }
            Change::Updated(user) => {
                let (Some(m), Some(&e)) =
                    (session.client.space.members.get(user), index.0.get(user))
                else {
                    continue;
                };
                if let Ok((_, _, _, children)) = avatars.get(e) {
                    for child in children.iter() {
                        if let Ok(mut text) = labels.get_mut(child) {
                            text.0.clone_from(&m.display_name);
                        }
                        if let Ok((mut sprite, mut transform)) = dots.get_mut(child) {
                            sprite.color = status_color(m.status);
                            transform.translation.x = dot_x(&m.display_name);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Points a remote avatar's glide at its new tile. A jump of more than two
/// tiles (a rejoin, or updates lost) snaps instead of sliding across walls.
pub fn retarget(avatar: &mut Avatar, glide: &mut Glide, transform: &Transform, m: &Member) {
    let tile = TilePos::new(m.x, m.y);
    avatar.facing = m.facing;
    if tile == avatar.tile {
        return;
    }
    let target = avatar_position(tile);
    let current = transform.translation.truncate();
    *glide = if avatar.tile.manhattan(tile) > 2 {
        Glide::at_rest(target)
    } else {
        Glide::towards(
            current,
            target,
            GLIDE_SECONDS * avatar.tile.manhattan(tile) as f32,
        )
    };
    avatar.tile = tile;
}

pub fn glide_avatars(time: Res<Time>, mut q: Query<(&mut Glide, &mut Transform), With<Avatar>>) {
    let dt = time.delta_secs();
    for (mut glide, mut transform) in &mut q {
        if !glide.is_moving() && transform.translation.truncate() == glide.to {
            continue;
        }
        let p = glide.advance(dt);
        transform.translation = p.extend(avatar_z(p.y));
    }
}

pub fn animate_avatars(
    time: Res<Time>,
    mut q: Query<(&Avatar, &Glide, &mut WalkCycle, &mut Sprite)>,
) {
    for (avatar, glide, mut cycle, mut sprite) in &mut q {
        let frame = if glide.is_moving() {
            cycle.time += time.delta_secs();
            1 + ((cycle.time * 10.0) as u32 % (FRAMES - 1))
        } else {
            cycle.time = 0.0;
            0
        };
        if let Some(atlas) = &mut sprite.texture_atlas {
            let index = atlas_index(avatar.variant, avatar.facing, frame);
            if atlas.index != index {
                atlas.index = index;
            }
        }
    }
}

/// Rings around the people you are connected to.
pub fn show_peer_rings(
    mut changes: MessageReader<SpaceChanged>,
    session: Res<Session>,
    avatars: Query<(&Avatar, &Children)>,
    mut rings: Query<&mut Visibility, With<PeerRing>>,
) {
    if !changes
        .read()
        .any(|c| matches!(c.0, Change::Peers | Change::Welcomed | Change::Joined(_)))
    {
        return;
    }
    for (avatar, children) in &avatars {
        let visible = session.client.space.is_peer(avatar.user);
        for child in children.iter() {
            if let Ok(mut v) = rings.get_mut(child) {
                *v = if visible {
                    Visibility::Inherited
                } else {
                    Visibility::Hidden
                };
            }
        }
    }
}

/// Rings turn green while their person speaks (voice detected on their
/// audio); my own ring shows while I am speaking, so I can see that I'm heard.
pub fn show_speaking(
    session: Res<Session>,
    avatars: Query<(&Avatar, Has<LocalAvatar>, &Children)>,
    mut rings: Query<(&mut Sprite, &mut Visibility), With<PeerRing>>,
) {
    let Some(voice) = session.client.call.as_ref() else {
        return;
    };
    let me_speaking = voice.speaking();
    for (avatar, local, children) in &avatars {
        // Only peers are in the mixer; skip the lock for everyone else.
        let speaking = if local {
            me_speaking
        } else {
            session.client.space.is_peer(avatar.user) && voice.peer_speaking(avatar.user)
        };
        let color = if speaking {
            Color::srgba(0.35, 0.95, 0.45, 0.95)
        } else {
            Color::srgba(0.35, 0.75, 1.0, 0.85)
        };
        for child in children.iter() {
            if let Ok((mut sprite, mut visibility)) = rings.get_mut(child) {
                // Write only on change: a write marks the sprite for re-extraction.
                if sprite.color != color {
                    sprite.color = color;
                }
                if local {
                    visibility.set_if_neq(if speaking {
                        Visibility::Inherited
                    } else {
                        Visibility::Hidden
                    });
                }
            }
        }
    }
}
