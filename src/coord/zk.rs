//! Optional ZooKeeper coordination (`ottr node --zk host:port,…`): node liveness by
//! ephemeral nodes, pipeline ownership by leader election.
//!
//! Layout under `/ottr/<installation id>`:
//! - `nodes/<name>`: ephemeral, holding the process's instance number. A node is alive while
//!   its session lives, so a dead node's pipelines move after the session timeout
//!   (`zk_session_ms`), not after the lease.
//! - `pipelines/<id>/lock-<instance>-<sequence>`: ephemeral sequential. A node that wants a
//!   pipeline (by the balance rule) queues here; only the lowest sequence may claim the lease
//!   in the metadata database, with a token of at least the lock's czxid (see
//!   [`crate::meta::Claim`]). The instance number in the name lets a node find a lock whose
//!   creation reply it lost, which would otherwise stand at the head of the queue unknown.
//!
//! The metadata database stays the truth and the fencing authority: every position and
//! target write is still checked against the lease's token, so a node that ZooKeeper gave up
//! on but that still runs can commit nothing once the next holder claimed.
//!
//! A held pipeline is run only while ZooKeeper confirms the session it was claimed in: a
//! node that has not heard from ZooKeeper for two thirds of the session timeout the server
//! granted (or whose session ended) stops it and hands the lease back, before ZooKeeper can
//! have let another node win its lock; the task itself stops at that deadline too. While
//! ZooKeeper is unreachable a node claims nothing.
//! An expired session is dead for good: the client is rebuilt, with new ephemeral nodes.
//!
//! With the installation's identity (`--zk-auth-file`, `user:password`), every session
//! authenticates with it (digest) and the installation's nodes (`/ottr/<installation id>`,
//! its directories, every pipeline directory and lock) are made readable and writable by
//! that identity only: whoever reaches ZooKeeper without it can neither read the queues nor
//! queue, delete a lock or fake a live node.

use super::{Change, Contention, Coordinator, Liveness};
use crate::config::Settings;
use crate::meta::{Claim, Lease};
use crate::model::{FencingToken, InstallationId, PipelineId};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;
use tokio::time::{Instant, timeout};
use tracing::{info, warn};
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, SessionState, Stat};

/// A lock node this node created to queue for a pipeline.
#[derive(Debug, Clone)]
struct Lock {
    /// The node's name under the pipeline's directory, `lock-<instance>-0000000007`.
    name: String,
    czxid: i64,
}

/// The ZooKeeper side of one node process.
pub struct ZooKeeper {
    servers: String,
    root: String,
    name: String,
    instance: u64,
    /// The session timeout asked for at the next new session.
    session_timeout: Duration,
    /// The session timeout the server granted to the current session.
    granted: Duration,
    /// Each call's time limit, so that a stalled server cannot hold up lease renewals.
    call_timeout: Duration,
    client: Option<Client>,
    /// Increases with every new session: a pipeline claimed in an earlier one is unconfirmed.
    generation: u64,
    /// When the last request that ZooKeeper answered was sent.
    confirmed: Option<Instant>,
    /// The live node names as last read; None while ZooKeeper does not answer.
    alive: Option<BTreeSet<String>>,
    /// Since when (UTC, for operators) and why ZooKeeper does not answer.
    unreachable: Option<(chrono::DateTime<chrono::Utc>, String)>,
    locks: BTreeMap<PipelineId, Lock>,
    /// Pipelines whose queue may hold a lock of this process that it does not know of (a
    /// creation whose reply never came, though the server may have carried it out): cleared
    /// by listing the queue.
    unsure: BTreeSet<PipelineId>,
    /// The installation's identity (`user:password`), for digest authentication; None: open
    /// nodes, as before identities.
    auth: Option<String>,
}

impl ZooKeeper {
    /// Coordination through the ensemble `servers` (`host:port,…`), not connected yet.
    pub fn new(
        servers: &str,
        installation: &InstallationId,
        name: &str,
        instance: u64,
        settings: &Settings,
        auth: Option<String>,
    ) -> ZooKeeper {
        let (session_timeout, call_timeout) = timeouts(settings);
        ZooKeeper {
            servers: servers.to_owned(),
            root: format!("/ottr/{installation}"),
            name: name.to_owned(),
            instance,
            session_timeout,
            granted: session_timeout,
            call_timeout,
            client: None,
            generation: 0,
            confirmed: None,
            alive: None,
            unreachable: None,
            locks: BTreeMap::new(),
            unsure: BTreeSet::new(),
            auth,
        }
    }

    /// The ACL of every node this process creates: the installation's identity only, or open
    /// without one.
    fn acls(&self) -> Acls<'static> {
        if self.auth.is_some() {
            Acls::creator_all()
        } else {
            Acls::anyone_all()
        }
    }

    /// Restricts an existing node (made by a node without the identity, or before identities)
    /// to the installation's identity; fails when another identity owns it.
    async fn restrict(&self, client: &Client, path: &str) -> Result<(), String> {
        if self.auth.is_none() {
            return Ok(());
        }
        self.call(
            &format!("restrict {path} to the installation's identity"),
            client.set_acl(path, &Acls::creator_all(), None),
        )
        .await
        .map(|_| ())
    }

    /// Takes the timeouts of new settings: the session timeout for the next new session
    /// (the current one keeps the timeout it was granted), the call time limit at once.
    fn follow(&mut self, settings: &Settings) {
        (self.session_timeout, self.call_timeout) = timeouts(settings);
    }

    /// Until when a pipeline claimed in session `generation` is confirmed: while the session
    /// is the same and less than two thirds of its granted timeout have passed since
    /// ZooKeeper last answered, no other node can have won the pipeline's lock. None when
    /// the session is another (or none).
    pub fn confirmed_until(&self, generation: u64) -> Option<Instant> {
        match self.confirmed {
            Some(at) if generation == self.generation && self.client.is_some() => {
                Some(at + self.granted * 2 / 3)
            }
            _ => None,
        }
    }

    /// What `v_node_status.coordination` shows, for a node holding `held` pipelines.
    fn describe(&self, held: usize) -> String {
        match &self.unreachable {
            None if self.alive.is_some() => "zookeeper".to_owned(),
            None => "zookeeper: connecting".to_owned(),
            Some((since, why)) => {
                let since = since.format("%Y-%m-%d %H:%M:%S UTC");
                let doing = if held > 0 {
                    format!(
                        "holding {held} pipelines until their tokens can no longer be confirmed"
                    )
                } else {
                    "pipelines handed back".to_owned()
                };
                format!("zookeeper unreachable since {since} ({why}): {doing}, claiming none")
            }
        }
    }

    /// Checks the session, rebuilding it when it expired, and reads the live nodes.
    /// Returns what changed, if anything.
    async fn refresh(&mut self) -> Option<Change> {
        let mut ended = None;
        if let Some(client) = &self.client {
            let how = match client.state() {
                SessionState::Expired => Some("expired"),
                SessionState::Closed => Some("closed"),
                SessionState::AuthFailed => Some("authentication failed"),
                _ => None,
            };
            if let Some(how) = how {
                warn!(how, "zookeeper session ended: it will be rebuilt");
                self.client = None;
                self.locks.clear();
                self.unsure.clear();
                ended = Some(how.to_owned());
            }
        }
        let sent = Instant::now();
        let first = self.confirmed.is_none();
        match self.read_alive().await {
            Ok(alive) => {
                self.confirmed = Some(sent);
                self.alive = Some(alive);
                let was_unreachable = self.unreachable.take().is_some();
                if let Some(how) = ended {
                    Some(Change::SessionEnded(how))
                } else if was_unreachable || first {
                    info!(servers = %self.servers, "zookeeper reachable");
                    Some(Change::Reachable)
                } else {
                    None
                }
            }
            Err(why) => match (ended, self.failed(&why)) {
                (Some(how), _) => Some(Change::SessionEnded(how)),
                (None, true) => Some(Change::Unreachable(why)),
                (None, false) => None,
            },
        }
    }

    /// Connects if there is no session, makes sure this node's ephemeral node exists, and
    /// lists the live nodes.
    async fn read_alive(&mut self) -> Result<BTreeSet<String>, String> {
        if self.client.is_none() {
            let client = self.connect().await?;
            self.client = Some(client);
            self.generation += 1;
        }
        let client = self.client.clone().expect("connected");
        let names = self
            .call(
                "list the live nodes",
                client.list_children(&self.nodes_dir()),
            )
            .await?;
        if !names.contains(&self.name) {
            self.register(&client).await?;
        }
        Ok(names.into_iter().chain([self.name.clone()]).collect())
    }

    async fn connect(&mut self) -> Result<Client, String> {
        let mut connector = Client::connector()
            .with_session_timeout(self.session_timeout)
            .with_connection_timeout(self.call_timeout)
            .with_fail_eagerly();
        if let Some(auth) = &self.auth {
            connector = connector.with_auth("digest", auth.as_bytes());
        }
        let connecting = connector.connect(&self.servers);
        let client = self.call("connect", connecting).await?;
        self.granted = client.session_timeout();
        // `/ottr` is shared by every installation on the ensemble: open; what is under an
        // installation's own node is its identity's
        let shared = CreateMode::Persistent.with_acls(Acls::anyone_all());
        self.call("create /ottr", client.mkdir("/ottr", &shared))
            .await?;
        let directory = CreateMode::Persistent.with_acls(self.acls());
        for path in [self.nodes_dir(), format!("{}/pipelines", self.root)] {
            self.call("create its directories", client.mkdir(&path, &directory))
                .await?;
        }
        for path in [
            self.root.clone(),
            self.nodes_dir(),
            format!("{}/pipelines", self.root),
        ] {
            self.restrict(&client, &path).await?;
        }
        info!(
            servers = %self.servers,
            session_timeout_ms = client.session_timeout().as_millis() as u64,
            "zookeeper session established"
        );
        self.register(&client).await?;
        Ok(client)
    }

    /// Creates this node's ephemeral node; one left by another session (an earlier process
    /// of this name, which the metadata database's registration has shown dead, or an
    /// earlier session of this one) is replaced.
    async fn register(&self, client: &Client) -> Result<(), String> {
        let path = self.own_path();
        let data = self.instance.to_string();
        let ephemeral = CreateMode::Ephemeral.with_acls(self.acls());
        for _ in 0..3 {
            match timeout(
                self.call_timeout,
                client.create(&path, data.as_bytes(), &ephemeral),
            )
            .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(ZkError::NodeExists)) => match self.stat(client, &path).await? {
                    Some(stat) if stat.ephemeral_owner == client.session_id().0 => return Ok(()),
                    Some(stat) => self.delete(client, &path, Some(stat.version)).await?,
                    None => {}
                },
                Ok(Err(error)) => return Err(format!("cannot create {path}: {error}")),
                Err(_) => return Err(format!("cannot create {path}: no answer in time")),
            }
        }
        Err(format!("cannot create {path}: it keeps coming back"))
    }

    /// Queues for `pipeline` (once) and says whether this node's lock is the lowest: then
    /// it may claim, and the czxid is returned. A failed call counts as ZooKeeper being
    /// unreachable until the next refresh, so that the poll makes no more calls that would
    /// each wait out their time limit.
    async fn contend(&mut self, pipeline: PipelineId) -> Result<Option<u64>, String> {
        let result = self.try_contend(pipeline).await;
        if let Err(why) = &result {
            self.failed(why);
        }
        result
    }

    async fn try_contend(&mut self, pipeline: PipelineId) -> Result<Option<u64>, String> {
        let Some(client) = self.client.clone() else {
            return Err("no zookeeper session".to_owned());
        };
        if self.unreachable.is_some() {
            return Err("zookeeper unreachable".to_owned());
        }
        let dir = self.pipeline_dir(pipeline);
        let prefix = self.lock_prefix();
        if !self.locks.contains_key(&pipeline) {
            let directory = CreateMode::Persistent.with_acls(self.acls());
            self.call(
                "create a pipeline directory",
                client.mkdir(&dir, &directory),
            )
            .await?;
            self.restrict(&client, &dir).await?;
            // A lock of this process whose creation reply was lost: this session's is
            // taken up, an earlier session's deleted.
            self.unsure.insert(pipeline);
            for (name, stat) in self.own_locks(&client, pipeline).await? {
                if stat.ephemeral_owner == client.session_id().0
                    && !self.locks.contains_key(&pipeline)
                {
                    let czxid = stat.czxid;
                    self.locks.insert(pipeline, Lock { name, czxid });
                } else {
                    let path = format!("{dir}/{name}");
                    self.delete(&client, &path, Some(stat.version)).await?;
                }
            }
            if !self.locks.contains_key(&pipeline) {
                let owner = format!("{}#{}", self.name, self.instance);
                let queued = CreateMode::EphemeralSequential.with_acls(self.acls());
                let (stat, sequence) = self
                    .call(
                        "queue for a pipeline",
                        client.create(&format!("{dir}/{prefix}"), owner.as_bytes(), &queued),
                    )
                    .await?;
                let lock = Lock {
                    name: format!("{prefix}{sequence}"),
                    czxid: stat.czxid,
                };
                self.locks.insert(pipeline, lock);
            }
            self.unsure.remove(&pipeline);
        }
        let Some(lock) = self.locks.get(&pipeline).cloned() else {
            return Ok(None);
        };
        let queue = self
            .call("read a pipeline's queue", client.list_children(&dir))
            .await?;
        if !queue.contains(&lock.name) {
            // Deleted by hand: queue again at the next poll.
            self.locks.remove(&pipeline);
            return Ok(None);
        }
        let first = queue.iter().min_by_key(|name| sequence_of(name));
        Ok((first == Some(&lock.name)).then_some(lock.czxid.max(0) as u64))
    }

    /// The locks of this process (any session) in `pipeline`'s queue, with their stats.
    async fn own_locks(
        &self,
        client: &Client,
        pipeline: PipelineId,
    ) -> Result<Vec<(String, Stat)>, String> {
        let dir = self.pipeline_dir(pipeline);
        let prefix = self.lock_prefix();
        let queue = self
            .call("read a pipeline's queue", client.list_children(&dir))
            .await?;
        let mut own = Vec::new();
        for name in queue.into_iter().filter(|name| name.starts_with(&prefix)) {
            if let Some(stat) = self.stat(client, &format!("{dir}/{name}")).await? {
                own.push((name, stat));
            }
        }
        Ok(own)
    }

    /// Leaves the queue of every pipeline not in `keep`, including the ones where a lock of
    /// this process may stand unknown.
    async fn withdraw_except(&mut self, keep: &BTreeSet<PipelineId>) {
        let leaving: Vec<PipelineId> = self
            .locks
            .keys()
            .filter(|pipeline| !keep.contains(pipeline))
            .copied()
            .collect();
        for pipeline in leaving {
            self.withdraw(pipeline).await;
        }
        let unsure: Vec<PipelineId> = self
            .unsure
            .iter()
            .filter(|pipeline| !keep.contains(pipeline) && !self.locks.contains_key(pipeline))
            .copied()
            .collect();
        for pipeline in unsure {
            let (Some(client), None) = (self.client.clone(), &self.unreachable) else {
                return;
            };
            let cleared = async {
                for (name, stat) in self.own_locks(&client, pipeline).await? {
                    let path = format!("{}/{name}", self.pipeline_dir(pipeline));
                    self.delete(&client, &path, Some(stat.version)).await?;
                }
                Ok::<(), String>(())
            };
            match cleared.await {
                Ok(()) => {
                    self.unsure.remove(&pipeline);
                }
                Err(why) => {
                    self.failed(&why);
                }
            }
        }
    }

    /// Leaves the queue of `pipeline`, so that the next node in it may claim. While
    /// ZooKeeper does not answer the lock stays listed, to be deleted once it does (or to
    /// vanish with the session).
    async fn withdraw(&mut self, pipeline: PipelineId) {
        let (Some(client), Some(lock)) = (self.client.clone(), self.locks.get(&pipeline)) else {
            return;
        };
        if self.unreachable.is_some() {
            return;
        }
        let path = format!("{}/{}", self.pipeline_dir(pipeline), lock.name);
        match self.delete(&client, &path, None).await {
            Ok(()) => {
                self.locks.remove(&pipeline);
            }
            Err(why) => {
                self.failed(&why);
            }
        }
    }

    /// Leaves every queue and deletes this node's ephemeral node (if this session owns it:
    /// after a replacement it is the new process's), so that ZooKeeper forgets it at once.
    async fn close(&mut self) {
        self.withdraw_except(&BTreeSet::new()).await;
        if let Some(client) = self.client.take() {
            let path = self.own_path();
            if let Ok(Some(stat)) = self.stat(&client, &path).await
                && stat.ephemeral_owner == client.session_id().0
            {
                let _ = self.delete(&client, &path, Some(stat.version)).await;
            }
        }
    }

    /// The stat of `path`, None if it does not exist.
    async fn stat(&self, client: &Client, path: &str) -> Result<Option<Stat>, String> {
        self.call(&format!("read {path}"), client.check_stat(path))
            .await
    }

    /// Deletes `path` (at `version`, if given); already gone is fine.
    async fn delete(
        &self,
        client: &Client,
        path: &str,
        version: Option<i32>,
    ) -> Result<(), String> {
        match timeout(self.call_timeout, client.delete(path, version)).await {
            Ok(Ok(())) | Ok(Err(ZkError::NoNode)) => Ok(()),
            Ok(Err(error)) => Err(format!("cannot delete {path}: {error}")),
            Err(_) => Err(format!("cannot delete {path}: no answer in time")),
        }
    }

    /// A call failed: ZooKeeper counts as unreachable (no claims, no more calls) until the
    /// next refresh says otherwise. Returns whether it was reachable until now.
    fn failed(&mut self, why: &str) -> bool {
        self.alive = None;
        let newly = self.unreachable.is_none();
        if newly {
            warn!(servers = %self.servers, error = why, "zookeeper unreachable");
            self.unreachable = Some((chrono::Utc::now(), why.to_owned()));
        }
        newly
    }

    fn lock_prefix(&self) -> String {
        format!("lock-{}-", self.instance)
    }

    fn own_path(&self) -> String {
        format!("{}/{}", self.nodes_dir(), self.name)
    }

    fn nodes_dir(&self) -> String {
        format!("{}/nodes", self.root)
    }

    fn pipeline_dir(&self, pipeline: PipelineId) -> String {
        format!("{}/pipelines/{}", self.root, pipeline.0)
    }

    /// Runs one ZooKeeper call within the call time limit; the error says what failed.
    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, ZkError>>,
    ) -> Result<T, String> {
        match timeout(self.call_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(format!("cannot {what}: {error}")),
            Err(_) => Err(format!(
                "cannot {what}: no answer from {} within {} ms",
                self.servers,
                self.call_timeout.as_millis()
            )),
        }
    }
}

/// The session timeout to ask for, and how long one call may take: a stalled ensemble must
/// not hold up lease renewals, so at most a heartbeat (at least 500 ms) and a third of the
/// session.
fn timeouts(settings: &Settings) -> (Duration, Duration) {
    let session = settings.zk_session_timeout();
    let call = (session / 3).min(settings.heartbeat.max(Duration::from_millis(500)));
    (session, call)
}

/// The sequence number of a lock node's name (`lock-<instance>-0000000007` → 7); others sort
/// last.
fn sequence_of(name: &str) -> i64 {
    name.rsplit('-')
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or(i64::MAX)
}

impl Coordinator for ZooKeeper {
    fn describe(&self, held: usize) -> String {
        ZooKeeper::describe(self, held)
    }

    async fn refresh(&mut self) -> Option<Change> {
        ZooKeeper::refresh(self).await
    }

    fn follow(&mut self, settings: &Settings) {
        ZooKeeper::follow(self, settings)
    }

    fn session(&self) -> u64 {
        self.generation
    }

    /// The lease's deadline, capped by the end of the confirmation of the session the
    /// pipeline was claimed in (`now`, when that session is gone).
    fn deadline(&self, session: u64, lease_until: Instant, now: Instant) -> (Instant, bool) {
        match self.confirmed_until(session) {
            Some(until) => (until.min(lease_until), now >= until),
            None => (now, true),
        }
    }

    fn alive(&self) -> Liveness<'_> {
        match &self.alive {
            Some(alive) => Liveness::Listed(alive),
            None => Liveness::Unknown,
        }
    }

    async fn contend(&mut self, pipeline: PipelineId, lease: Option<&Lease>) -> Contention {
        match ZooKeeper::contend(self, pipeline).await {
            Ok(Some(czxid)) => Contention::Claim(Claim::Elected {
                czxid,
                holder: lease.and_then(|lease| lease.holder.clone()),
                token: lease.map_or(FencingToken(0), |lease| lease.token),
            }),
            Ok(None) => Contention::Behind,
            Err(why) => Contention::Failed(why),
        }
    }

    async fn withdraw(&mut self, pipeline: PipelineId) {
        ZooKeeper::withdraw(self, pipeline).await
    }

    async fn withdraw_except(&mut self, keep: &BTreeSet<PipelineId>) {
        ZooKeeper::withdraw_except(self, keep).await
    }

    fn takeover(&self, lease: Duration) -> Duration {
        self.granted.min(lease)
    }

    async fn close(&mut self) {
        ZooKeeper::close(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_sequence_is_found_whatever_its_width_and_instance() {
        let mut queue = ["lock-77-0000000012", "lock-5-0000000009", "junk"];
        queue.sort_by_key(|name| sequence_of(name));
        assert_eq!(queue, ["lock-5-0000000009", "lock-77-0000000012", "junk"]);
        assert_eq!(sequence_of("lock-1-0000000004294967296"), 4294967296);
    }
}
