//! Node rows: registration, heartbeats, clean stops, and which nodes are alive.
//!
//! A node is alive while its heartbeat is younger than the lease length (by the metadata
//! database's clock) and it has not stopped cleanly. Each node writes only its own row.

use super::leases::truncate;
use super::{MetaDb, timed};
use crate::error::{Error, Result};
use crate::row::take;
use mysql_async::Row;
use mysql_async::prelude::Queryable;
use std::time::Duration;

const SELECT_NODE: &str = "SELECT host, pid, instance, last_heartbeat, \
     (stopped_at IS NULL AND last_heartbeat > NOW(6) - INTERVAL ? MICROSECOND) AS fresh \
     FROM node WHERE name = ?";
const UPSERT_NODE: &str = "INSERT INTO node \
     (name, host, pid, version, instance, coordination, started_at, last_heartbeat, stopped_at) \
     VALUES (?, ?, ?, ?, ?, ?, NOW(6), NOW(6), NULL) \
     ON DUPLICATE KEY UPDATE host = VALUES(host), pid = VALUES(pid), version = VALUES(version), \
     instance = VALUES(instance), coordination = VALUES(coordination), started_at = NOW(6), \
     last_heartbeat = NOW(6), stopped_at = NULL";
const HEARTBEAT: &str =
    "UPDATE node SET last_heartbeat = NOW(6), coordination = ? WHERE name = ? AND instance = ?";
const NODE_EXISTS: &str = "SELECT COUNT(*) FROM node WHERE name = ?";
const MARK_STOPPED: &str = "UPDATE node SET stopped_at = NOW(6) WHERE name = ? AND instance = ?";
const NODES: &str = "SELECT name, last_heartbeat > NOW(6) - INTERVAL ? MICROSECOND, drain, \
     coordination LIKE 'zookeeper%', coordination IN ('leases', 'zookeeper') \
     FROM node WHERE stopped_at IS NULL ORDER BY name";

/// Who this node process is.
#[derive(Debug, Clone)]
pub struct NodeRegistration {
    /// `--name`, unique among live nodes.
    pub name: String,
    pub host: String,
    pub pid: u32,
    pub version: String,
    /// Random per process start: tells this process from an earlier one with the same name.
    pub instance: u64,
}

struct NodeRow {
    host: String,
    pid: u32,
    instance: u64,
    last_heartbeat: chrono::NaiveDateTime,
    fresh: bool,
}

async fn read_node(meta: &MetaDb, name: &str, lease: Duration) -> Result<Option<NodeRow>> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the node row";
    timed(context, async {
        let row: Option<Row> = conn
            .exec_first(SELECT_NODE, (lease.as_micros() as u64, name))
            .await
            .map_err(|error| Error::database(context, error))?;
        row.map(|mut row| {
            Ok(NodeRow {
                host: take(&mut row, "host", context)?,
                pid: take(&mut row, "pid", context)?,
                instance: take(&mut row, "instance", context)?,
                last_heartbeat: take(&mut row, "last_heartbeat", context)?,
                fresh: take::<Option<bool>>(&mut row, "fresh", context)?.unwrap_or(false),
            })
        })
        .transpose()
    })
    .await
}

/// Registers this node; `coordination` says how it coordinates (shown in `v_node_status`).
/// If a node of the same name looks alive, waits two heartbeats: if its
/// heartbeat moves, another process runs under this name and registration is refused; if it
/// does not, that process is dead (a restart after a crash) and this one takes its place.
pub async fn register_node(
    meta: &MetaDb,
    node: &NodeRegistration,
    coordination: &str,
    lease: Duration,
    heartbeat: Duration,
) -> Result<()> {
    if let Some(existing) = read_node(meta, &node.name, lease).await?
        && existing.fresh
        && existing.instance != node.instance
    {
        tokio::time::sleep(heartbeat * 2 + Duration::from_millis(100)).await;
        if let Some(again) = read_node(meta, &node.name, lease).await?
            && again.fresh
            && (again.last_heartbeat != existing.last_heartbeat
                || again.instance != existing.instance)
        {
            return Err(Error::NodeNameTaken {
                name: node.name.clone(),
                host: again.host,
                pid: again.pid,
            });
        }
    }
    let mut conn = meta.conn().await?;
    let context = "cannot register the node";
    timed(context, async {
        upsert(&mut conn, node, coordination)
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

/// Writes this process's node row (a new one, or over a dead earlier process's).
async fn upsert(
    conn: &mut mysql_async::Conn,
    node: &NodeRegistration,
    coordination: &str,
) -> mysql_async::Result<()> {
    let params = (
        &node.name,
        &node.host,
        node.pid,
        &node.version,
        node.instance,
        truncate(coordination, 255),
    );
    conn.exec_drop(UPSERT_NODE, params).await
}

/// Records a heartbeat and how the node coordinates now. Err([`Error::NodeReplaced`]) if
/// another process took over the name; a node row deleted by hand is written again.
pub async fn heartbeat(meta: &MetaDb, node: &NodeRegistration, coordination: &str) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot record a heartbeat";
    timed(context, async {
        let fail = |error| Error::database(context, error);
        let coordination = truncate(coordination, 255);
        conn.exec_drop(HEARTBEAT, (&coordination, &node.name, node.instance))
            .await
            .map_err(fail)?;
        if conn.affected_rows() > 0 {
            return Ok(());
        }
        let rows: Option<u64> = conn
            .exec_first(NODE_EXISTS, (&node.name,))
            .await
            .map_err(fail)?;
        if rows.unwrap_or(0) > 0 {
            return Err(Error::NodeReplaced {
                name: node.name.clone(),
            });
        }
        upsert(&mut conn, node, &coordination).await.map_err(fail)
    })
    .await
}

/// Marks a clean stop, so that the node shows as not alive at once.
pub async fn mark_stopped(meta: &MetaDb, node: &NodeRegistration) -> Result<()> {
    let mut conn = meta.conn().await?;
    let context = "cannot record the node's stop";
    timed(context, async {
        conn.exec_drop(MARK_STOPPED, (&node.name, node.instance))
            .await
            .map_err(|error| Error::database(context, error))
    })
    .await
}

/// A node that has not stopped cleanly, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    /// Its heartbeat is younger than the lease.
    pub alive: bool,
    /// The operator drained it (`drain_node`).
    pub drained: bool,
    /// It coordinates through ZooKeeper (`--zk`), rather than by leases alone.
    pub zookeeper: bool,
    /// It claims pipelines now (not while it cannot reach ZooKeeper).
    pub claiming: bool,
}

/// Every node that has not stopped cleanly, by name; `alive` by heartbeats within `lease`.
pub async fn node_states(meta: &MetaDb, lease: Duration) -> Result<Vec<NodeState>> {
    let mut conn = meta.conn().await?;
    let context = "cannot read the nodes";
    timed(context, async {
        let rows: Vec<(String, Option<bool>, bool, bool, bool)> = conn
            .exec(NODES, (lease.as_micros() as u64,))
            .await
            .map_err(|error| Error::database(context, error))?;
        Ok(rows
            .into_iter()
            .map(|(name, alive, drained, zookeeper, claiming)| NodeState {
                name,
                alive: alive.unwrap_or(false),
                drained,
                zookeeper,
                claiming,
            })
            .collect())
    })
    .await
}
