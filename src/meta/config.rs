//! Reads the configuration rows and settings that nodes and commands act on.

use super::{MetaDb, timed};
use crate::config::{
    ChannelRow, ColumnPairRow, ConfigSnapshot, DataSourceRow, PipelineNodeRow, PipelineRow, Secret,
    TablePairRow,
};
use crate::error::{Error, Result};
use crate::model::{ChannelId, DataSourceId, InstallationId, PipelineId, TablePairId};
use crate::row::take;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

/// Data sources with their passwords from the secrets schema (`{secret}` is its quoted name).
const SELECT_DATA_SOURCES: &str = "SELECT d.id, d.name, d.kind, d.host, d.port, d.user, \
     p.password, CAST(d.tls_mode AS CHAR) AS tls_mode, d.tls_ca_file, d.tls_cert_file, d.tls_key_file \
     FROM data_source d LEFT JOIN {secret}.data_source_password p ON p.data_source_id = d.id";
const SELECT_CHANNELS: &str = "SELECT id, name, mode, desired, primary_source_id, \
     conflict_policy, conflict_column FROM channel ORDER BY id";
const SELECT_PIPELINES: &str = "SELECT id, channel_id, name, source_id, target_id, batch_rows, \
     batch_bytes, batch_timeout_ms, load_parallelism, ddl_sync, skip_ddl_errors, transactional, skip_load_errors, \
     heartbeat_ms, restart_seq, initial_copy, copy_chunk_ms, copy_max_lag_ms, verify_repair, verify_schedule, \
     server_id, start_kind, start_file, start_offset, start_gtid, start_time, reverse \
     FROM pipeline ORDER BY id";
const SELECT_TABLE_PAIRS: &str = "SELECT id, channel_id, source_schema, source_table, \
     target_schema, target_table, conflict_policy, conflict_column FROM table_pair ORDER BY id";
const SELECT_COLUMN_PAIRS: &str = "SELECT id, table_pair_id, mode, source_column, target_column \
     FROM column_pair ORDER BY id";
const SELECT_PIPELINE_NODES: &str =
    "SELECT pipeline_id, node FROM pipeline_node ORDER BY pipeline_id, node";
const SELECT_SETTINGS: &str = "SELECT name, value FROM setting ORDER BY name";
const SELECT_INSTALLATION: &str = "SELECT id FROM installation WHERE singleton = 1";

/// Reads every configuration row, in one consistent read.
pub async fn read_snapshot(meta: &MetaDb) -> Result<ConfigSnapshot> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the configuration";
    timed(context, async {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(|error| Error::database(context, error))?;
        let snapshot = read_rows(meta, &mut conn).await;
        conn.query_drop("COMMIT")
            .await
            .map_err(|error| Error::database(context, error))?;
        snapshot
    })
    .await
}

async fn read_rows(meta: &MetaDb, conn: &mut Conn) -> Result<ConfigSnapshot> {
    Ok(ConfigSnapshot {
        data_sources: select(
            conn,
            &format!(
                "{} ORDER BY d.id",
                meta.with_secret_schema(SELECT_DATA_SOURCES)
            ),
            data_source_row,
        )
        .await?,
        channels: select(conn, SELECT_CHANNELS, |row| {
            Ok(ChannelRow {
                id: ChannelId(take(row, "id", "channel")?),
                name: take(row, "name", "channel")?,
                mode: take(row, "mode", "channel")?,
                desired: take(row, "desired", "channel")?,
                primary_source_id: take::<Option<u32>>(row, "primary_source_id", "channel")?
                    .map(DataSourceId),
                conflict_policy: take(row, "conflict_policy", "channel")?,
                conflict_column: take(row, "conflict_column", "channel")?,
            })
        })
        .await?,
        pipelines: select(conn, SELECT_PIPELINES, pipeline_row).await?,
        table_pairs: select(conn, SELECT_TABLE_PAIRS, |row| {
            let context = "table_pair";
            Ok(TablePairRow {
                id: TablePairId(take(row, "id", context)?),
                channel_id: ChannelId(take(row, "channel_id", context)?),
                source_schema: take(row, "source_schema", context)?,
                source_table: take(row, "source_table", context)?,
                target_schema: take(row, "target_schema", context)?,
                target_table: take(row, "target_table", context)?,
                conflict_policy: take(row, "conflict_policy", context)?,
                conflict_column: take(row, "conflict_column", context)?,
            })
        })
        .await?,
        column_pairs: select(conn, SELECT_COLUMN_PAIRS, |row| {
            let context = "column_pair";
            Ok(ColumnPairRow {
                id: take(row, "id", context)?,
                table_pair_id: TablePairId(take(row, "table_pair_id", context)?),
                mode: take(row, "mode", context)?,
                source_column: take(row, "source_column", context)?,
                target_column: take(row, "target_column", context)?,
            })
        })
        .await?,
        pipeline_nodes: select(conn, SELECT_PIPELINE_NODES, |row| {
            Ok(PipelineNodeRow {
                pipeline_id: PipelineId(take(row, "pipeline_id", "pipeline_node")?),
                node: take(row, "node", "pipeline_node")?,
            })
        })
        .await?,
    })
}

/// Reads the data source named `name`, if there is one.
pub async fn read_data_source(meta: &MetaDb, name: &str) -> Result<Option<DataSourceRow>> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the data source";
    timed(context, async {
        let sql = format!(
            "{} WHERE d.name = ?",
            meta.with_secret_schema(SELECT_DATA_SOURCES)
        );
        let row: Option<Row> = conn
            .exec_first(sql, (name,))
            .await
            .map_err(|error| Error::database(context, error))?;
        row.map(|mut row| data_source_row(&mut row)).transpose()
    })
    .await
}

/// The id of this metadata schema (a UUID written by the first migrate).
pub async fn read_installation(meta: &MetaDb) -> Result<InstallationId> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the installation id";
    timed(context, async {
        let id: Option<String> = conn
            .query_first(SELECT_INSTALLATION)
            .await
            .map_err(|error| Error::database(context, error))?;
        id.map(InstallationId).ok_or_else(|| Error::BadRow {
            context: context.into(),
            problem: "the installation table is empty: run ottr migrate".into(),
        })
    })
    .await
}

/// Reads the settings rows as `(name, value)`.
pub async fn read_settings(meta: &MetaDb) -> Result<Vec<(String, i64)>> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the settings";
    timed(context, async {
        conn.query(SELECT_SETTINGS)
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

async fn select<T>(
    conn: &mut Conn,
    sql: &str,
    convert: impl Fn(&mut Row) -> Result<T>,
) -> Result<Vec<T>> {
    let rows: Vec<Row> = conn
        .query(sql)
        .await
        .map_err(|error| Error::database("cannot read the configuration", error))?;
    rows.into_iter().map(|mut row| convert(&mut row)).collect()
}

fn data_source_row(row: &mut Row) -> Result<DataSourceRow> {
    let context = "data_source";
    Ok(DataSourceRow {
        id: DataSourceId(take(row, "id", context)?),
        name: take(row, "name", context)?,
        kind: take(row, "kind", context)?,
        host: take(row, "host", context)?,
        port: take(row, "port", context)?,
        user: take(row, "user", context)?,
        password: Secret::from_stored(take::<Option<String>>(row, "password", context)?.as_deref()),
        tls_mode: take(row, "tls_mode", context)?,
        tls_ca_file: take(row, "tls_ca_file", context)?,
        tls_cert_file: take(row, "tls_cert_file", context)?,
        tls_key_file: take(row, "tls_key_file", context)?,
    })
}

fn pipeline_row(row: &mut Row) -> Result<PipelineRow> {
    let context = "pipeline";
    Ok(PipelineRow {
        id: PipelineId(take(row, "id", context)?),
        channel_id: ChannelId(take(row, "channel_id", context)?),
        name: take(row, "name", context)?,
        source_id: DataSourceId(take(row, "source_id", context)?),
        target_id: DataSourceId(take(row, "target_id", context)?),
        batch_rows: take(row, "batch_rows", context)?,
        batch_bytes: take(row, "batch_bytes", context)?,
        batch_timeout_ms: take(row, "batch_timeout_ms", context)?,
        load_parallelism: take(row, "load_parallelism", context)?,
        ddl_sync: take(row, "ddl_sync", context)?,
        skip_ddl_errors: take(row, "skip_ddl_errors", context)?,
        transactional: take(row, "transactional", context)?,
        skip_load_errors: take(row, "skip_load_errors", context)?,
        heartbeat_ms: take(row, "heartbeat_ms", context)?,
        restart_seq: take(row, "restart_seq", context)?,
        initial_copy: take(row, "initial_copy", context)?,
        copy_chunk_ms: take(row, "copy_chunk_ms", context)?,
        copy_max_lag_ms: take(row, "copy_max_lag_ms", context)?,
        verify_repair: take(row, "verify_repair", context)?,
        verify_schedule: take(row, "verify_schedule", context)?,
        server_id: take(row, "server_id", context)?,
        start_kind: take(row, "start_kind", context)?,
        start_file: take(row, "start_file", context)?,
        start_offset: take(row, "start_offset", context)?,
        start_gtid: take(row, "start_gtid", context)?,
        start_time: take(row, "start_time", context)?,
        reverse: take(row, "reverse", context)?,
    })
}
