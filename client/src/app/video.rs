//! Video in the office: each connected person's picture in a bubble above
//! their avatar and in the strip along the top of the map (click one to
//! enlarge it), and my own picture first in the strip. Pictures are decoded
//! off the Bevy thread (see `media::video::remote`); here a picture is only
//! copied into its texture when a new one has arrived, and one texture per
//! person serves both the bubble (a Bevy sprite) and the strip (egui).

use super::bridge::Session;
use super::office::avatars::{Avatar, FRAME};
use super::screens::Screen;
use crate::media::video::VideoFrame;
use crate::rtc::LinkState;
use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy_egui::{EguiTextureHandle, EguiUserTextures, egui};
use hallway_shared::UserId;
use std::collections::HashMap;
use std::sync::Arc;

/// Whose picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    Me,
    Peer(UserId),
}

/// One picture's texture.
pub struct VideoTexture {
    pub image: Handle<Image>,
    pub texture: egui::TextureId,
    pub size: UVec2,
    seq: u64,
}

/// The textures of every picture on screen, and the one enlarged.
#[derive(Resource, Default)]
pub struct VideoTextures {
    pub feeds: HashMap<Feed, VideoTexture>,
    pub enlarged: Option<Feed>,
}

/// A video bubble above a peer's avatar.
#[derive(Component)]
pub struct VideoBubble(pub UserId);

/// Size of a bubble in world units (the avatar is 32×48).
pub const BUBBLE: Vec2 = Vec2::new(64.0, 48.0);
/// Size of a strip tile in logical pixels.
pub const TILE: egui::Vec2 = egui::vec2(160.0, 120.0);

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<VideoTextures>();
    app.add_systems(
        Update,
        (update_video_textures, show_video_bubbles)
            .chain()
            // Bubbles hang on avatars: after this frame's are spawned and despawned.
            .after(super::office::avatars::sync_avatars)
            .in_set(super::AppSet::Apply)
            .run_if(in_state(Screen::Office)),
    );
    app.add_systems(OnExit(Screen::Office), clear_video);
}

/// Copies new pictures into their textures; adds and frees textures as
/// people start and stop sending (or leave).
pub fn update_video_textures(
    session: Res<Session>,
    mut textures: ResMut<VideoTextures>,
    mut images: ResMut<Assets<Image>>,
    mut egui_textures: ResMut<EguiUserTextures>,
) {
    let mut current: Vec<(Feed, u64, Arc<VideoFrame>)> = Vec::new();
    if let Some(voice) = session.client.call.as_ref() {
        if let Some((seq, frame)) = voice.preview() {
            current.push((Feed::Me, seq, frame));
        }
        for (peer, video) in voice.videos() {
            if video.live() && session.client.space.is_peer(peer) {
                current.push((Feed::Peer(peer), video.seq, video.frame));
            }
        }
    }
    textures.feeds.retain(|feed, t| {
        let keep = current.iter().any(|(f, ..)| f == feed);
        if !keep {
            egui_textures.remove_image(&t.image);
        }
        keep
    });
    for (feed, seq, frame) in current {
        let size = UVec2::new(frame.width as u32, frame.height as u32);
        let existing = textures.feeds.get(&feed);
        if existing.is_some_and(|t| t.seq == seq) {
            continue;
        }
        if existing.is_none_or(|t| t.size != size) {
            if let Some(old) = textures.feeds.remove(&feed) {
                egui_textures.remove_image(&old.image);
            }
            let image = images.add(Image::new_fill(
                Extent3d {
                    width: size.x,
                    height: size.y,
                    depth_or_array_layers: 1,
                },
                TextureDimension::D2,
                &[0, 0, 0, 255],
                TextureFormat::Rgba8UnormSrgb,
                RenderAssetUsages::default(),
            ));
            let texture = egui_textures.add_image(EguiTextureHandle::Weak(image.id()));
            textures.feeds.insert(
                feed,
                VideoTexture {
                    image,
                    texture,
                    size,
                    seq: 0,
                },
            );
        }
        let Some(t) = textures.feeds.get_mut(&feed) else {
            continue;
        };
        if let Some(mut image) = images.get_mut(&t.image)
            && let Some(data) = image.data.as_mut()
        {
            rgb_to_rgba(&frame.rgb, data);
        }
        t.seq = seq;
    }
    if textures
        .enlarged
        .is_some_and(|f| !textures.feeds.contains_key(&f))
    {
        textures.enlarged = None;
    }
}

/// Fills `rgba` (opaque) from `rgb`, as far as both go.
fn rgb_to_rgba(rgb: &[u8], rgba: &mut [u8]) {
    for (src, dst) in rgb.chunks_exact(3).zip(rgba.chunks_exact_mut(4)) {
        dst[..3].copy_from_slice(src);
        dst[3] = 255;
    }
}

/// Keeps one bubble above each peer who sends video, none above anyone else.
pub fn show_video_bubbles(
    mut commands: Commands,
    textures: Res<VideoTextures>,
    avatars: Query<(Entity, &Avatar)>,
    mut bubbles: Query<(Entity, &VideoBubble, &ChildOf, &mut Sprite)>,
) {
    let mut have = HashMap::new();
    for (entity, bubble, parent, mut sprite) in &mut bubbles {
        match textures.feeds.get(&Feed::Peer(bubble.0)) {
            Some(t) if avatars.get(parent.parent()).is_ok() => {
                if sprite.image != t.image {
                    sprite.image = t.image.clone();
                }
                have.insert(bubble.0, entity);
            }
            _ => commands.entity(entity).despawn(),
        }
    }
    for (entity, avatar) in &avatars {
        let Some(t) = textures.feeds.get(&Feed::Peer(avatar.user)) else {
            continue;
        };
        if have.contains_key(&avatar.user) {
            continue;
        }
        commands.entity(entity).with_children(|c| {
            c.spawn((
                VideoBubble(avatar.user),
                Sprite {
                    image: t.image.clone(),
                    custom_size: Some(BUBBLE),
                    ..default()
                },
                // Above the name label, in front of everything on the map.
                Transform::from_xyz(0.0, FRAME.y as f32 / 2.0 + 14.0 + BUBBLE.y / 2.0, 5.0),
            ))
            .with_children(|b| {
                b.spawn((
                    Sprite::from_color(
                        Color::srgba(0.1, 0.1, 0.12, 0.9),
                        BUBBLE + Vec2::splat(4.0),
                    ),
                    Transform::from_xyz(0.0, 0.0, -0.01),
                ));
            });
        });
    }
}

fn clear_video(mut textures: ResMut<VideoTextures>, mut egui_textures: ResMut<EguiUserTextures>) {
    for (_, t) in textures.feeds.drain() {
        egui_textures.remove_image(&t.image);
    }
    textures.enlarged = None;
}

/// The strip of pictures along the top of the map, me first; a click
/// enlarges one (and a click on the enlarged one closes it). Returns the
/// strip's height (0 when empty) so other overlays can sit below it.
pub fn draw_strip(
    ctx: &egui::Context,
    session: &Session,
    textures: &mut VideoTextures,
    map_center_x: f32,
) -> f32 {
    // People connected (or connecting) to me without a picture get a tile too.
    let links = session
        .client
        .call
        .as_ref()
        .map(|v| v.links())
        .unwrap_or_default();
    let without_video: Vec<(UserId, &'static str)> = session
        .client
        .space
        .peers
        .iter()
        .filter(|p| !textures.feeds.contains_key(&Feed::Peer(p.user_id)))
        .map(|p| {
            let connected = links
                .get(&p.user_id)
                .is_some_and(|l| l.connected_at.is_some() && l.state == LinkState::Connected);
            (
                p.user_id,
                if connected {
                    "camera off"
                } else {
                    "connecting…"
                },
            )
        })
        .collect();
    if textures.feeds.is_empty() && without_video.is_empty() {
        return 0.0;
    }
    let name = |feed: Feed| match feed {
        Feed::Me => "You".to_owned(),
        Feed::Peer(id) => session
            .client
            .space
            .members
            .get(&id)
            .map_or_else(|| format!("#{}", id.0), |m| m.display_name.clone()),
    };
    let mut feeds: Vec<(Feed, egui::TextureId)> = textures
        .feeds
        .iter()
        .map(|(f, t)| (*f, t.texture))
        .collect();
    feeds.sort_by_key(|(f, _)| (*f != Feed::Me, name(*f).to_lowercase()));
    let mut others: Vec<(String, &str)> = without_video
        .iter()
        .map(|(id, note)| (name(Feed::Peer(*id)), *note))
        .collect();
    others.sort_by_key(|(n, _)| n.to_lowercase());
    // As many tiles as fit over the map; the rest are counted in the last.
    let map_width = ctx.viewport_rect().width() + 2.0 * map_center_x - 40.0;
    let fit = ((map_width / (TILE.x + 14.0)) as usize).max(1);
    let total = feeds.len() + others.len();
    let shown = if total > fit { fit - 1 } else { total };
    let mut clicked = None;
    let response = egui::Area::new("video-strip".into())
        .anchor(egui::Align2::CENTER_TOP, egui::vec2(map_center_x, 36.0))
        .show(ctx, |ui| {
            ui.horizontal(|ui| {
                for (feed, texture) in feeds.iter().take(shown) {
                    strip_tile(ui, &name(*feed), |ui, rect| {
                        let image = egui::Image::new((*texture, TILE)).sense(egui::Sense::click());
                        let response = ui.put(rect, image).on_hover_text("Click to enlarge");
                        if response.clicked() {
                            clicked = Some(*feed);
                        }
                    });
                }
                for (who, note) in others.iter().take(shown.saturating_sub(feeds.len())) {
                    strip_tile(ui, who, |ui, rect| placeholder(ui, rect, note));
                }
                if total > shown {
                    let more = format!("+{} more", total - shown);
                    strip_tile(ui, "", |ui, rect| placeholder(ui, rect, &more));
                }
            });
        });
    if let Some(feed) = clicked {
        textures.enlarged = if textures.enlarged == Some(feed) {
            None
        } else {
            Some(feed)
        };
    }
    if let Some(feed) = textures.enlarged
        && let Some(t) = textures.feeds.get(&feed)
    {
        let mut open = true;
        let size = egui::vec2(t.size.x as f32, t.size.y as f32);
        let available = ctx.viewport_rect().size() * 0.8;
        let scale = (available.x / size.x).min(available.y / size.y).min(1.0);
        egui::Window::new(name(feed))
            .id("video-enlarged".into())
            .open(&mut open)
            .collapsible(false)
            .resizable(false)
            .show(ctx, |ui| {
                let image = egui::Image::new((t.texture, size * scale)).sense(egui::Sense::click());
                if ui.add(image).clicked() {
                    textures.enlarged = None;
                }
            });
        if !open {
            textures.enlarged = None;
        }
    }
    response.response.rect.height()
}

/// One tile of the strip: a framed `TILE`-sized picture (drawn by `draw`)
/// with a name under it.
fn strip_tile(ui: &mut egui::Ui, name: &str, draw: impl FnOnce(&mut egui::Ui, egui::Rect)) {
    egui::Frame::popup(ui.style())
        .inner_margin(3.0)
        .show(ui, |ui| {
            ui.vertical(|ui| {
                let (rect, _) = ui.allocate_exact_size(TILE, egui::Sense::hover());
                draw(ui, rect);
                ui.small(name);
            });
        });
}

/// A grey tile with a note, for someone without a picture.
fn placeholder(ui: &mut egui::Ui, rect: egui::Rect, note: &str) {
    ui.painter()
        .rect_filled(rect, 4.0, egui::Color32::from_gray(40));
    ui.painter().text(
        rect.center(),
        egui::Align2::CENTER_CENTER,
        note,
        egui::FontId::proportional(13.0),
        egui::Color32::from_gray(170),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one egui frame of the strip with `events`.
    fn frame(
        ctx: &egui::Context,
        session: &Session,
        textures: &mut VideoTextures,
        events: Vec<egui::Event>,
    ) {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(1280.0, 800.0),
            )),
            events,
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| {
            draw_strip(ui.ctx(), session, textures, -160.0);
        });
        // No renderer here: the font atlas updates are dropped on purpose.
        output.textures_delta.clear();
    }

    fn click(at: egui::Pos2) -> Vec<Vec<egui::Event>> {
        let button = |pressed| egui::Event::PointerButton {
            pos: at,
            button: egui::PointerButton::Primary,
            pressed,
            modifiers: Default::default(),
        };
        vec![
            vec![egui::Event::PointerMoved(at)],
            vec![button(true)],
            vec![button(false)],
            vec![],
        ]
    }

    #[test]
    fn clicking_a_tile_enlarges_it_and_clicking_again_closes_it() {
        let ctx = egui::Context::default();
        let session = Session::default();
        let mut textures = VideoTextures::default();
        textures.feeds.insert(
            Feed::Me,
            VideoTexture {
                image: Handle::default(),
                texture: egui::TextureId::User(7),
                size: UVec2::new(640, 480),
                seq: 1,
            },
        );
        for _ in 0..3 {
            frame(&ctx, &session, &mut textures, vec![]);
        }
        assert_eq!(textures.enlarged, None);
        // The one tile sits centred over the map (x 480), below the bar.
        let tile = egui::pos2(480.0, 36.0 + 3.0 + TILE.y / 2.0);
        for events in click(tile) {
            frame(&ctx, &session, &mut textures, events);
        }
        assert_eq!(textures.enlarged, Some(Feed::Me));
        // Clicking the tile again closes the enlarged view.
        for events in click(tile) {
            frame(&ctx, &session, &mut textures, events);
        }
        assert_eq!(textures.enlarged, None);
        // A click elsewhere enlarges nothing.
        for events in click(egui::pos2(100.0, 600.0)) {
            frame(&ctx, &session, &mut textures, events);
        }
        assert_eq!(textures.enlarged, None);
    }
}
