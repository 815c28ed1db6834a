//! Who has the keyboard and the pointer this frame. The UI writes it (egui
//! knows when a text field or a panel takes them); the office reads it before
//! turning keys into steps or the wheel into zoom. Its own module so that the
//! office and the UI do not import each other.

use bevy::prelude::*;

/// Whether egui wants the keyboard (typing) or the pointer (over a panel).
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct UiFocus {
    pub keyboard: bool,
    pub pointer: bool,
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<UiFocus>();
}
