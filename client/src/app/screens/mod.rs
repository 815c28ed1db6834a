//! The screens, as Bevy states: Login → Spaces → Office. Entities spawned for a
//! screen carry `DespawnOnExit(screen)`, so leaving it cleans up.

mod login;
mod spaces;

use bevy::prelude::*;

#[derive(States, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Screen {
    #[default]
    Login,
    Spaces,
    Office,
}

/// The space to enter when the Office screen opens.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entering(pub hallway_shared::SpaceId);

/// The addresses others can use to join a server hosted here.
pub fn join_addresses_public(h: &crate::app::bridge::HostedInfo) -> String {
    login::join_addresses(h)
}

pub(super) fn plugin(app: &mut App) {
    app.init_state::<Screen>();
    app.add_plugins((login::plugin, spaces::plugin));
}
