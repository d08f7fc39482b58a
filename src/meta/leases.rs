//! Leases with fencing tokens, and the writes they guard: positions, observed state, runs.
//!
//! A lease row per pipeline names its holder and carries a fencing token that grows at every
//! acquisition. Expiry is judged by the metadata database's `NOW(6)`, never a node's clock.
//! Every position and state write is one statement that reads the lease row and succeeds only
//! while the writer's token is current and the lease unexpired, so a node that lost its lease
//! cannot write. An expired lease cannot be renewed, only claimed again with a new token.
//! Claims and writes are single statements: no lock on a lease row lives across round trips,
//! so a node frozen or cut off halfway cannot hold up the next holder.

use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::model::{BinlogFilePos, FencingToken, GtidState, PipelineId, PipelineState, Position};
use crate::row::take;
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const ENSURE_LEASE_ROWS: &str = "INSERT IGNORE INTO pipeline_lease (pipeline_id) \
     SELECT p.id FROM pipeline p LEFT JOIN pipeline_lease l ON l.pipeline_id = p.id \
     WHERE l.pipeline_id IS NULL";
const SELECT_LEASES: &str = "SELECT pipeline_id, holder, token, \
     (holder IS NOT NULL AND expires_at > NOW(6)) AS live FROM pipeline_lease ORDER BY pipeline_id";
// One statement, so that no lock outlives it: a node frozen (SIGSTOP) or cut off in the
// middle of a claim must not hold the lease row until the server notices. The lease is free,
// expired, or held under this node's own name by an earlier process whose task has stopped
// by its own deadline (less than a quarter of the lease left); the node row must still name
// this process. The new token comes back as LAST_INSERT_ID.
const CLAIM_LEASE: &str = "UPDATE pipeline_lease l JOIN node n ON n.name = ? AND n.instance = ? \
     SET l.holder = n.name, l.token = LAST_INSERT_ID(l.token + 1), l.acquired_at = NOW(6), \
     l.expires_at = NOW(6) + INTERVAL ? MICROSECOND \
     WHERE l.pipeline_id = ? AND (l.holder IS NULL OR l.expires_at IS NULL OR l.expires_at <= NOW(6) \
     OR (l.holder = n.name AND l.expires_at <= NOW(6) + INTERVAL ? MICROSECOND))";
// Elected by ZooKeeper: as CLAIM_LEASE, or over the lease exactly as it was read (holder and
// token) when that holder's ZooKeeper session has ended, live or not by the lease's clock.
// The new token is at least the winning lock's czxid (ZooKeeper's own increasing id).
const CLAIM_ELECTED: &str = "UPDATE pipeline_lease l JOIN node n ON n.name = ? AND n.instance = ? \
     SET l.holder = n.name, l.token = LAST_INSERT_ID(GREATEST(l.token + 1, ?)), \
     l.acquired_at = NOW(6), l.expires_at = NOW(6) + INTERVAL ? MICROSECOND \
     WHERE l.pipeline_id = ? AND (l.holder IS NULL OR l.expires_at IS NULL OR l.expires_at <= NOW(6) \
     OR (l.holder <=> ? AND l.token = ?))";
const OWN_INSTANCE: &str = "SELECT instance = ? FROM node WHERE name = ?";
// A lease that has expired cannot be renewed, only claimed again (with a new token).
const RENEW_LEASE: &str = "UPDATE pipeline_lease SET expires_at = NOW(6) + INTERVAL ? MICROSECOND \
     WHERE pipeline_id = ? AND holder = ? AND token = ? AND expires_at > NOW(6)";
const RELEASE_LEASE: &str = "UPDATE pipeline_lease SET holder = NULL, expires_at = NOW(6) \
     WHERE pipeline_id = ? AND token = ? AND holder IS NOT NULL";
// The holder's lease, still current, takes a token a data server has seen and is handed back.
const RAISE_TOKEN: &str = "UPDATE pipeline_lease SET token = GREATEST(token, ?), holder = NULL, \
     expires_at = NOW(6) WHERE pipeline_id = ? AND holder = ? AND token = ? AND expires_at > NOW(6)";
const WRITE_POSITION: &str = "INSERT INTO pipeline_position \
     (pipeline_id, binlog_file, binlog_offset, gtid, trx_rows_done, token) \
     SELECT l.pipeline_id, ?, ?, ?, ?, l.token FROM pipeline_lease l \
     WHERE l.pipeline_id = ? AND l.token = ? AND l.holder IS NOT NULL AND l.expires_at > NOW(6) \
     ON DUPLICATE KEY UPDATE binlog_file = VALUES(binlog_file), binlog_offset = VALUES(binlog_offset), \
     gtid = VALUES(gtid), trx_rows_done = VALUES(trx_rows_done), token = VALUES(token)";
const READ_POSITION: &str = "SELECT binlog_file, binlog_offset, gtid, trx_rows_done \
     FROM pipeline_position WHERE pipeline_id = ?";
// `since` is assigned first: MySQL evaluates the assignments left to right.
const RECORD_CONNECTION: &str = "INSERT INTO data_source_connection \
     (pipeline_id, role, data_source_id, node, token, tls_version, tls_cipher) VALUES (?, ?, ?, ?, ?, ?, ?) \
     ON DUPLICATE KEY UPDATE data_source_id = VALUES(data_source_id), node = VALUES(node), \
     token = VALUES(token), tls_version = VALUES(tls_version), tls_cipher = VALUES(tls_cipher), \
     connected_at = NOW(6)";
const WRITE_STATE: &str = "INSERT INTO pipeline_state (pipeline_id, state, reason, node, token, since) \
     SELECT l.pipeline_id, ?, ?, l.holder, l.token, NOW(6) FROM pipeline_lease l \
     WHERE l.pipeline_id = ? AND l.token = ? AND l.holder IS NOT NULL AND l.expires_at > NOW(6) \
     ON DUPLICATE KEY UPDATE since = IF(state = VALUES(state), since, VALUES(since)), \
     state = VALUES(state), reason = VALUES(reason), node = VALUES(node), token = VALUES(token)";
const START_RUN: &str = "INSERT INTO pipeline_run (pipeline_id, node, token) VALUES (?, ?, ?)";
const STOP_RUN: &str = "UPDATE pipeline_run SET stopped_at = NOW(6), stop_reason = ? \
     WHERE id = ? AND stopped_at IS NULL";

/// A lease row as read at one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub pipeline: PipelineId,
    /// The node named as holder, live or not.
    pub holder: Option<String>,
    pub token: FencingToken,
    /// Whether the holder's lease has not expired, by the metadata database's clock.
    pub live: bool,
}

/// A `pipeline_run` row: one stretch of time during which one node ran one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunId(pub u64);

fn micros(duration: Duration) -> u64 {
    duration.as_micros() as u64
}

/// Creates the missing lease rows (for pipelines inserted by hand).
pub async fn ensure_lease_rows(meta: &MetaDb) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot create lease rows";
    timed(context, async {
        conn.query_drop(ENSURE_LEASE_ROWS)
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

/// Reads every lease.
pub async fn read_leases(meta: &MetaDb) -> Result<Vec<Lease>> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the leases";
    timed(context, async {
        let rows: Vec<Row> = conn
            .query(SELECT_LEASES)
            .await
            .map_err(|error| Error::database(context, error))?;
        rows.into_iter()
            .map(|mut row| {
                Ok(Lease {
                    pipeline: PipelineId(take(&mut row, "pipeline_id", context)?),
                    holder: take(&mut row, "holder", context)?,
                    token: FencingToken(take(&mut row, "token", context)?),
                    live: take::<Option<bool>>(&mut row, "live", context)?.unwrap_or(false),
                })
            })
            .collect()
    })
    .await
}

/// What entitles a node to claim a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Leases alone: the lease is free or expired, or held under this node's own name by an
    /// earlier process whose task has stopped by its deadline (less than a quarter left).
    Lease,
    /// ZooKeeper elected this node: it may also take the lease over exactly as it was read
    /// (`holder`, `token`), because that holder's session has ended. The new token is at
    /// least `czxid`, the creation id of the winning lock node.
    Elected {
        czxid: u64,
        holder: Option<String>,
        token: FencingToken,
    },
}

/// Takes the lease of `pipeline` for `node` as `claim` allows. Fails with
/// [`Error::NodeReplaced`] when another process registered under this name meanwhile.
/// Returns the new fencing token, or None when the lease was not to be had.
pub async fn claim_lease(
    meta: &MetaDb,
    pipeline: PipelineId,
    node: &super::NodeRegistration,
    length: Duration,
    claim: &Claim,
) -> Result<Option<FencingToken>> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot claim the lease of pipeline {pipeline}");
    timed(&context, async {
        let fail = |error| Error::database(context.clone(), error);
        match claim {
            Claim::Lease => {
                let params = (
                    &node.name,
                    node.instance,
                    micros(length),
                    pipeline.0,
                    micros(length / 4),
                );
                conn.exec_drop(CLAIM_LEASE, params).await.map_err(fail)?
            }
            Claim::Elected {
                czxid,
                holder,
                token,
            } => {
                let params = (
                    &node.name,
                    node.instance,
                    czxid,
                    micros(length),
                    pipeline.0,
                    holder,
                    token.0,
                );
                conn.exec_drop(CLAIM_ELECTED, params).await.map_err(fail)?
            }
        }
        if conn.affected_rows() > 0 {
            let token = conn.last_insert_id().ok_or_else(|| Error::BadRow {
                context: context.clone(),
                problem: "the claim returned no token".into(),
            })?;
            return Ok(Some(FencingToken(token)));
        }
        let ours: Option<Option<bool>> = conn
            .exec_first(OWN_INSTANCE, (node.instance, &node.name))
            .await
            .map_err(fail)?;
        if ours.flatten() != Some(true) {
            return Err(Error::NodeReplaced {
                name: node.name.clone(),
            });
        }
        Ok(None)
    })
    .await
}

/// Extends a held lease. Err([`Error::Fenced`]) when the lease is no longer this holder's.
pub async fn renew_lease(
    meta: &MetaDb,
    pipeline: PipelineId,
    node: &str,
    token: FencingToken,
    length: Duration,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot renew the lease of pipeline {pipeline}");
    timed(&context, async {
        conn.exec_drop(RENEW_LEASE, (micros(length), pipeline.0, node, token.0))
            .await
            .map_err(|error| Error::database(context.clone(), error))?;
        if conn.affected_rows() == 0 {
            return Err(Error::Fenced { pipeline, token });
        }
        Ok(())
    })
    .await
}

/// Gives a lease back at once, so that another node can take the pipeline without waiting
/// for expiry. Releasing a lease that was already lost is not an error.
pub async fn release_lease(meta: &MetaDb, pipeline: PipelineId, token: FencingToken) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot release the lease of pipeline {pipeline}");
    timed(&context, async {
        conn.exec_drop(RELEASE_LEASE, (pipeline.0, token.0))
            .await
            .map_err(|error| Error::database(context.clone(), error))
    })
    .await
}

/// Raises a lease this holder still holds under `token` to `newest` (a token a data server
/// holds for the pipeline) and hands it back, so that the next claim takes `newest + 1`.
/// Returns whether it did (false: the lease was no longer this holder's).
pub async fn raise_lease_token(
    meta: &MetaDb,
    pipeline: PipelineId,
    node: &str,
    token: FencingToken,
    newest: FencingToken,
) -> Result<bool> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot raise the fencing token of pipeline {pipeline}");
    timed(&context, async {
        conn.exec_drop(RAISE_TOKEN, (newest.0, pipeline.0, node, token.0))
            .await
            .map_err(|error| Error::database(context.clone(), error))?;
        Ok(conn.affected_rows() == 1)
    })
    .await
}

/// Runs `sql`, a single statement that writes only while `token` is the lease's current
/// token and the lease is unexpired (its own WHERE clause reads the lease row, which locks it
/// for the statement's length); Err([`Error::Fenced`]) when it wrote nothing. A single
/// statement holds no lock between round trips, so a writer frozen halfway never blocks the
/// next holder's claim.
async fn fenced_write(
    meta: &MetaDb,
    pipeline: PipelineId,
    token: FencingToken,
    context: &str,
    sql: &str,
    params: mysql_async::Params,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    timed(context, async {
        conn.exec_drop(sql, params)
            .await
            .map_err(|error| Error::database(context, error))?;
        if conn.affected_rows() == 0 {
            return Err(Error::Fenced { pipeline, token });
        }
        Ok(())
    })
    .await
}

/// Saves the position of a pipeline, if `token` is still the lease's current token and the
/// lease has not expired.
pub async fn write_position(
    meta: &MetaDb,
    pipeline: PipelineId,
    token: FencingToken,
    position: &Position,
) -> Result<()> {
    let file = position.file.as_ref();
    let params = (
        file.map(|file| file.file.clone()),
        file.map(|file| file.offset),
        position.gtid.as_ref().map(ToString::to_string),
        position.trx_rows_done,
        pipeline.0,
        token.0,
    );
    let context = format!("cannot save the position of pipeline {pipeline}");
    fenced_write(
        meta,
        pipeline,
        token,
        &context,
        WRITE_POSITION,
        params.into(),
    )
    .await
}

/// `binlog_file, binlog_offset, gtid, trx_rows_done` of a `pipeline_position` row.
type PositionColumns = (Option<String>, Option<u64>, Option<String>, u64);

/// Reads the saved position of a pipeline; None until its start position was resolved.
pub async fn read_position(meta: &MetaDb, pipeline: PipelineId) -> Result<Option<Position>> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot read the position of pipeline {pipeline}");
    timed(&context, async {
        let row: Option<PositionColumns> = conn
            .exec_first(READ_POSITION, (pipeline.0,))
            .await
            .map_err(|error| Error::database(context.clone(), error))?;
        let Some((file, offset, gtid, trx_rows_done)) = row else {
            return Ok(None);
        };
        let gtid = gtid
            .map(|text| text.parse::<GtidState>())
            .transpose()
            .map_err(|error| Error::BadRow {
                context: context.clone(),
                problem: error.to_string(),
            })?;
        let file = file
            .zip(offset)
            .map(|(file, offset)| BinlogFilePos { file, offset });
        Ok(Some(Position {
            file,
            gtid,
            trx_rows_done,
        }))
    })
    .await
}

/// Records the observed state of a pipeline, if `token` is still current.
pub async fn write_state(
    meta: &MetaDb,
    pipeline: PipelineId,
    token: FencingToken,
    state: PipelineState,
    reason: Option<&str>,
) -> Result<()> {
    let reason = reason.map(|text| truncate(text, 1024));
    let context = format!("cannot record the state of pipeline {pipeline}");
    let params = (state.as_str(), reason, pipeline.0, token.0);
    fenced_write(meta, pipeline, token, &context, WRITE_STATE, params.into()).await
}

/// Records how `pipeline`'s connection in `role` (`source` or `target`) to data source
/// `data_source` is encrypted (`tls`: version and cipher; None: plain), as `node` found it
/// under lease `token`.
pub async fn record_connection(
    meta: &MetaDb,
    pipeline: PipelineId,
    role: &str,
    data_source: crate::model::DataSourceId,
    node: &str,
    token: FencingToken,
    tls: Option<(String, String)>,
) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot record the connections of pipeline {pipeline}");
    let (version, cipher) = tls.unzip();
    timed(&context, async {
        conn.exec_drop(
            RECORD_CONNECTION,
            (
                pipeline.0,
                role,
                data_source.0,
                node,
                token.0,
                version,
                cipher,
            ),
        )
        .await
        .map_err(|error| Error::database(context.clone(), error))
    })
    .await
}

/// Records that `node` starts running `pipeline` now (by the database's clock).
pub async fn start_run(
    meta: &MetaDb,
    pipeline: PipelineId,
    node: &str,
    token: FencingToken,
) -> Result<RunId> {
    let mut conn = meta.conn().await?;
    let context = format!("cannot record a run of pipeline {pipeline}");
    timed(&context, async {
        conn.exec_drop(START_RUN, (pipeline.0, node, token.0))
            .await
            .map_err(|error| Error::database(context.clone(), error))?;
        Ok(RunId(conn.last_insert_id().unwrap_or_default()))
    })
    .await
}

/// Records that a run ended now, and why.
pub async fn stop_run(meta: &MetaDb, run: RunId, reason: &str) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot record the end of a pipeline run";
    timed(context, async {
        conn.exec_drop(STOP_RUN, (truncate(reason, 255), run.0))
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

/// `text` cut to at most `limit` characters.
pub(crate) fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((index, _)) => text[..index].to_owned(),
        None => text.to_owned(),
    }
}
