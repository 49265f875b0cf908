//! The worker loop: `Worker::step` reads the destination's state and either claims due
//! rows for the free slots and starts a job per request, or (paused, degraded) probes
//! with one row; `run` loops it, waiting between steps for a job to finish, a NOTIFY, a
//! due retry or the slow poll. Tests drive `step` and `finish` themselves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::bulk;
use super::coalesce::MAX_MERGED;
use super::job::{self, Context, Heard, Job, Record, Report};
use super::maintenance::{self, LEASE, LeaseBook};
use super::observe;
use super::wakeups::{Wake, Wakeups};
use crate::config::{self, DeliverySettings, WebEngageSettings};
use crate::store::destination::{self, Capacity, Mode};
use crate::store::outbox::{self, ClaimedRow, Due, Lease};
use crate::store::settle;
use crate::webengage::OperationKind;
use crate::webengage::client::{ClientError, WebEngageClient};

/// The slow poll behind LISTEN/NOTIFY: also how soon another process's settle is seen.
const POLL: Duration = Duration::from_secs(2);
/// After a database error, before trying again.
const ERROR_PAUSE: Duration = Duration::from_secs(2);
/// The operation kinds: each is claimed on its own, with its own slots.
const KINDS: [OperationKind; 3] = [
    OperationKind::User,
    OperationKind::Event,
    OperationKind::Transaction,
];
/// On shutdown, calls in progress may finish this long: their answer settles the row
/// better than a resend would.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs until `shutdown` is cancelled, then hands unfinished rows back to pending.
pub async fn run(
    pool: PgPool,
    webengage: WebEngageSettings,
    settings: DeliverySettings,
    shutdown: CancellationToken,
) {
    let client = match WebEngageClient::new(webengage.account()) {
        Ok(client) => client,
        Err(e) => return idle(&pool, &e.to_string(), &shutdown).await,
    };
    let ctx = Arc::new(Context::new(pool.clone(), client, &webengage, &settings));
    let mut worker = Worker::new(ctx.clone(), &webengage, &settings).await;
    let services = maintenance::spawn_all(ctx, worker.leases.clone(), &settings, &shutdown);
    let key_file = webengage.api_key_file.filter(|p| !p.as_os_str().is_empty());
    let mut wakeups = Wakeups::new(pool).await;
    while !shutdown.is_cancelled() {
        let step = worker.step().await;
        let wait = worker.wait_after(&step).await;
        if worker.wait(wait, &mut wakeups, &shutdown).await {
            worker.on_hangup(key_file.as_ref()).await;
        }
    }
    worker.stop().await;
    for service in services {
        let _ = service.await;
    }
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

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Running: claimed `rows` (heads and merged rows) and started `jobs`; `more`
    /// when a claim got all it asked for (more may be due once a slot frees).
    Claimed {
        rows: usize,
        jobs: usize,
        more: bool,
    },
    /// Every slot of every kind is busy.
    Busy,
    /// Paused or degraded: `probe` is the probe's job when it was the time and a row
    /// was due, run to its end.
    Probed { mode: Mode, probe: Option<Report> },
    /// The database did not answer.
    DatabaseError,
}

/// What to wait for before the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub at_most: Duration,
    /// Whether a NOTIFY should wake us.
    pub on_notify: bool,
}

impl Wait {
    fn for_notify(at_most: Duration) -> Wait {
        Wait {
            at_most: at_most.min(POLL),
            on_notify: true,
        }
    }
}

/// A running job's kind, and whether it retries earlier failures.
#[derive(Debug, Clone, Copy)]
struct Slot {
    kind: Option<OperationKind>,
    retry: bool,
}

pub struct Worker {
    ctx: Arc<Context>,
    /// Whether users and events go through the bulk endpoints.
    bulk: bool,
    concurrency: usize,
    jobs: JoinSet<Report>,
    running: HashMap<Id, Slot>,
    leases: LeaseBook,
    /// The mode last logged, so a change is announced once.
    announced: Mode,
    /// Which of `KINDS` claims first (rotates every claim).
    next_kind: usize,
}

impl Worker {
    /// A worker on `pool` without the maintenance services and wakeups `run` adds: for
    /// whoever steps it (tests, tools).
    pub async fn connect(
        pool: PgPool,
        webengage: &WebEngageSettings,
        settings: &DeliverySettings,
    ) -> Result<Worker, ClientError> {
        let client = WebEngageClient::new(webengage.account())?;
        let ctx = Arc::new(Context::new(pool, client, webengage, settings));
        Ok(Worker::new(ctx, webengage, settings).await)
    }

    pub async fn new(
        ctx: Arc<Context>,
        webengage: &WebEngageSettings,
        settings: &DeliverySettings,
    ) -> Worker {
        // New credentials may have fixed an earlier pause: find out at once.
        if let Err(e) = destination::probe_now(&ctx.pool).await {
            tracing::warn!(error = %e, "could not schedule a probe");
        }
        if let Err(e) = destination::set_capacity(&ctx.pool, capacity(webengage)).await {
            tracing::warn!(error = %e, "could not record the delivery capacity");
        }
        Worker {
            ctx,
            bulk: webengage.bulk,
            concurrency: settings.concurrency.max(1),
            jobs: JoinSet::new(),
            running: HashMap::new(),
            leases: LeaseBook::default(),
            announced: Mode::Running,
            next_kind: 0,
        }
    }

    /// One round: read the destination's state, then probe (paused, degraded) or claim
    /// due rows for the free slots and start their jobs.
    pub async fn step(&mut self) -> Step {
        let state = match destination::load(&self.ctx.pool).await {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the destination state");
                return Step::DatabaseError;
            }
        };
        let mode = state.mode();
        observe::paused(state.is_paused());
        observe::degraded(state.is_degraded());
        self.announce(&mode);
        match mode {
            Mode::Running => self.claim_and_spawn().await,
            mode => self.probe(mode, state.failed_probes).await,
        }
    }

    /// Waits for every running job to end, and returns what they did (tests; shutdown).
    pub async fn finish(&mut self) -> Report {
        let mut report = Report::default();
        while let Some(done) = self.jobs.join_next_with_id().await {
            report.add(self.finished(done).await);
        }
        report
    }

    /// Rows claimed and started, then their jobs run to the end: one step, whole.
    pub async fn run_once(&mut self) -> (Step, Report) {
        let step = self.step().await;
        let report = self.finish().await;
        (step, report)
    }

    fn announce(&mut self, mode: &Mode) {
        if *mode == self.announced {
            return;
        }
        match mode {
            Mode::Running => tracing::info!("delivery resumed"),
            Mode::Paused(reason) => tracing::warn!("delivery paused: {reason}"),
            Mode::Degraded(reason) => tracing::warn!("delivery degraded: {reason}"),
        }
        self.announced = mode.clone();
    }

    /// Claims due rows for the free slots of each kind (retries in at most half of a
    /// kind's slots, so a retry storm cannot starve first attempts) and starts a job
    /// per request. Each kind has its own slots, so a kind waiting for its quota never
    /// holds back another; the kind that claims first rotates.
    async fn claim_and_spawn(&mut self) -> Step {
        let (mut rows, mut jobs, mut more, mut free_any) = (0, 0, false, false);
        self.next_kind = (self.next_kind + 1) % KINDS.len();
        for turn in 0..KINDS.len() {
            let kind = KINDS[(self.next_kind + turn) % KINDS.len()];
            let busy = self.busy(kind, false);
            let free = self.concurrency.saturating_sub(busy);
            if free == 0 {
                more = true;
                continue;
            }
            free_any = true;
            let retry_slots = (self.concurrency / 2)
                .max(1)
                .saturating_sub(self.busy(kind, true))
                .min(free);
            for (which, slots) in [(Due::Retries, retry_slots), (Due::Fresh, usize::MAX)] {
                let slots = slots.min(self.concurrency.saturating_sub(self.busy(kind, false)));
                if slots == 0 {
                    continue;
                }
                match self.claim_kind(which, kind, slots).await {
                    Ok(claimed) => {
                        rows += claimed.rows;
                        jobs += claimed.jobs;
                        more |= claimed.full;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, kind = kind.as_str(), "cannot claim outbox rows");
                        return Step::DatabaseError;
                    }
                }
            }
        }
        if !free_any {
            return Step::Busy;
        }
        Step::Claimed { rows, jobs, more }
    }

    /// Running jobs of `kind` (only those retrying earlier failures, with `retries`).
    fn busy(&self, kind: OperationKind, retries: bool) -> usize {
        self.running
            .values()
            .filter(|s| s.kind == Some(kind) && (s.retry || !retries))
            .count()
    }

    /// Claims due heads of `kind` for up to `slots` jobs, the user updates queued behind
    /// user heads when coalescing, and starts the jobs.
    async fn claim_kind(
        &mut self,
        which: Due,
        kind: OperationKind,
        slots: usize,
    ) -> Result<Claimed, sqlx::Error> {
        let per_job = match kind {
            OperationKind::User | OperationKind::Event if self.bulk => bulk::MAX_BATCH,
            _ => 1,
        };
        let want = slots * per_job;
        let pool = &self.ctx.pool;
        let heads = outbox::claim_due_of(pool, want as i64, LEASE, which, Some(kind)).await?;
        let full = heads.len() == want;
        let followers = if self.ctx.coalesce_users && kind == OperationKind::User {
            let refs: Vec<&ClaimedRow> = heads.iter().collect();
            let claimed = outbox::claim_followers(pool, &refs, MAX_MERGED as i64 - 1, LEASE).await;
            match claimed {
                Ok(followers) => followers,
                Err(e) => {
                    // The heads go out alone; their followers stay queued.
                    tracing::warn!(error = %e, "cannot claim the user updates to merge");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let rows = heads.len() + followers.len();
        let jobs = bulk::plan(heads, followers, self.bulk);
        let count = jobs.len();
        for job in jobs {
            self.spawn(job, which == Due::Retries);
        }
        Ok(Claimed {
            rows,
            jobs: count,
            full,
        })
    }

    /// Paused by a 401/404 or degraded by failures in a row: one row, when the probe is
    /// due, by one worker; delivery resumes when WebEngage answers it.
    async fn probe(&mut self, mode: Mode, failed_probes: i32) -> Step {
        // Let calls already under way settle first.
        if !self.jobs.is_empty() {
            return Step::Probed { mode, probe: None };
        }
        let every = match &mode {
            Mode::Degraded(_) => {
                let backoff = self.ctx.probe_backoff();
                let doublings = u32::try_from(failed_probes).unwrap_or(0).min(20);
                backoff.base.saturating_mul(1 << doublings).min(backoff.max)
            }
            _ => self.ctx.pause_probe,
        };
        match self.probe_once(&mode, every).await {
            Ok(probe) => Step::Probed { mode, probe },
            Err(e) => {
                tracing::warn!(error = %e, "probe failed on the database side");
                Step::DatabaseError
            }
        }
    }

    async fn probe_once(
        &mut self,
        mode: &Mode,
        every: Duration,
    ) -> Result<Option<Report>, sqlx::Error> {
        let pool = &self.ctx.pool;
        if !destination::take_probe(pool, every).await? {
            return Ok(None);
        }
        let Some(row) = claim_one(pool).await? else {
            return Ok(None);
        };
        tracing::info!(
            outbox_id = row.id,
            "probing WebEngage while delivery is {}",
            mode.name()
        );
        let job = Job {
            records: vec![Record::new(row)],
            probe: true,
        };
        let span = job.span();
        let report = job::run(&self.ctx, job).instrument(span).await;
        let answered = match mode {
            Mode::Paused(_) => report.heard == Heard::Accepted,
            _ => matches!(report.heard, Heard::Accepted | Heard::Limited),
        };
        if answered {
            destination::resume(pool).await?;
            self.ctx
                .breaker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .reset();
            observe::paused(false);
            observe::degraded(false);
            tracing::info!("delivery resumed: WebEngage answered the probe");
        }
        Ok(Some(report))
    }

    fn spawn(&mut self, job: Job, retry: bool) {
        let leases = job.leases();
        let slot = Slot {
            kind: job.kind(),
            retry,
        };
        let ctx = Arc::clone(&self.ctx);
        let span = job.span();
        let handle = self.jobs.spawn(
            async move {
                let report = job::run(&ctx, job).await;
                tracing::info!(?report, "delivery attempt finished");
                report
            }
            .instrument(span),
        );
        self.leases.hold(handle.id(), leases);
        self.running.insert(handle.id(), slot);
    }

    /// Forgets a finished job; a job that died hands its rows back.
    async fn finished(&mut self, done: Result<(Id, Report), JoinError>) -> Report {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        self.running.remove(&id);
        let held = self.leases.drop_job(id);
        match done {
            Ok((_, report)) => report,
            Err(e) => {
                if e.is_panic() {
                    tracing::error!(error = %e, "a delivery task failed");
                }
                release_all(&self.ctx.pool, &held).await;
                Report::default()
            }
        }
    }

    /// How long to wait after `step`.
    pub async fn wait_after(&self, step: &Step) -> Wait {
        match step {
            Step::DatabaseError => Wait::for_notify(ERROR_PAUSE),
            // The next finished job wakes us.
            Step::Busy => Wait {
                at_most: POLL,
                on_notify: false,
            },
            Step::Claimed { more: true, .. } => Wait::for_notify(POLL),
            Step::Claimed { .. } => self.until_next_due().await,
            Step::Probed { probe: Some(_), .. } => Wait::for_notify(Duration::ZERO),
            Step::Probed { .. } => Wait::for_notify(POLL),
        }
    }

    /// Sleep until the earliest retry is due, bounded by the poll; a little at least,
    /// so a row locked by another worker's claim in progress does not make us spin.
    async fn until_next_due(&self) -> Wait {
        match outbox::next_due_in(&self.ctx.pool).await {
            Ok(Some(due)) => Wait::for_notify(due.max(Duration::from_millis(10))),
            Ok(None) => Wait::for_notify(POLL),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the next due time");
                Wait::for_notify(ERROR_PAUSE)
            }
        }
    }

    /// Waits for the first of: shutdown, a job finishing, a NOTIFY, SIGHUP, the timer.
    /// Returns whether SIGHUP came.
    pub async fn wait(
        &mut self,
        wait: Wait,
        wakeups: &mut Wakeups,
        shutdown: &CancellationToken,
    ) -> bool {
        wakeups.reconnect_if_due().await;
        let jobs = &mut self.jobs;
        let done = tokio::select! {
            biased;
            _ = shutdown.cancelled() => None,
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => Some(done),
            wake = wakeups.next(wait.on_notify) => return wake == Wake::HangUp,
            _ = tokio::time::sleep(wait.at_most) => None,
        };
        if let Some(done) = done {
            self.finished(done).await;
        }
        false
    }

    /// SIGHUP: a rotated key in `WEBENGAGE_API_KEY_FILE` is read again, and a paused
    /// destination is probed at once instead of at the next `BRIDGE_PAUSE_PROBE`.
    async fn on_hangup(&mut self, key_file: Option<&PathBuf>) {
        if let Some(path) = key_file {
            match config::read_api_key_file(path) {
                Ok(key) => {
                    self.ctx.client.set_api_key(key);
                    tracing::info!(file = %path.display(), "SIGHUP: API key read again");
                }
                Err(e) => tracing::warn!("SIGHUP: keeping the current API key: {e}"),
            }
        }
        match destination::probe_now(&self.ctx.pool).await {
            Ok(()) => tracing::info!("SIGHUP: probing WebEngage now if delivery is paused"),
            Err(e) => tracing::warn!(error = %e, "SIGHUP: could not schedule a probe"),
        }
    }

    /// Lets calls in progress finish briefly, aborts the rest, and hands their rows
    /// back to pending so another worker can take them at once.
    pub async fn stop(mut self) {
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while let Some(done) = self.jobs.join_next_with_id().await {
                if let Ok((id, _)) = done {
                    self.leases.drop_job(id);
                }
            }
        })
        .await;
        if drained.is_err() {
            self.jobs.abort_all();
            while let Some(done) = self.jobs.join_next_with_id().await {
                if let Ok((id, _)) = done {
                    self.leases.drop_job(id);
                }
            }
        }
        let held = self.leases.take_all();
        release_all(&self.ctx.pool, &held).await;
        if !held.is_empty() {
            tracing::info!(rows = held.len(), "released unfinished rows on shutdown");
        }
    }
}

/// Records per minute of each kind at the configured quotas.
fn capacity(webengage: &WebEngageSettings) -> Capacity {
    let per_bulk_call = bulk::MAX_BATCH as u32;
    let (users, events) = if webengage.bulk {
        (
            webengage.bulk_users_per_min().saturating_mul(per_bulk_call),
            webengage
                .bulk_events_per_min()
                .saturating_mul(per_bulk_call),
        )
    } else {
        (
            webengage.limit_users_per_min,
            webengage.limit_events_per_min,
        )
    };
    Capacity {
        users,
        events,
        transactions: webengage.limit_transaction_per_min,
    }
}

/// What one claim started.
struct Claimed {
    rows: usize,
    jobs: usize,
    /// The claim got all it asked for: more may be due.
    full: bool,
}

/// Back to pending now, uncharged. A lease already settled is simply not matched.
async fn release_all(pool: &PgPool, leases: &[Lease]) {
    if let Err(e) = settle::release_many(pool, leases).await {
        tracing::warn!(rows = leases.len(), error = %e, "could not release rows; their leases will expire");
    }
}

/// One due row for a probe, through the claims by kind: they walk the partial claim
/// indexes, where a claim of any kind in id order would walk the primary key past every
/// delivered row still kept (`BRIDGE_RETENTION`).
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
