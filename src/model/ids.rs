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

/// ottr's schema on every data server it reads or writes (see `crate::sys`).
pub const SYSTEM_SCHEMA: &str = "ottr_sys";

/// `installation.id` of a metadata schema: what tells its pipelines' rows apart on data
/// servers and its nodes apart in ZooKeeper, when several installations share them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstallationId(pub String);

impl InstallationId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstallationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pipeline's key in `ottr_sys` on data servers, `installation id/pipeline id`: unique
/// across installations writing to the same server.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PipelineKey(String);

impl PipelineKey {
    pub fn new(installation: &InstallationId, pipeline: PipelineId) -> Self {
        PipelineKey(format!("{installation}/{pipeline}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PipelineKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Bound as a statement parameter (by value or, through `mysql_common`, by reference).
impl From<PipelineKey> for mysql_async::Value {
    fn from(key: PipelineKey) -> Self {
        mysql_async::Value::from(key.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pipeline_key_is_the_installation_and_the_pipeline() {
        let installation = InstallationId("6f1c".into());
        let key = PipelineKey::new(&installation, PipelineId(7));
        assert_eq!(key.as_str(), "6f1c/7");
        assert_eq!(
            mysql_async::Value::from(&key),
            mysql_async::Value::from("6f1c/7")
        );
    }
}
