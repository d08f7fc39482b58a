//! The one fixture every integration test builds its installation from: a fresh metadata
//! schema with the timings the test asks for, its data sources, replica server ids of its
//! own for its pipelines, `ottr node` processes, and waiting for a pipeline to run.

use super::{MariaDb, NodeProcess, conn_to, fresh_meta, server_id_base, temp_dir};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::path::PathBuf;
use std::time::Duration;

/// Lease 3 s, heartbeat and poll 200 ms: what most tests run with.
pub const SHORT: &[(&str, u32)] = &[("lease_ms", 3000), ("heartbeat_ms", 200), ("poll_ms", 200)];

/// A metadata schema and what a test does with it.
pub struct Installation {
    /// A connection to the metadata schema.
    pub meta: Conn,
    /// Its URL, as `ottr node --meta` takes it.
    pub url: String,
    /// Where this test's node logs go.
    pub dir: PathBuf,
    /// The metadata schema's name.
    pub schema: String,
}

impl Installation {
    /// A fresh metadata schema `schema` on `server`, with each of `settings` set.
    pub async fn new(server: &MariaDb, schema: &str, settings: &[(&str, u32)]) -> Installation {
        let url = fresh_meta(server, schema).await;
        let mut meta = conn_to(server, schema).await;
        for (name, value) in settings {
            meta.exec_drop("CALL set_setting(?, ?)", (name, value))
                .await
                .unwrap_or_else(|error| panic!("set_setting({name}, {value}): {error}"));
        }
        Installation {
            meta,
            url,
            dir: temp_dir(schema),
            schema: schema.to_owned(),
        }
    }

    /// Adds data source `name` (kind mariadb) on `server`, read as `user`.
    pub async fn data_source(&mut self, name: &str, server: &MariaDb, user: &str) {
        self.meta
            .exec_drop(
                "CALL add_data_source(?, 'mariadb', ?, NULL)",
                (name, server.source_url(user)),
            )
            .await
            .unwrap_or_else(|error| panic!("add_data_source({name}): {error}"));
    }

    /// Gives every pipeline of this installation a replica server id of its own: tests share
    /// their source servers, and two readers with one id would push each other out.
    pub async fn own_server_ids(&mut self) {
        self.meta
            .exec_drop(
                "UPDATE pipeline SET server_id = ? + id",
                (server_id_base(&self.schema),),
            )
            .await
            .unwrap();
    }

    /// Creates and starts a one-way channel `name` from data source `source` to `target`
    /// with the pairs (source schema, table, target schema, target table), a batch timeout,
    /// and `extra` SQL run before the start.
    pub async fn start_one_way(
        &mut self,
        name: &str,
        (source, target): (&str, &str),
        pairs: &[(&str, &str, Option<&str>, Option<&str>)],
        batch_timeout_ms: u32,
        extra: &str,
    ) {
        let conn = &mut self.meta;
        conn.exec_drop("CALL create_channel(?, ?, ?)", (name, source, target))
            .await
            .unwrap();
        for (source_schema, table, target_schema, target_table) in pairs {
            conn.exec_drop(
                "CALL add_table_pair(?, ?, ?, ?, ?)",
                (name, source_schema, table, target_schema, target_table),
            )
            .await
            .unwrap();
        }
        conn.exec_drop(
            "CALL set_pipeline_option(?, 'batch_timeout_ms', ?)",
            (name, batch_timeout_ms.to_string()),
        )
        .await
        .unwrap();
        self.own_server_ids().await;
        if !extra.is_empty() {
            self.meta.query_drop(extra).await.unwrap();
        }
        self.meta
            .exec_drop("CALL start_channel(?)", (name,))
            .await
            .unwrap();
    }

    /// `ottr node --name NAME` on this installation.
    pub fn node(&self, name: &str) -> NodeProcess {
        NodeProcess::spawn(&self.url, name, &self.dir, &[])
    }

    /// Like [`Installation::node`], with extra environment variables.
    pub fn node_with(&self, name: &str, env: &[(&str, &str)]) -> NodeProcess {
        NodeProcess::spawn(&self.url, name, &self.dir, env)
    }

    /// The observed state and reason of `pipeline` (any pipeline, when None).
    pub async fn pipeline_state(
        &mut self,
        pipeline: Option<&str>,
    ) -> Option<(String, Option<String>)> {
        match pipeline {
            None => self
                .meta
                .query_first("SELECT observed, reason FROM v_pipeline_status")
                .await
                .unwrap(),
            Some(name) => self
                .meta
                .exec_first(
                    "SELECT observed, reason FROM v_pipeline_status WHERE pipeline = ?",
                    (name,),
                )
                .await
                .unwrap(),
        }
    }

    /// Waits until `pipeline` (the only one, when None) runs and applies changes; panics with
    /// its reason as soon as it is in `error`.
    pub async fn wait_running(&mut self, pipeline: Option<&str>, limit: Duration) {
        crate::eventually!(
            limit,
            "the pipeline to run (see its reason in v_pipeline_status)",
            {
                let row = self.pipeline_state(pipeline).await;
                if let Some((observed, reason)) = &row
                    && observed == "error"
                {
                    panic!("the pipeline failed: {reason:?}");
                }
                row.filter(|(observed, reason)| {
                    observed == "running"
                        && reason.as_deref().unwrap_or_default().contains("applying")
                })
            }
        );
    }
}

/// Lets a test's own fixture type wrap an [`Installation`] and be used as one:
/// `installation_wrapper!(Setup)` for `struct Setup(Installation)`,
/// `installation_wrapper!(Channel.installation)` for a named field.
#[macro_export]
macro_rules! installation_wrapper {
    ($wrapper:ident) => {
        $crate::installation_wrapper!($wrapper.0);
    };
    ($wrapper:ident . $field:tt) => {
        impl std::ops::Deref for $wrapper {
            type Target = $crate::common::Installation;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }

        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.$field
            }
        }
    };
}
