//! The worker loop: wake up (NOTIFY, a due retry, or the slow poll), claim due rows up to
//! the free concurrency, deliver each in its own task, and keep the shared destination
//! state (paused by 401/404, probed while paused) honest.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Semaphore;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bulk::{self, Job};
use super::client::WebEngageClient;
use super::limiter::Limiter;
use super::observe;
use super::send::{self, Shared, Verdict};
use crate::config::{self, DeliverySettings, WebEngageSettings};
use crate::store::outbox::{self, ClaimedRow, Due, Lease};
use crate::store::{destination, rate_windows};
use crate::webengage::OperationKind;

/// How long a claim lasts without a heartbeat. Live workers renew their leases every
/// `LEASE_SWEEP`, so this only bounds how long a killed worker's rows wait: three
/// sweeps, longer than a call (30 s timeout) plus settling.
pub const LEASE: Duration = Duration::from_secs(90);
/// The slow poll behind LISTEN/NOTIFY: also how soon another process's settle is seen.
const POLL: Duration = Duration::from_secs(2);
/// After a database error, before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(2);
/// How often leases are renewed and expired ones go back to pending.
const LEASE_SWEEP: Duration = Duration::from_secs(30);
/// How often delivered rows past retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);
const PURGE_BATCH: i64 = 500;
/// The operation kinds, claimed one at a time when bulk is on.
const KINDS: [OperationKind; 3] = [
    OperationKind::User,
    OperationKind::Event,
    OperationKind::Transaction,
];
/// Rate windows older than this are deleted (they only matter while current).
const RATE_WINDOW_KEEP: Duration = Duration::from_secs(3600);
/// On shutdown, calls in progress may finish this long: their answer settles the row
/// better than a resend would.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs until `shutdown` is cancelled.
pub async fn run(
    pool: PgPool,
    webengage: WebEngageSettings,
    settings: DeliverySettings,
    shutdown: CancellationToken,
) {
    let client = match WebEngageClient::new(&webengage) {
        Ok(client) => client,
        Err(e) => return idle(&pool, &e.to_string(), &shutdown).await,
    };
    let shared = Arc::new(Shared {
        limiter: Limiter::new(&webengage, settings.rate_window, Some(pool.clone())),
        pool,
        client,
        calls: Semaphore::new(settings.concurrency.max(1)),
        settings,
    });
    let key_file = webengage.api_key_file.filter(|p| !p.as_os_str().is_empty());
    let mut worker = Worker::new(shared, webengage.bulk, key_file).await;
    while !shutdown.is_cancelled() {
        let wait = worker.step().await;
        if worker.wait(wait, &shutdown).await {
            worker.on_hangup().await;
        }
    }
    worker.stop().await;
}

/// Without credentials nothing can be sent: say so once, record it where the admin
/// page and `/readyz` read it, and wait for shutdown (accepting goes on elsewhere).
async fn idle(pool: &PgPool, reason: &str, shutdown: &CancellationToken) {
    tracing::warn!("{reason}");
    observe::paused(true);
    while !shutdown.is_cancelled() {
        match destination::pause(pool, reason, None).await {
            Ok(()) => break,
            Err(e) => tracing::debug!(error = %e, "could not record the pause yet"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(ERROR_PAUSE) => {}
        }
    }
    shutdown.cancelled().await;
}

/// What to wait for before the next step.
#[derive(Debug, Clone, Copy)]
struct Wait {
    at_most: Duration,
    /// Whether a NOTIFY should wake us (not while every slot is busy).
    on_notify: bool,
}

impl Wait {
    fn for_notify(at_most: Duration) -> Wait {
        Wait {
            at_most: at_most.min(POLL),
            on_notify: true,
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    /// Whether users and events go through the bulk endpoints.
    bulk: bool,
    jobs: JoinSet<Verdict>,
    /// The running jobs that retry earlier failures: they may fill at most half the
    /// slots, so a retry storm cannot starve first attempts.
    retry_jobs: HashSet<Id>,
    /// The leases each running job holds, released if the job dies or is aborted.
    leases: HashMap<Id, Vec<Lease>>,
    listener: Option<PgListener>,
    /// The pause reason last logged, so a pause is announced once.
    paused: Option<String>,
    next_sweep: Instant,
    next_purge: Instant,
    /// SIGHUP: re-read the API key file and probe at once (key rotation).
    hangup: Option<Signal>,
    api_key_file: Option<PathBuf>,
    /// Which of `KINDS` a bulk claim tries first (rotates every claim).
    next_kind: usize,
}

impl Worker {
    async fn new(shared: Arc<Shared>, bulk: bool, api_key_file: Option<PathBuf>) -> Worker {
        // New credentials may have fixed an earlier pause: find out at once.
        if let Err(e) = destination::probe_now(&shared.pool).await {
            tracing::warn!(error = %e, "could not schedule a probe");
        }
        let mut worker = Worker {
            shared,
            bulk,
            jobs: JoinSet::new(),
            retry_jobs: HashSet::new(),
            leases: HashMap::new(),
            listener: None,
            paused: None,
            next_sweep: Instant::now(),
            next_purge: Instant::now(),
            hangup: signal(SignalKind::hangup()).ok(),
            api_key_file,
            next_kind: 0,
        };
        worker.listener = worker.listen().await;
        worker
    }

    async fn listen(&self) -> Option<PgListener> {
        let connected = async {
            let mut listener = PgListener::connect_with(&self.shared.pool).await?;
            listener.listen("outbox_ready").await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match connected.await {
            Ok(listener) => Some(listener),
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN outbox_ready failed; polling every {POLL:?}");
                None
            }
        }
    }

    /// One round: housekeeping, then either probe (paused) or claim and spawn.
    async fn step(&mut self) -> Wait {
        self.housekeeping().await;
        let state = match destination::load(&self.shared.pool).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the destination state");
                return Wait::for_notify(ERROR_PAUSE);
            }
        };
        observe::paused(state.is_paused());
        match state.paused_reason {
            Some(reason) => self.step_paused(reason).await,
            None => {
                if self.paused.take().is_some() {
                    tracing::info!("delivery resumed");
                }
                self.step_running().await
            }
        }
    }

    /// Claims due rows for the free slots, retries first but in at most half the
    /// slots, then first attempts, and starts a job per request.
    async fn step_running(&mut self) -> Wait {
        let concurrency = self.shared.settings.concurrency.max(1);
        let free = concurrency.saturating_sub(self.jobs.len());
        if free == 0 {
            return Wait {
                at_most: POLL,
                on_notify: false,
            };
        }
        let retry_slots = (concurrency / 2)
            .max(1)
            .saturating_sub(self.retry_jobs.len())
            .min(free);
        let Some(retries) = self.claim_and_spawn(Due::Retries, retry_slots).await else {
            return Wait::for_notify(ERROR_PAUSE);
        };
        let fresh_slots = free.saturating_sub(retries.jobs);
        let Some(fresh) = self.claim_and_spawn(Due::Fresh, fresh_slots).await else {
            return Wait::for_notify(ERROR_PAUSE);
        };
        if fresh.full {
            // Every slot is busy and more may be due: the next finished job wakes us.
            return Wait {
                at_most: POLL,
                on_notify: false,
            };
        }
        if retries.full {
            // Retries are waiting for a retry slot: a finished job frees one.
            return Wait::for_notify(POLL);
        }
        self.until_next_due().await
    }

    /// Claims rows of one sort for up to `slots` jobs and starts them. None on a
    /// database error.
    ///
    /// With bulk on, each kind is claimed on its own, so a slot gets a full batch of 25
    /// rows of one kind rather than half a batch of users and half of events; the kind
    /// that goes first rotates, so no kind waits behind another's backlog.
    async fn claim_and_spawn(&mut self, which: Due, slots: usize) -> Option<Claimed> {
        if slots == 0 {
            return Some(Claimed {
                jobs: 0,
                full: which == Due::Retries,
            });
        }
        if !self.bulk {
            return self.claim_kind(which, None, slots).await;
        }
        self.next_kind = (self.next_kind + 1) % KINDS.len();
        let mut done = Claimed {
            jobs: 0,
            full: false,
        };
        for turn in 0..KINDS.len() {
            let kind = KINDS[(self.next_kind + turn) % KINDS.len()];
            let left = slots.saturating_sub(done.jobs);
            if left == 0 {
                break;
            }
            // Transactions never batch: one row per slot. Users and events: a batch.
            let want = match kind {
                OperationKind::Transaction => left,
                OperationKind::User | OperationKind::Event => left * bulk::MAX_BATCH,
            };
            let claimed = self.claim_kind(which, Some(kind), want).await?;
            done.jobs += claimed.jobs;
            done.full |= claimed.full;
        }
        Some(done)
    }

    /// Claims up to `want` due rows (of `kind`, when given) and starts their jobs.
    async fn claim_kind(
        &mut self,
        which: Due,
        kind: Option<OperationKind>,
        want: usize,
    ) -> Option<Claimed> {
        let claimed =
            outbox::claim_due_of(&self.shared.pool, want as i64, LEASE, which, kind).await;
        let rows = match claimed {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim outbox rows");
                return None;
            }
        };
        let full = rows.len() == want;
        let jobs = bulk::plan(rows, self.bulk);
        let count = jobs.len();
        for job in jobs {
            self.spawn(job, which == Due::Retries);
        }
        Some(Claimed { jobs: count, full })
    }

    /// Sleep until the earliest retry is due, bounded by the poll; a little at least,
    /// so a row locked by another worker's claim in progress does not make us spin.
    async fn until_next_due(&self) -> Wait {
        match outbox::next_due_in(&self.shared.pool).await {
            Ok(Some(due)) => Wait::for_notify(due.max(Duration::from_millis(10))),
            Ok(None) => Wait::for_notify(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due time");
                Wait::for_notify(ERROR_PAUSE)
            }
        }
    }

    /// Paused by a 401/404: only a probe, one row every `pause_probe`, by one worker.
    async fn step_paused(&mut self, reason: String) -> Wait {
        if self.paused.as_deref() != Some(reason.as_str()) {
            tracing::warn!("delivery paused: {reason}");
            self.paused = Some(reason);
        }
        // Let calls already under way settle first; they will likely be refused too.
        if !self.jobs.is_empty() {
            return Wait::for_notify(POLL);
        }
        match self.probe().await {
            Ok(true) => Wait::for_notify(Duration::ZERO),
            Ok(false) => Wait::for_notify(POLL.min(self.shared.settings.pause_probe)),
            Err(e) => {
                tracing::warn!(error = %e, "probe failed on the database side");
                Wait::for_notify(ERROR_PAUSE)
            }
        }
    }

    /// Tries one due row when the probe is due; resumes delivery if WebEngage took it.
    /// Returns whether delivery resumed.
    async fn probe(&mut self) -> Result<bool, sqlx::Error> {
        let pool = &self.shared.pool;
        if !destination::take_probe(pool, self.shared.settings.pause_probe).await? {
            return Ok(false);
        }
        let Some(row) = claim_one(pool).await? else {
            return Ok(false);
        };
        tracing::info!(
            outbox_id = row.id,
            "probing WebEngage while delivery is paused"
        );
        if send::deliver_row(&self.shared, row).await != Verdict::Accepted {
            return Ok(false);
        }
        destination::resume(pool).await?;
        observe::paused(false);
        self.paused = None;
        tracing::info!("delivery resumed: WebEngage accepted the probe");
        Ok(true)
    }

    fn spawn(&mut self, job: Job, retry: bool) {
        let leases = match &job {
            Job::Single(row) => vec![row.lease()],
            Job::Batch(rows) => rows.iter().map(ClaimedRow::lease).collect(),
        };
        let shared = Arc::clone(&self.shared);
        let span = job_span(&job);
        let handle = self.jobs.spawn(
            async move {
                let verdict = bulk::deliver(&shared, job).await;
                tracing::info!(?verdict, "delivery attempt finished");
                verdict
            }
            .instrument(span),
        );
        self.leases.insert(handle.id(), leases);
        if retry {
            self.retry_jobs.insert(handle.id());
        }
    }

    /// SIGHUP: a rotated key in `WEBENGAGE_API_KEY_FILE` is read again, and a paused
    /// destination is probed at once instead of at the next `BRIDGE_PAUSE_PROBE`.
    async fn on_hangup(&mut self) {
        if let Some(path) = &self.api_key_file {
            match config::read_api_key_file(path) {
                Ok(key) => {
                    self.shared.client.set_api_key(key);
                    tracing::info!(file = %path.display(), "SIGHUP: API key read again");
                }
                Err(e) => tracing::warn!("SIGHUP: keeping the current API key: {e}"),
            }
        }
        match destination::probe_now(&self.shared.pool).await {
            Ok(()) => tracing::info!("SIGHUP: probing WebEngage now if delivery is paused"),
            Err(e) => tracing::warn!(error = %e, "SIGHUP: could not schedule a probe"),
        }
    }

    /// Waits for the first of: shutdown, a job finishing, a NOTIFY, SIGHUP, the timer.
    /// Returns whether SIGHUP came.
    async fn wait(&mut self, wait: Wait, shutdown: &CancellationToken) -> bool {
        let Worker {
            shared,
            jobs,
            retry_jobs,
            listener,
            leases,
            hangup,
            ..
        } = self;
        let hung_up = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        let notified = async {
            match listener.as_mut() {
                Some(l) if wait.on_notify => l.recv().await.map(|_| ()),
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {}
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                let finished = finished_id(&done);
                retry_jobs.remove(&finished);
                let held = leases.remove(&finished).unwrap_or_default();
                if let Err(e) = done {
                    tracing::error!(error = %e, "a delivery task failed");
                    release_all(&shared.pool, &held).await;
                }
            }
            heard = notified => {
                if let Err(e) = heard {
                    tracing::warn!(error = %e, "lost the LISTEN connection; polling until it is back");
                    *listener = None;
                }
            }
            Some(()) = hung_up => return true,
            _ = tokio::time::sleep(wait.at_most) => {}
        }
        false
    }

    /// Expired leases back to pending, retention purge, LISTEN reconnect: on their timers.
    async fn housekeeping(&mut self) {
        let now = Instant::now();
        if now >= self.next_sweep {
            self.next_sweep = now + LEASE_SWEEP;
            let held: Vec<Lease> = self.leases.values().flatten().copied().collect();
            if let Err(e) = outbox::renew_leases(&self.shared.pool, &held, LEASE).await {
                tracing::warn!(error = %e, rows = held.len(), "cannot renew leases; they expire in {LEASE:?}");
            }
            match outbox::release_expired_leases(&self.shared.pool).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "released expired leases"),
                Err(e) => tracing::warn!(error = %e, "cannot release expired leases"),
            }
            if let Err(e) = rate_windows::prune(&self.shared.pool, RATE_WINDOW_KEEP).await {
                tracing::warn!(error = %e, "cannot prune old rate windows");
            }
            if self.listener.is_none() {
                self.listener = self.listen().await;
            }
        }
        if now >= self.next_purge {
            self.next_purge = now + PURGE_EVERY;
            match crate::store::lifecycle::purge_expired(
                &self.shared.pool,
                self.shared.settings.retention,
                self.shared.settings.audit_retention,
                PURGE_BATCH,
            )
            .await
            {
                Ok(p) if p == Default::default() => {}
                Ok(p) => tracing::info!(
                    outbox = p.outbox,
                    inbound = p.inbound,
                    audit = p.audit,
                    "purged finished records past retention"
                ),
                Err(e) => tracing::warn!(error = %e, "retention purge failed"),
            }
        }
    }

    /// Lets calls in progress finish briefly, aborts the rest, and hands their rows
    /// back to pending so another worker can take them at once.
    async fn stop(mut self) {
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(done) = self.jobs.join_next_with_id().await {
                let id = finished_id(&done);
                if done.is_ok() {
                    self.leases.remove(&id);
                }
            }
        })
        .await;
        if drained.is_err() {
            self.jobs.abort_all();
            while let Some(done) = self.jobs.join_next_with_id().await {
                if done.is_ok() {
                    self.leases.remove(&finished_id(&done));
                }
            }
        }
        let held: Vec<Lease> = self.leases.drain().flat_map(|(_, l)| l).collect();
        release_all(&self.shared.pool, &held).await;
        if !held.is_empty() {
            tracing::info!(rows = held.len(), "released unfinished rows on shutdown");
        }
    }
}

/// Every log line of a job names its outbox rows and the webhook requests that stored
/// them, so one `request_id` search follows a record from its webhook to WebEngage.
fn job_span(job: &Job) -> tracing::Span {
    let rows: &[ClaimedRow] = match job {
        Job::Single(row) => std::slice::from_ref(row),
        Job::Batch(rows) => rows,
    };
    let outbox_ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut request_ids: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.inbound_request_id.as_deref())
        .collect();
    request_ids.dedup();
    tracing::info_span!(
        "delivery",
        outbox_ids = ?outbox_ids,
        request_ids = %request_ids.join(","),
    )
}

/// What one claim started.
struct Claimed {
    jobs: usize,
    /// The claim got all it asked for (or had no slot to ask for): more may be due.
    full: bool,
}

fn finished_id(done: &Result<(Id, Verdict), JoinError>) -> Id {
    match done {
        Ok((id, _)) => *id,
        Err(e) => e.id(),
    }
}

/// Back to pending now, uncharged. A lease already settled is simply not matched.
async fn release_all(pool: &PgPool, leases: &[Lease]) {
    for lease in leases {
        if let Err(e) = outbox::release(pool, *lease, None).await {
            tracing::warn!(outbox_id = lease.id, error = %e, "could not release a row; its lease will expire");
        }
    }
}

/// One due row for the probe, through the claims by kind: they walk the partial claim
/// indexes, where a claim of any kind in id order would walk the primary key past every
/// delivered row still kept (`BRIDGE_RETENTION`), every `BRIDGE_PAUSE_PROBE`.
async fn claim_one(pool: &PgPool) -> Result<Option<ClaimedRow>, sqlx::Error> {
    for which in [Due::Fresh, Due::Retries] {
        for kind in KINDS {
            let claimed = outbox::claim_due_of(pool, 1, LEASE, which, Some(kind)).await?;
            if let Some(row) = claimed.into_iter().next() {
                return Ok(Some(row));
            }
        }
    }
    Ok(None)
}
