//! Verification while syncing: whether the target equals its source, found without stopping
//! the stream, locking, or a long transaction, and repaired through the stream.
//!
//! A [`Verifier`] runs beside the stream of a running pipeline, like the online copy, and
//! shares its watermarks (`pipeline::copy::splice`). Each table is walked along its primary
//! key in chunks sized to `copy_chunk_ms` ([`task`]). A chunk is compared at one point of the
//! stream: the source's aggregate (COUNT and BIT_XOR of row hashes, see [`hash`]) is read
//! between a low and a high watermark; at the high watermark the stream, everything before
//! it committed on the target, starts a consistent snapshot on the verification's target
//! connection, and the same aggregate is read in it. Equal: the chunk is equal. Otherwise
//! the keys and hashes of both sides are read the same way, and the keys that differ are
//! compared value by value in further windows ([`compare`]); a key that changed between the
//! watermarks of its window is compared again in the next one, a bounded number of times,
//! then reported `unverified`, never as a difference. Progress is recorded after each chunk,
//! so a job resumes at its last chunk after a crash.
//!
//! Repairs ([`repair`]) re-read the differing keys' source rows between watermarks and
//! hand them to the stream as a copy chunk of those keys (applied at the high watermark,
//! keys the source lacks deleted), then compare the keys again.
//!
//! Jobs come from `verify()`, and from `verify_schedule` (a cron expression), which this
//! verifier looks at each round.

mod compare;
pub mod hash;
mod repair;
mod task;

use crate::config::PipelineConfig;
use crate::error::chain;
use crate::meta::{self, MetaDb};
use crate::model::{PipelineId, PipelineKey};
use crate::pipeline::AbortOnDrop;
use crate::pipeline::copy::{KeyText, Marks, VerifyWindow, WindowEnd};
use mysql_async::prelude::Queryable;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::warn;

/// The statement the stream runs on a verification's target connection at a window's high
/// watermark: the snapshot the target side of the window is read in.
const START_SNAPSHOT: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";
/// How long the stream waits for it.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// Watermark slots of verifications start here (copies use those below).
const FIRST_SLOT: u16 = 1000;
/// Keys repaired per round.
const REPAIRS_PER_ROUND: usize = 500;
/// How long after a failed repair round the next starts.
const REPAIR_BACKOFF: Duration = Duration::from_secs(30);

/// Starts a consistent snapshot on a window's target connection (the stream calls this at
/// the window's high watermark, everything before applied) and hands it back.
pub async fn take_snapshot(window: VerifyWindow, changed: HashSet<KeyText>) {
    let VerifyWindow { mut target, reply } = window;
    let started = tokio::time::timeout(SNAPSHOT_WAIT, target.query_drop(START_SNAPSHOT)).await;
    let changed = match started {
        Ok(Ok(())) => Ok(changed),
        Ok(Err(error)) => Err(format!("cannot start a snapshot on the target: {error}")),
        Err(_) => Err(format!(
            "the target did not start a snapshot within {} s",
            SNAPSHOT_WAIT.as_secs()
        )),
    };
    let _ = reply.send(WindowEnd { target, changed });
}

/// What the verification tasks of a pipeline share.
pub struct Shared {
    pub meta: MetaDb,
    pub node: String,
    pub pipeline: PipelineId,
    pub key: PipelineKey,
    pub config: PipelineConfig,
    pub marks: Arc<Marks>,
    pub lag_ms: Arc<AtomicU64>,
    /// Two-way: the pipeline out of the target into the source, whose changes in flight are
    /// left out of comparisons (see `task::Windows::recheck`).
    pub reverse_key: Option<PipelineKey>,
}

/// What the verifier keeps between its rounds.
#[derive(Default)]
struct Rounds {
    running: HashMap<meta::verify::VerifyWork, (u16, AbortOnDrop)>,
    repairing: Option<AbortOnDrop>,
    /// Set by a repair round that failed: the next waits [`REPAIR_BACKOFF`].
    repair_failed: Arc<std::sync::atomic::AtomicBool>,
    repair_after: Option<tokio::time::Instant>,
    /// When this verifier started (Unix seconds): a schedule counts from here when it has
    /// started nothing yet.
    started: i64,
}

/// Runs a pipeline's verifications and repairs beside its stream.
pub struct Verifier {
    shared: Arc<Shared>,
    poll: Duration,
}

impl Verifier {
    pub fn new(
        meta: MetaDb,
        node: String,
        key: PipelineKey,
        config: PipelineConfig,
        marks: Arc<Marks>,
        lag_ms: Arc<AtomicU64>,
        poll: Duration,
    ) -> Self {
        Verifier {
            shared: Arc::new(Shared {
                meta,
                node,
                pipeline: config.id,
                key,
                config,
                marks,
                lag_ms,
                reverse_key: None,
            }),
            poll,
        }
    }

    /// Two-way: the pipeline out of the target into the source (`reverse`), whose changes
    /// in flight comparisons leave out.
    pub fn two_way(mut self, reverse: Option<PipelineKey>) -> Self {
        let shared = Arc::get_mut(&mut self.shared).expect("not started");
        shared.reverse_key = reverse.filter(|_| shared.config.two_way());
        self
    }

    /// Starts the verifier in a task of its own; it runs until the handle is aborted (with
    /// the stream).
    pub fn start(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut rounds = Rounds {
                started: now_s(),
                ..Rounds::default()
            };
            loop {
                self.round(&mut rounds).await;
                tokio::time::sleep(self.poll.max(Duration::from_millis(100))).await;
            }
        })
    }

    async fn round(&self, rounds: &mut Rounds) {
        let shared = &self.shared;
        if let Err(error) = self.schedule(rounds).await {
            warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot start a scheduled verification");
        }
        rounds
            .running
            .retain(|_, (_, handle)| !handle.0.is_finished());
        let work = match meta::verify::verify_work(&shared.meta, shared.pipeline).await {
            Ok(work) => work,
            Err(error) => {
                warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot read the verification jobs");
                return;
            }
        };
        let parallelism = usize::from(shared.config.options.load_parallelism).clamp(1, 8);
        for work in work {
            if rounds.running.len() >= parallelism {
                break;
            }
            if rounds.running.contains_key(&work) {
                continue;
            }
            let slot = (FIRST_SLOT..)
                .find(|slot| !rounds.running.values().any(|(used, _)| used == slot))
                .expect("a free slot");
            let handle = task::TableVerify::new(shared.clone(), work.clone(), slot).spawn();
            rounds.running.insert(work, (slot, AbortOnDrop(handle)));
        }
        if rounds.repair_failed.swap(false, Ordering::Relaxed) {
            rounds.repair_after = Some(tokio::time::Instant::now() + REPAIR_BACKOFF);
        }
        let backing_off = rounds
            .repair_after
            .is_some_and(|after| tokio::time::Instant::now() < after);
        if !backing_off
            && rounds
                .repairing
                .as_ref()
                .is_none_or(|handle| handle.0.is_finished())
        {
            match meta::verify::pending_repairs(&shared.meta, shared.pipeline, REPAIRS_PER_ROUND)
                .await
            {
                Ok(pending) if !pending.is_empty() => {
                    let slot = FIRST_SLOT - 1;
                    rounds.repairing = Some(AbortOnDrop(tokio::spawn(repair::repair(
                        shared.clone(),
                        pending,
                        slot,
                        rounds.repair_failed.clone(),
                    ))));
                }
                Ok(_) => {}
                Err(error) => {
                    warn!(pipeline = %shared.pipeline, error = %chain(&error), "cannot read the repairs asked");
                }
            }
        }
    }

    /// Starts a verification of every paired table when `verify_schedule` says one is due.
    async fn schedule(&self, rounds: &Rounds) -> crate::error::Result<()> {
        let shared = &self.shared;
        let Some(text) = &shared.config.options.verify_schedule else {
            return Ok(());
        };
        let schedule = crate::config::parse_cron(text).map_err(crate::error::Error::Precheck)?;
        let last = meta::verify::last_scheduled(&shared.meta, shared.pipeline)
            .await?
            .unwrap_or(rounds.started);
        let Some(after) = chrono::DateTime::from_timestamp(last, 0) else {
            return Ok(());
        };
        let due = schedule
            .after(&after)
            .next()
            .is_some_and(|next| next.timestamp() <= now_s());
        if due
            && let Some(job) =
                meta::verify::schedule_verification(&shared.meta, shared.pipeline).await?
        {
            tracing::info!(pipeline = %shared.pipeline, job, "scheduled verification started");
        }
        Ok(())
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64)
}
