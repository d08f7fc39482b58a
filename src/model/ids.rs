//! Newtypes for row ids and fencing tokens, so that one cannot be passed for another.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// `pipeline.id` in the metadata schema.
    PipelineId(u32)
);
id_type!(
    /// `channel.id` in the metadata schema.
    ChannelId(u32)
);
id_type!(
    /// `data_source.id` in the metadata schema.
    DataSourceId(u32)
);
id_type!(
    /// `table_pair.id` in the metadata schema.
    TablePairId(u32)
);
id_type!(
    /// A lease's fencing token: it grows at every acquisition and is never reused, so a
    /// write carrying an older token is refused.
    FencingToken(u64)
);
