//! Repairs of differing keys through the stream: each key's current source row is re-read
//! between watermarks and applied at the high watermark like a copy chunk (a key the source
//! lacks is deleted from the target), so that it lands in stream order; then the key is
//! compared again and `verify_diff.repair` says how that went.

use super::Shared;
use super::task::{KEYS_PER_WINDOW, Windows, describe};
use crate::error::{Error, Result, chain};
use crate::meta::verify::{PendingRepair, VerifyWork};
use crate::meta::{self, EventLevel};
use crate::model::{EventKind, TableId};
use crate::pipeline::copy::{Outcome, key_text};
use crate::pipeline::transform::bind::Bound;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::warn;

/// How many times a repair whose window was spoiled is taken again.
const RETAKES: u32 = 10;

/// Repairs `pending` (keys of one pipeline), table by table, with watermark slot `slot`.
/// Sets `failed` when a table's keys could not be repaired (the next round then waits).
pub(super) async fn repair(
    shared: Arc<Shared>,
    pending: Vec<PendingRepair>,
    slot: u16,
    failed: Arc<AtomicBool>,
) {
    let mut tables: Vec<(VerifyWork, Vec<PendingRepair>)> = Vec::new();
    for item in pending {
        match tables.iter_mut().find(|(work, _)| *work == item.work) {
            Some((_, items)) => items.push(item),
            None => tables.push((item.work.clone(), vec![item])),
        }
    }
    for (work, items) in tables {
        let count = items.len();
        let message = match repair_table(&shared, slot, &work, items).await {
            Ok((repaired, still)) => {
                let text = format!(
                    "verification {} table {}.{}: {repaired} key(s) repaired, {still} still different",
                    work.job, work.schema, work.table
                );
                (EventLevel::Info, EventKind::VerifyRepaired, text)
            }
            Err(error) => {
                failed.store(true, Ordering::Relaxed);
                let text = format!(
                    "verification {} table {}.{}: cannot repair {count} key(s) yet: {}",
                    work.job,
                    work.schema,
                    work.table,
                    chain(&error)
                );
                warn!(pipeline = %shared.pipeline, "{text}");
                (EventLevel::Warn, EventKind::VerifyFailed, text)
            }
        };
        meta::log_event_or_warn(
            &shared.meta,
            message.0,
            Some(&shared.node),
            Some(shared.pipeline),
            message.1,
            &message.2,
        )
        .await;
    }
}

/// Repairs the keys of one table; returns how many compare equal afterwards, and how many
/// do not.
async fn repair_table(
    shared: &Arc<Shared>,
    slot: u16,
    work: &VerifyWork,
    items: Vec<PendingRepair>,
) -> Result<(usize, usize)> {
    let id = TableId {
        schema: work.schema.clone(),
        table: work.table.clone(),
    };
    let mut windows = Windows::open(shared, slot, id.clone()).await?;
    let table = describe(&mut windows, &id).await?;
    let mut keyed = Vec::with_capacity(items.len());
    for item in items {
        let key: Vec<Bound> = serde_json::from_str(&item.key_json).map_err(|error| {
            Error::Precheck(format!(
                "the key of difference {} cannot be read ({error})",
                item.id
            ))
        })?;
        keyed.push((item, key));
    }
    let (mut repaired, mut still) = (0, 0);
    for part in keyed.chunks(KEYS_PER_WINDOW) {
        let keys: Vec<Vec<Bound>> = part.iter().map(|(_, key)| key.clone()).collect();
        let mut retakes = 0;
        loop {
            match windows.copy_keys(&table, &keys).await? {
                Outcome::Applied { .. } => break,
                Outcome::Failed(why) => return Err(Error::Precheck(why)),
                Outcome::Again(why) => {
                    retakes += 1;
                    if retakes >= RETAKES {
                        return Err(Error::StreamLost(format!(
                            "a repair was sent back {RETAKES} times: {why}"
                        )));
                    }
                }
            }
        }
        let found: HashMap<Vec<u8>, _> = windows
            .recheck(&table, keys)
            .await?
            .into_iter()
            .filter_map(|diff| {
                let key: Vec<Bound> = serde_json::from_str(&diff.key_json).ok()?;
                Some((key_text(key.iter()), diff))
            })
            .collect();
        let checked: Vec<_> = part
            .iter()
            .map(|(item, key)| (item.clone(), found.get(&key_text(key.iter())).cloned()))
            .collect();
        still += checked.iter().filter(|(_, diff)| diff.is_some()).count();
        repaired += checked.iter().filter(|(_, diff)| diff.is_none()).count();
        meta::verify::repair_checked(&shared.meta, &checked).await?;
    }
    Ok((repaired, still))
}
