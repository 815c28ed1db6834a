//! Hallway's wire protocol and the rules that client and server must agree on:
//! ids, the map model, proximity (who connects to whom) and the distance → gain curve.
//! No async runtime, no engine: serde and plain functions only.

pub mod ids;
pub mod map;
pub mod protocol;
pub mod proximity;
pub mod volume;

pub use ids::{ChannelId, MessageId, SpaceId, UserId, ZoneId};
pub use map::{Facing, MapModel, TilePos};
