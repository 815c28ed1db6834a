//! Command-line flags, for people and for scripted runs.

use bevy::prelude::Resource;
use clap::Parser;
use std::path::PathBuf;

/// Hallway: a virtual office. Walk up to people to talk.
#[derive(Parser, Debug, Clone, Default, Resource)]
#[command(name = "hallway", version)]
pub struct Args {
    /// Server address (e.g. 192.168.1.20:8080); without it, the one last used,
    /// or a server on this computer.
    #[arg(long, env = "HALLWAY_SERVER")]
    pub server: Option<String>,
    /// Join as a guest with this name, skipping the login screen.
    #[arg(long)]
    pub guest: Option<String>,
    /// Enter this space (name or id) right away.
    #[arg(long)]
    pub space: Option<String>,
    /// Once the office has loaded and rendered, save a screenshot here and exit
    /// (non-zero if that was not possible).
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Walk this path after entering, e.g. "5,9 10,9" (for scripted runs).
    #[arg(long)]
    pub walk: Option<String>,
    /// A fake microphone instead of the real one: tone:HZ, clicks:MS or wav:PATH.
    #[arg(long)]
    pub fake_mic: Option<String>,
    /// Where voices play instead of the speaker: wav:PATH (stereo, 48 kHz,
    /// written in real time) or none.
    #[arg(long)]
    pub audio_out: Option<String>,
    /// A fake camera instead of the real one: pattern (a moving test pattern
    /// with its frame number and capture time drawn in). Turns the camera on.
    #[arg(long)]
    pub fake_camera: Option<String>,
    /// A fake room: the microphone also hears the speaker, delay=MS,gain=G
    /// (e.g. delay=80,gain=0.5), as on a laptop without headphones.
    #[arg(long)]
    pub fake_room: Option<String>,
}
