//! Identifier newtypes. All ids are positive integers assigned by the server and
//! travel as JSON numbers.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A user (guest or registered account).
    UserId(i64)
);
id_type!(
    /// A space: one map with its own members, channels and proximity graph.
    SpaceId(i64)
);
id_type!(
    /// A chat channel: a space's channel or a direct-message channel.
    ChannelId(i64)
);
id_type!(
    /// A stored chat message; ids grow with time within the whole server.
    MessageId(i64)
);
id_type!(
    /// A zone of a map (index into [`crate::MapModel::zones`]).
    ZoneId(u32)
);
