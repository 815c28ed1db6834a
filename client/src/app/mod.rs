//! The Bevy layer: screens (login → spaces → office), the office view, the
//! side panel, and the bridge to the Bevy-free core. `main.rs` only lists plugins.

pub mod args;
pub mod bridge;
pub mod host;
pub mod input;
pub mod office;
pub mod screens;
pub mod screenshot;
pub mod ui;
pub mod video;

use bevy::prelude::*;

/// The order of the Update systems that depend on each other, in one place.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppSet {
    /// Drain the network: server messages into state and Bevy messages.
    Receive,
    /// Read input into intents.
    Input,
    /// Apply intents and server state to entities.
    Apply,
    /// Move the camera and other followers.
    Follow,
}

pub fn plugin(app: &mut App) {
    app.configure_sets(
        Update,
        (
            AppSet::Receive,
            AppSet::Input,
            AppSet::Apply,
            AppSet::Follow,
        )
            .chain(),
    );
    app.add_plugins((
        bridge::plugin,
        input::plugin,
        screens::plugin,
        office::plugin,
        ui::plugin,
        screenshot::plugin,
        video::plugin,
    ));
}
