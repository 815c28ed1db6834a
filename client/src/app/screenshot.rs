//! `--screenshot PATH`: once the office has loaded and rendered, save a
//! screenshot and exit; exit non-zero if that does not happen in time.

use super::args::Args;
use super::bridge::Session;
use super::office::avatars::{Avatar, Glide, LocalAvatar};
use super::office::map::MapSprite;
use super::office::movement::Route;
use super::screens::Screen;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use std::path::PathBuf;

/// Give up after this long.
const TIMEOUT_SECONDS: f64 = 120.0;
/// Frames to render after everything is in place, so it has settled.
const SETTLE_FRAMES: u32 = 30;

#[derive(Resource)]
struct ScreenshotPlan {
    path: PathBuf,
    ready_frames: u32,
    requested: bool,
}

pub(super) fn plugin(app: &mut App) {
    app.add_systems(Startup, plan_screenshot);
    app.add_systems(
        Update,
        take_screenshot.run_if(resource_exists::<ScreenshotPlan>),
    );
}

fn plan_screenshot(mut commands: Commands, args: Res<Args>) {
    if let Some(path) = &args.screenshot {
        commands.insert_resource(ScreenshotPlan {
            path: path.clone(),
            ready_frames: 0,
            requested: false,
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn take_screenshot(
    mut commands: Commands,
    mut plan: ResMut<ScreenshotPlan>,
    time: Res<Time<Real>>,
    screen: Res<State<Screen>>,
    session: Res<Session>,
    map: Query<(), With<MapSprite>>,
    avatars: Query<(), With<Avatar>>,
    player: Query<&Glide, With<LocalAvatar>>,
    route: Res<Route>,
    videos: Res<super::video::VideoTextures>,
    mut exit: MessageWriter<AppExit>,
) {
    if plan.requested {
        return;
    }
    if time.elapsed_secs_f64() > TIMEOUT_SECONDS {
        error!("--screenshot: the office did not load within {TIMEOUT_SECONDS} s");
        exit.write(AppExit::from_code(1));
        return;
    }
    let members = session.client.space.members.len();
    // Not while a scripted walk is still going.
    let settled = route.0.is_empty() && player.single().is_ok_and(|g| !g.is_moving());
    // With the camera on, my picture is shown; peers connected a moment
    // ago have had time to send theirs.
    let video_settled = session.client.call.as_ref().is_none_or(|v| {
        (!v.camera_on() || videos.feeds.contains_key(&super::video::Feed::Me))
            && v.links().values().all(|l| {
                l.connected_at
                    .is_none_or(|t| t.elapsed().as_secs_f64() > 1.5)
            })
    });
    let ready = *screen.get() == Screen::Office
        && !map.is_empty()
        && members > 0
        && avatars.iter().count() == members
        && settled
        && video_settled;
    plan.ready_frames = if ready { plan.ready_frames + 1 } else { 0 };
    if plan.ready_frames < SETTLE_FRAMES {
        return;
    }
    plan.requested = true;
    debug!("taking the screenshot; route {:?}", route.0);
    let path = plan.path.clone();
    commands.spawn(Screenshot::primary_window()).observe(
        move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
            let saved = captured
                .image
                .clone()
                .try_into_dynamic()
                .map_err(|e| e.to_string())
                .and_then(|img| img.to_rgb8().save(&path).map_err(|e| e.to_string()));
            match saved {
                Ok(()) => {
                    info!("screenshot saved to {}", path.display());
                    exit.write(AppExit::Success);
                }
                Err(e) => {
                    error!("cannot save the screenshot to {}: {e}", path.display());
                    exit.write(AppExit::from_code(1));
                }
            }
        },
    );
}
