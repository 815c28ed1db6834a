//! The camera: follows your avatar smoothly; the mouse wheel zooms.

use super::avatars::LocalAvatar;
use crate::app::input::UiFocus;
use crate::app::screens::Screen;
use bevy::input::mouse::MouseWheel;
use bevy::prelude::*;

pub const MIN_ZOOM: f32 = 0.35;
pub const MAX_ZOOM: f32 = 2.0;

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, spawn_camera);
    app.add_systems(
        Update,
        (zoom_camera, follow_player)
            .in_set(crate::app::AppSet::Follow)
            .run_if(in_state(Screen::Office)),
    );
}

fn spawn_camera(mut commands: Commands) {
    commands.spawn((
        Camera2d,
        Projection::Orthographic(OrthographicProjection {
            scale: 0.6,
            ..OrthographicProjection::default_2d()
        }),
    ));
}

/// Moves the camera a fraction of the way to the player each frame
/// (frame-rate independent).
fn follow_player(
    time: Res<Time>,
    player: Query<&Transform, (With<LocalAvatar>, Without<Camera2d>)>,
    mut camera: Query<&mut Transform, With<Camera2d>>,
) {
    let (Ok(player), Ok(mut camera)) = (player.single(), camera.single_mut()) else {
        return;
    };
    let target = player.translation.truncate();
    let current = camera.translation.truncate();
    let k = 1.0 - (-8.0 * time.delta_secs()).exp();
    let next = if current.distance(target) > 2000.0 {
        target
    } else {
        current.lerp(target, k)
    };
    camera.translation = next.extend(camera.translation.z);
}

fn zoom_camera(
    mut wheel: MessageReader<MouseWheel>,
    focus: Res<UiFocus>,
    mut camera: Query<&mut Projection, With<Camera2d>>,
) {
    let scroll: f32 = wheel.read().map(|w| w.y).sum();
    if scroll == 0.0 || focus.pointer {
        return;
    }
    let Ok(mut projection) = camera.single_mut() else {
        return;
    };
    if let Projection::Orthographic(ortho) = &mut *projection {
        ortho.scale = (ortho.scale * (1.0 - scroll.signum() * 0.1)).clamp(MIN_ZOOM, MAX_ZOOM);
    }
}
