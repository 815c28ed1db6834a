//! `hallway`: the desktop app. Parses flags, builds the Bevy app from plugins.

use bevy::prelude::*;
use bevy::window::WindowResolution;
use clap::Parser;
use hallway_client::app::{self, args::Args};

fn main() -> AppExit {
    let args = Args::parse();
    if let Some(walk) = &args.walk
        && let Err(e) = hallway_client::core::walk::parse_route(walk)
    {
        eprintln!("--walk: {e}");
        return AppExit::from_code(2);
    }
    if let Some(mic) = &args.fake_mic
        && let Err(e) = hallway_client::media::MicSpec::parse_fake(mic)
    {
        eprintln!("--fake-mic: {e}");
        return AppExit::from_code(2);
    }
    if let Some(out) = &args.audio_out
        && let Err(e) = hallway_client::media::SpeakerSpec::parse(out)
    {
        eprintln!("--audio-out: {e}");
        return AppExit::from_code(2);
    }
    if let Some(room) = &args.fake_room
        && let Err(e) = hallway_client::media::room::RoomSpec::parse(room)
    {
        eprintln!("--fake-room: {e}");
        return AppExit::from_code(2);
    }
    if let Some(camera) = &args.fake_camera
        && let Err(e) = hallway_client::media::video::camera::CameraSpec::parse_fake(camera)
    {
        eprintln!("--fake-camera: {e}");
        return AppExit::from_code(2);
    }
    App::new()
        .insert_resource(ClearColor(Color::srgb(0.16, 0.15, 0.19)))
        .insert_resource(args)
        .add_plugins(DefaultPlugins.set(WindowPlugin {
            primary_window: Some(Window {
                title: "Hallway".into(),
                resolution: WindowResolution::new(1280, 800),
                ..default()
            }),
            ..default()
        }))
        .add_plugins(bevy_egui::EguiPlugin::default())
        .add_plugins(app::plugin)
        .run()
}
