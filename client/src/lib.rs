//! The Hallway desktop client. For now only the crate exists: the Bevy app, its
//! network core and media arrive with the client issues.

pub use hallway_shared as shared;
