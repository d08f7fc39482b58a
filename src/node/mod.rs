//! `ottr node`: a worker process. It registers, heartbeats, reads the configuration every
//! poll, claims runnable pipelines through leases, runs each in a [`PipelineTask`], and on
//! shutdown stops its pipelines and releases their leases so another node takes them at once.
//! Who is alive and who may claim is the [`Coordinator`]'s to say: the lease clocks alone, or
//! with `--zk` ZooKeeper (see [`crate::coord`]); the leases and their fencing tokens stay in
//! the metadata database either way.
//!
//! Invariants:
//! - a pipeline task runs only while this node holds the pipeline's lease. Each task has a
//!   deadline (the time its last successful renewal was sent, plus three quarters of the
//!   lease) and stops itself when it passes, whatever the node loop is doing; an expired
//!   lease cannot be renewed, only claimed again with a new fencing token;
//! - a task also runs only while the coordinator confirms the session its pipeline was
//!   claimed in; while the coordinator cannot say who is alive the node claims nothing;
//! - an invalid configuration row is that pipeline's error, never the node's;
//! - invalid settings are reported and the previous (or default) values kept.
//!
//! One loop owns all state; pipeline tasks only report through the metadata database. This
//! file holds the loop (heartbeat, poll, shutdown); `claim.rs` queues and claims,
//! `reconcile.rs` stops and restarts tasks to match the configuration, `monitor_lease.rs`
//! runs the monitor while this node holds its lease, and `balance.rs` is the pure rule of
//! which pipelines this node should claim.

mod balance;
mod claim;
mod monitor_lease;
mod reconcile;

pub use balance::{Runnable, plan_claims};

use crate::config::{ConfigError, PipelineConfig, Settings};
use crate::coord::{Coordinator, Leases, Liveness, ZooKeeper};
use crate::error::{Error, Result, chain};
use crate::meta::{self, EventLevel, MetaDb, NodeRegistration};
use crate::model::{EventKind, FencingToken, InstallationId, PipelineId};
use crate::monitor::MonitorHandle;
use crate::pipeline::{PipelineHandle, StopReason};
use futures_util::future::join_all;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How often a node deletes old event log rows.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Who the node is.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `--name`: unique among live nodes, kept across restarts.
    pub name: String,
    /// The host name shown in `v_node_status`.
    pub host: String,
    /// `--zk`: the ZooKeeper ensemble (`host:port,…`) to coordinate through, if any.
    pub zk: Option<String>,
    /// The installation's ZooKeeper identity (`user:password`) from `--zk-auth-file`.
    pub zk_auth: Option<String>,
}

/// A pipeline this node holds a lease on.
struct Held {
    token: FencingToken,
    /// The local deadline of the lease, shared with the task, which stops at it.
    deadline: watch::Sender<Instant>,
    /// The configuration the task runs with, to notice changes.
    config: Result<PipelineConfig, ConfigError>,
    handle: PipelineHandle,
    /// The coordinator's session the pipeline was claimed in.
    session: u64,
    /// The local deadline of the lease alone; `deadline` is also capped by the
    /// coordinator's confirmation.
    lease_until: Instant,
}

struct Node<C> {
    meta: MetaDb,
    /// The metadata schema's installation id, handed to every pipeline task.
    installation: InstallationId,
    registration: NodeRegistration,
    settings: Settings,
    /// The last settings error, reported once rather than at every poll.
    settings_error: Option<String>,
    held: BTreeMap<PipelineId, Held>,
    /// The monitor, while this node holds the monitor lease.
    monitor: Option<MonitorHandle>,
    last_prune: Option<Instant>,
    /// The pruning of old event log and statistics rows, while it runs.
    pruning: Option<tokio::task::JoinHandle<()>>,
    /// The operator drained this node: it hands everything over and claims nothing.
    drained: bool,
    /// Who is alive and who may claim.
    coordinator: C,
    /// Nodes that say they coordinate through ZooKeeper and heartbeat, but that this node's
    /// ensemble does not list: since when, and whether it was reported.
    strangers: BTreeMap<String, (Instant, bool)>,
}

/// The local deadline of a lease renewed (or claimed) by a request sent at `sent`.
fn deadline_after(sent: Instant, lease: Duration) -> Instant {
    sent + lease * 3 / 4
}

/// Runs a node until `shutdown` is cancelled or a fatal error (schema mismatch, a duplicate
/// name). Pipelines are stopped and their leases released before it returns.
pub async fn run(meta: MetaDb, options: NodeOptions, shutdown: CancellationToken) -> Result<()> {
    meta::check_schema(&meta).await?;
    let (settings, settings_error) = match Settings::from_rows(&meta::read_settings(&meta).await?) {
        Ok(settings) => (settings, None),
        Err(invalid) => {
            error!(error = %invalid, "invalid settings: starting with the defaults");
            (Settings::default(), Some(invalid.to_string()))
        }
    };
    let registration = NodeRegistration {
        name: options.name,
        host: options.host,
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        instance: RandomState::new().hash_one(std::time::SystemTime::now()) >> 1,
    };
    let installation = meta::read_installation(&meta).await?;
    match options.zk.as_deref() {
        None => {
            let node = Node::new(meta, installation, registration, settings, Leases);
            node.run(settings_error, shutdown).await
        }
        Some(servers) => {
            let zk = ZooKeeper::new(
                servers,
                &installation,
                &registration.name,
                registration.instance,
                &settings,
                options.zk_auth.clone(),
            );
            let node = Node::new(meta, installation, registration, settings, zk);
            node.run(settings_error, shutdown).await
        }
    }
}

impl<C: Coordinator> Node<C> {
    fn new(
        meta: MetaDb,
        installation: InstallationId,
        registration: NodeRegistration,
        settings: Settings,
        coordinator: C,
    ) -> Node<C> {
        Node {
            meta,
            installation,
            registration,
            settings,
            settings_error: None,
            held: BTreeMap::new(),
            monitor: None,
            last_prune: None,
            pruning: None,
            drained: false,
            coordinator,
            strangers: BTreeMap::new(),
        }
    }

    /// Registers, runs the loop until `shutdown` or a fatal error, then shuts down.
    async fn run(
        mut self,
        settings_error: Option<String>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        let coordination = self.coordinator.describe(0);
        meta::register_node(
            &self.meta,
            &self.registration,
            &coordination,
            self.settings.lease,
            self.settings.heartbeat,
        )
        .await?;
        info!(node = %self.registration.name, meta = self.meta.display_url(), coordination, "node registered");
        let node = &mut self;
        // A drained node that restarts must not take the monitor before its first poll.
        node.drained = meta::node_states(&node.meta, node.settings.lease)
            .await
            .is_ok_and(|nodes| node.drained_in(&nodes));
        let started = format!(
            "node {} started on {} (pid {}, version {})",
            node.registration.name,
            node.registration.host,
            node.registration.pid,
            node.registration.version
        );
        node.log(EventLevel::Info, None, EventKind::NodeStarted, &started)
            .await;
        if let Some(text) = settings_error {
            node.report_settings_error(text).await;
        }
        let result = node.run_loop(shutdown).await;
        node.shut_down(result.is_ok()).await;
        result
    }

    async fn run_loop(&mut self, shutdown: CancellationToken) -> Result<()> {
        loop {
            let mut heartbeat = interval(self.settings.heartbeat);
            heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut poll = interval(self.settings.poll);
            poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let timing = (self.settings.heartbeat, self.settings.poll);
            while timing == (self.settings.heartbeat, self.settings.poll) {
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = heartbeat.tick() => self.beat().await?,
                    _ = poll.tick() => self.poll().await?,
                }
            }
        }
    }

    /// Heartbeats, renews every held lease and (with ZooKeeper) checks the session, all at
    /// once; then stops the tasks whose lease is lost or can no longer be confirmed.
    async fn beat(&mut self) -> Result<()> {
        let coordination = self.coordinator.describe(self.held.len());
        match meta::heartbeat(&self.meta, &self.registration, &coordination).await {
            Err(error @ Error::NodeReplaced { .. }) => return Err(error),
            Err(error) => warn!(error = %chain(&error), "heartbeat failed"),
            Ok(()) => {}
        }
        let lease = self.settings.lease;
        let mut lost: Vec<(PipelineId, StopReason, String)> = Vec::new();
        let mut renewals = Vec::new();
        for (pipeline, held) in &self.held {
            if !held.handle.is_finished() {
                let (meta, name, token) = (
                    self.meta.clone(),
                    self.registration.name.clone(),
                    held.token,
                );
                let pipeline = *pipeline;
                renewals.push(async move {
                    let sent = Instant::now();
                    let renewal = meta::renew_lease(&meta, pipeline, &name, token, lease);
                    let outcome = tokio::time::timeout(lease / 4, renewal).await;
                    (pipeline, sent, outcome)
                });
            }
        }
        let refresh = self.coordinator.refresh();
        let (change, renewed) = tokio::join!(refresh, join_all(renewals));
        for (pipeline, sent, outcome) in renewed {
            match outcome {
                Ok(Ok(())) => {
                    if let Some(held) = self.held.get_mut(&pipeline) {
                        held.lease_until = deadline_after(sent, lease);
                    }
                }
                Ok(Err(Error::Fenced { .. })) => {
                    let why = "expired, taken over or reset".to_owned();
                    lost.push((pipeline, StopReason::LeaseLost, why))
                }
                Ok(Err(error)) => {
                    warn!(pipeline = %pipeline, error = %chain(&error), "lease renewal failed")
                }
                Err(_) => warn!(pipeline = %pipeline, "lease renewal timed out"),
            }
        }
        if let Some(change) = change {
            self.log_zookeeper_change(change).await;
        }
        let now = Instant::now();
        for (pipeline, held) in &self.held {
            let (deadline, unconfirmed) =
                self.coordinator
                    .deadline(held.session, held.lease_until, now);
            held.deadline.send_replace(deadline);
            if lost.iter().any(|(lost, ..)| lost == pipeline) {
                continue;
            }
            if unconfirmed {
                let why = format!("{}; handed back", StopReason::Unconfirmed);
                lost.push((*pipeline, StopReason::Unconfirmed, why));
            } else if held.handle.is_finished() {
                let why = "its task found the lease gone".to_owned();
                lost.push((*pipeline, StopReason::LeaseLost, why));
            } else if now >= held.lease_until {
                lost.push((
                    *pipeline,
                    StopReason::LeaseLost,
                    "not renewed in time".to_owned(),
                ));
            }
        }
        self.let_go(lost).await;
        self.beat_monitor().await;
        let pruning = self
            .pruning
            .as_ref()
            .is_some_and(|task| !task.is_finished());
        if !pruning
            && self
                .last_prune
                .is_none_or(|last| last.elapsed() > PRUNE_EVERY)
        {
            self.last_prune = Some(Instant::now());
            // In a task of its own: pruning may take a while, and this loop renews leases.
            let (meta, settings) = (self.meta.clone(), self.settings.clone());
            self.pruning = Some(tokio::spawn(async move {
                if let Err(error) = meta::prune_event_log(&meta, settings.event_log_days).await {
                    warn!(error = %chain(&error), "cannot prune the event log");
                }
                if let Err(error) = meta::prune_stats(&meta, settings.stat_retention_days).await {
                    warn!(error = %chain(&error), "cannot prune the statistics");
                }
            }));
        }
        Ok(())
    }

    /// Stops the tasks of pipelines whose lease is lost, all at once, and releases each lease
    /// (fenced by its token: a lease taken over is left alone; one that is still this node's,
    /// as when ZooKeeper can no longer confirm it, is handed back at once). Then leaves their
    /// ZooKeeper queues and logs each.
    async fn let_go(&mut self, lost: Vec<(PipelineId, StopReason, String)>) {
        let held: Vec<_> = lost
            .into_iter()
            .filter_map(|(pipeline, reason, why)| {
                let held = self.held.remove(&pipeline)?;
                Some((pipeline, reason, why, held))
            })
            .collect();
        let meta = &self.meta;
        let stops = held
            .into_iter()
            .map(|(pipeline, reason, why, held)| async move {
                held.handle.stop(reason).await;
                if let Err(error) = meta::release_lease(meta, pipeline, held.token).await {
                    warn!(pipeline = %pipeline, error = %chain(&error), "cannot release the lease");
                }
                (pipeline, why)
            });
        for (pipeline, why) in join_all(stops).await {
            self.coordinator.withdraw(pipeline).await;
            warn!(pipeline = %pipeline, why, "lease lost");
            let text = format!("lease lost: {why}");
            self.log(
                EventLevel::Warn,
                Some(pipeline),
                EventKind::LeaseLost,
                &text,
            )
            .await;
        }
    }

    /// Reads settings and configuration, reconciles the held pipelines, claims new ones.
    /// Only a replaced node is an error; anything else is logged and retried at the next poll.
    async fn poll(&mut self) -> Result<()> {
        match self.try_poll().await {
            Err(error @ Error::NodeReplaced { .. }) => Err(error),
            Err(error) => {
                warn!(error = %chain(&error), "configuration poll failed");
                // Queued for pipelines it cannot claim now: leave, not to hold up others.
                let held: BTreeSet<PipelineId> = self.held.keys().copied().collect();
                self.coordinator.withdraw_except(&held).await;
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn try_poll(&mut self) -> Result<()> {
        self.refresh_settings().await?;
        let snapshot = meta::read_snapshot(&self.meta).await?;
        let mut leases = meta::read_leases(&self.meta).await?;
        if snapshot
            .pipelines
            .iter()
            .any(|p| leases.iter().all(|l| l.pipeline != p.id))
        {
            meta::ensure_lease_rows(&self.meta).await?;
            leases = meta::read_leases(&self.meta).await?;
        }
        let nodes = meta::node_states(&self.meta, self.settings.lease).await?;
        let drained = self.drained_in(&nodes);
        if drained != self.drained {
            self.drained = drained;
            let (kind, text) = if drained {
                let text = format!("node drained: handing over {} pipelines", self.held.len());
                (EventKind::NodeDrained, text)
            } else {
                (
                    EventKind::NodeUndrained,
                    "node undrained: claiming pipelines again".to_owned(),
                )
            };
            info!("{}", text);
            self.log(EventLevel::Info, None, kind, &text).await;
        }
        self.reconcile(&snapshot, &leases).await;
        let held: BTreeSet<PipelineId> = self.held.keys().copied().collect();
        if self.drained {
            self.coordinator.withdraw_except(&held).await;
            return Ok(());
        }
        // Who works (alive by heartbeat, not drained, claiming), and which leases are live:
        // by the lease clocks of the metadata database, or with ZooKeeper also by its
        // sessions: a lease whose holder's session ended is up for election, however long
        // it still runs. A node without --zk beside ones with it is judged by its lease.
        let in_zookeeper = match self.coordinator.alive() {
            Liveness::ByLease => None,
            Liveness::Listed(alive) => Some(alive.clone()),
            Liveness::Unknown => return Ok(()), // claim nothing
        };
        if let Some(alive) = &in_zookeeper {
            self.look_for_strangers(&nodes, alive).await;
        }
        let in_zookeeper = in_zookeeper.as_ref();
        let coordinating: BTreeSet<&String> = nodes
            .iter()
            .filter(|node| node.zookeeper)
            .map(|node| &node.name)
            .collect();
        let by_zookeeper = |name: &String| {
            in_zookeeper.is_none_or(|alive| !coordinating.contains(name) || alive.contains(name))
        };
        let working: Vec<String> = nodes
            .iter()
            .filter(|node| node.alive && !node.drained && node.claiming)
            .map(|node| node.name.clone())
            .filter(by_zookeeper)
            .collect();
        let leases: Vec<meta::Lease> = leases
            .into_iter()
            .map(|lease| meta::Lease {
                live: lease.live && lease.holder.as_ref().is_some_and(by_zookeeper),
                ..lease
            })
            .collect();
        let runnable: Vec<Runnable> = snapshot
            .pipelines
            .iter()
            .filter(|pipeline| snapshot.is_desired_running(pipeline))
            .map(|pipeline| Runnable {
                pipeline: pipeline.id,
                allowed_nodes: snapshot.allowed_nodes(pipeline.id),
            })
            .collect();
        let plan = plan_claims(&self.registration.name, &runnable, &leases, &working, &held);
        let queued = held.iter().chain(&plan).copied().collect();
        self.coordinator.withdraw_except(&queued).await;
        self.claim(plan, &snapshot, &leases).await
    }

    /// Whether the node rows say this node is drained; unchanged when they do not list it.
    fn drained_in(&self, nodes: &[meta::NodeState]) -> bool {
        nodes
            .iter()
            .find(|node| node.name == self.registration.name)
            .map_or(self.drained, |node| node.drained)
    }

    async fn refresh_settings(&mut self) -> Result<()> {
        let rows = meta::read_settings(&self.meta).await?;
        match Settings::from_rows(&rows) {
            Ok(settings) => {
                if settings != self.settings {
                    info!(?settings, "settings changed");
                }
                self.coordinator.follow(&settings);
                self.settings = settings;
                self.settings_error = None;
            }
            Err(invalid) => self.report_settings_error(invalid.to_string()).await,
        }
        Ok(())
    }

    async fn report_settings_error(&mut self, text: String) {
        if self.settings_error.as_deref() != Some(text.as_str()) {
            error!(error = %text, "invalid settings: keeping the previous values");
            self.log(
                EventLevel::Error,
                None,
                EventKind::InvalidSetting,
                &format!("{text}; keeping the previous values"),
            )
            .await;
            self.settings_error = Some(text);
        }
    }

    /// Stops every task at once, then (on a clean stop) releases their leases and marks the
    /// node stopped.
    async fn shut_down(&mut self, clean: bool) {
        if let Some(monitor) = self.monitor.take() {
            let token = monitor.token;
            monitor.stop().await;
            if clean
                && let Err(error) =
                    meta::monitor::release_monitor(&self.meta, &self.registration.name, token).await
            {
                warn!(error = %chain(&error), "cannot release the monitor lease");
            }
        }
        let held = std::mem::take(&mut self.held);
        let stops = held.into_iter().map(|(pipeline, held)| async move {
            held.handle.stop(StopReason::NodeShutdown).await;
            (pipeline, held.token)
        });
        let stopped = join_all(stops).await;
        if clean {
            let meta = &self.meta;
            let releases = stopped.iter().map(|(pipeline, token)| async move {
                if let Err(error) = meta::release_lease(meta, *pipeline, *token).await {
                    warn!(pipeline = %pipeline, error = %chain(&error), "cannot release the lease");
                }
            });
            join_all(releases).await;
        }
        self.coordinator.close().await;
        if let Err(error) = meta::mark_stopped(&self.meta, &self.registration).await {
            warn!(error = %chain(&error), "cannot record the node's stop");
        }
        self.log(
            EventLevel::Info,
            None,
            EventKind::NodeStopped,
            &format!("node {} stopped", self.registration.name),
        )
        .await;
        info!(node = %self.registration.name, "node stopped");
    }

    async fn log(
        &self,
        level: EventLevel,
        pipeline: Option<PipelineId>,
        kind: EventKind,
        message: &str,
    ) {
        let node = Some(self.registration.name.as_str());
        meta::log_event_or_warn(&self.meta, level, node, pipeline, kind, message).await;
    }
}
