//! Delivery: the outbox worker that turns outbox records into step emails, webhooks and
//! CSM tasks.
//!
//! A record is *claimed* (leased to this worker for a while), delivered, and *finished*
//! (sent, retried later, skipped or failed); a worker that dies mid-delivery lets its lease
//! run out and another takes the record over. What makes each step produce its output once:
//!
//! - **Tasks** are written in the same transaction that marks the record sent, and an open
//!   task with the same key is updated, never duplicated.
//! - **Email without an SMTP server** goes to `<outbox_dir>/<key>.eml`, named by the
//!   record's idempotency key and written atomically, so a repeat overwrites, never adds.
//! - **Email over SMTP** carries a Message-ID derived from the same key, so a mail that is
//!   sent again after a crash between sending and marking is recognisable as the same mail.
//! - **Webhooks** carry the key as `webhook-id` on every attempt, so the receiver drops a
//!   repeat after a crash between its answer and the record being marked.
//!
//! Claimed records are delivered with bounded concurrency; records for the same recipient
//! go one after another, so the frequency cap counts each mail before the next.

pub mod email_file;
pub mod notices;
pub mod receiver;
pub mod recipients;
pub mod signin;
pub mod smtp;
pub mod tasks;
pub mod unsubscribe;
pub mod webhook;
pub mod window;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::OnceCell;

use crate::clock::to_millis;
use crate::definitions::Definitions;
use crate::store::{
    DeliveryOutcome, EmailPayload, OutboxItem, Payload, Store, StoreError, Suppression,
    TaskPayload, TaskWrite, WebhookPayload,
};
use email_file::{Envelope, Sender};
use recipients::{Hold, Recipients, address_of};
use unsubscribe::UnsubscribeKey;

/// Records claimed per round, and most webhook outcomes waiting for their marks.
const CLAIM: i64 = 200;
/// Most outcomes marked per transaction. A crash loses at most the marks in flight: those
/// records are delivered again, under the same idempotency key. A mail's delivery waits for
/// its mark, so at most one mail per connection is ever sent but unmarked; webhooks run at
/// most [`CLAIM`] outcomes ahead of their marks.
const MARK_BATCH: usize = 100;
/// How long the writer waits for more outcomes when those it holds are webhooks' alone
/// (their deliveries do not wait for the mark). Written as they came, webhook marks averaged
/// eight to a statement; gathered this way, the delivery benchmark's CPU time per webhook
/// fell from 69.5 to 57 µs (its HTTP sink's included).
const MARK_LINGER: Duration = Duration::from_millis(3);
/// Deliveries in flight at once (per worker), unless `delivery.concurrency` says otherwise.
pub const CONCURRENCY: usize = 16;
/// How long a claim lasts before another worker may take the record over, unless
/// `delivery.lease` says otherwise.
const LEASE: Duration = Duration::from_secs(5 * 60);
/// Times a task is planned when another engine takes the chosen CSM's last slot first.
const PLANS: usize = 5;
/// Why an address can be on the suppression list.
pub const SUPPRESSION_REASONS: &[&str] = &["unsubscribed", "hard_bounced", "manual"];
/// Checks a suppression reason given by a user.
pub fn check_suppression_reason(reason: &str) -> Result<(), String> {
    if SUPPRESSION_REASONS.contains(&reason) {
        Ok(())
    } else {
        Err(format!(
            "unknown reason `{reason}`; use one of {}",
            SUPPRESSION_REASONS.join(", ")
        ))
    }
}

/// Attempts before a record is given up (dead letter).
pub const MAX_ATTEMPTS: i64 = 8;

/// How one attempt at one channel went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Delivered; what the receiver said.
    Sent(String),
    /// Failed for now; retry (after this long, if the receiver said so).
    Temporary(String, Option<Duration>),
    /// Failed for good.
    Permanent(String),
    /// The mail server says the address does not exist: failed, and the address is
    /// suppressed as hard-bounced.
    Bounced(String),
    /// The endpoint answered 410 Gone: failed, and the endpoint is disabled.
    EndpointGone(String),
    /// Not attempted: held for later or skipped on purpose.
    Held(DeliveryOutcome),
}

/// What one delivery round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Emails sent or written.
    pub emails: u64,
    /// Webhooks delivered.
    pub webhooks: u64,
    /// Tasks created.
    pub tasks_created: u64,
    /// Open tasks updated instead of duplicated.
    pub tasks_updated: u64,
    /// Attempts that will be retried.
    pub retried: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// Mails held for their recipient's send window or the frequency cap.
    pub deferred: u64,
    /// Mails not sent on purpose: suppressed recipients, over the frequency cap.
    pub skipped: u64,
}

impl DeliveryReport {
    /// One line saying what the delivery round did.
    pub fn describe(&self) -> String {
        use crate::text::count;
        format!(
            "delivered: {}, {}, {} created, {} updated, {} to retry, {} failed, {} held (send window or frequency cap), {} skipped (suppressed or over the cap)",
            count(self.emails, "email", "emails"),
            count(self.webhooks, "webhook", "webhooks"),
            count(self.tasks_created, "task", "tasks"),
            count(self.tasks_updated, "task", "tasks"),
            self.retried,
            self.failed,
            self.deferred,
            self.skipped
        )
    }

    /// Adds another round's counts.
    pub fn add(&mut self, other: &DeliveryReport) {
        self.emails += other.emails;
        self.webhooks += other.webhooks;
        self.tasks_created += other.tasks_created;
        self.tasks_updated += other.tasks_updated;
        self.retried += other.retried;
        self.failed += other.failed;
        self.deferred += other.deferred;
        self.skipped += other.skipped;
    }

    /// True when nothing was delivered or failed.
    pub fn is_idle(&self) -> bool {
        *self == Self::default()
    }
}

/// The outbox folder named in `touchline.yaml` (default `outbox`), under the project.
pub fn outbox_dir(definitions: &Definitions) -> PathBuf {
    definitions.root.join(
        definitions
            .config
            .email
            .outbox_dir
            .as_deref()
            .unwrap_or("outbox"),
    )
}

/// Deliveries in flight at once: `delivery.concurrency`, else [`CONCURRENCY`].
fn concurrency(definitions: &Definitions) -> usize {
    definitions
        .config
        .delivery
        .concurrency
        .unwrap_or(CONCURRENCY)
        .max(1)
}

/// An outcome to mark (none: only a wait for those handed over before), with whom to tell
/// once it is stored.
type Mark = (
    Option<(i64, DeliveryOutcome)>,
    Option<tokio::sync::oneshot::Sender<()>>,
);
/// Where deliveries hand their outcomes to the writer.
#[derive(Debug, Clone)]
struct Marks(tokio::sync::mpsc::Sender<Mark>);

impl Marks {
    /// Hands `mark` over to be marked in a later batch. Err if the writer stopped (on an
    /// error of its own, which the delivery call reports): nothing more is delivered.
    async fn send(&self, mark: Mark) -> Result<(), StoreError> {
        self.0.send(mark).await.map_err(|_| writer_stopped())
    }

    /// Hands `outcome` over (or nothing) and waits until it, and every outcome handed over
    /// before, is stored.
    async fn stored(&self, outcome: Option<(i64, DeliveryOutcome)>) -> Result<(), StoreError> {
        let (stored, ack) = tokio::sync::oneshot::channel();
        self.send((outcome, Some(stored))).await?;
        ack.await.map_err(|_| writer_stopped())
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Writer("the writer of delivery outcomes stopped".into())
}

/// A step email that may not go now: its recipient is suppressed, outside the send window or
/// over the frequency cap. Notices to CSMs skip those checks.
fn hold_email<S: Store>(
    recipients: &Recipients,
    deliverer: &Worker<S>,
    item: &OutboxItem,
    mail: &EmailPayload,
    sent: &[i64],
    now: DateTime<Utc>,
    report: &mut DeliveryReport,
) -> Option<Attempt> {
    if mail.notice {
        return None;
    }
    match recipients.hold(&deliverer.definitions, item, &mail.to, sent, now)? {
        Hold::Until(opening, why) => {
            report.deferred += 1;
            Some(Attempt::Held(DeliveryOutcome::Defer {
                until: to_millis(opening),
                why,
            }))
        }
        Hold::Skip(why) => {
            report.skipped += 1;
            Some(Attempt::Held(DeliveryOutcome::Skipped(why)))
        }
    }
}

/// The meta key that marks a webhook endpoint disabled (its value: the URL and why).
fn disabled_key(endpoint: &str) -> String {
    format!("webhook_disabled:{endpoint}")
}

/// The meta key of the installation's random id.
const INSTALLATION_KEY: &str = "installation_id";

/// Delivers outbox records for one project. Cheap to clone: clones share one [`Worker`].
#[derive(Debug, Clone)]
pub struct Deliverer<S: Store>(Arc<Worker<S>>);

impl<S: Store> std::ops::Deref for Deliverer<S> {
    type Target = Worker<S>;

    fn deref(&self) -> &Worker<S> {
        &self.0
    }
}

impl<S: Store> Deliverer<S> {
    /// A deliverer writing `.eml` files into `outbox_dir` (when no SMTP server is set).
    pub fn new(definitions: Arc<Definitions>, store: S, outbox_dir: PathBuf) -> Self {
        Self(Arc::new(Worker::new(definitions, store, outbox_dir)))
    }

    /// A deliverer that decides everything a real one does and sends nothing (see
    /// [`Worker::simulated`]).
    pub fn simulated(definitions: Arc<Definitions>, store: S) -> Self {
        Self(Arc::new(Worker::simulated(definitions, store)))
    }

    /// Reads webhook signing secrets from `env` instead of the process environment; for a
    /// deliverer not cloned yet (a clone keeps the secrets it has).
    pub fn with_secrets(self, env: impl Fn(&str) -> Option<String>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(worker) => Self(Arc::new(worker.with_secrets(env))),
            Err(shared) => Self(shared),
        }
    }

    /// Delivers everything due at `now`.
    ///
    /// The rounds run as a task on the runtime's workers rather than on the caller's thread
    /// (often the thread that blocks on the runtime): every claim, delivery and mark wakes
    /// the round's loop, and on the caller's thread each wake crossed threads. Spawned, the
    /// delivery benchmark's webhooks went from about 30 000 to 33 000–35 000 calls/s.
    pub async fn deliver_due(&self, now: DateTime<Utc>) -> Result<DeliveryReport, StoreError> {
        let deliverer = self.clone();
        tokio::spawn(async move { deliverer.deliver_rounds(now).await })
            .await
            .map_err(|e| StoreError::Writer(e.to_string()))?
    }

    /// Claims and delivers batches until none is left.
    async fn deliver_rounds(&self, now: DateTime<Utc>) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        let kinds = ["task", "email", "webhook"];
        let settings = &self.definitions.config.delivery;
        let lease = settings.lease.as_ref().map_or(LEASE, |l| l.value.0);
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let concurrency = concurrency(&self.definitions);
        self.read_disabled_endpoints().await?;
        // Open tasks are counted afresh each round: CSMs close tasks between rounds.
        self.assigning.lock().await.forget();
        let started = std::time::Instant::now();
        // The clock moves on during a long round: each claim's lease starts when it is
        // taken, so a late batch is not already expired for the other engines. Leases alone
        // follow that monotonic clock; every time stored on a record is `now`, so a pass at
        // an injected time is reproducible.
        let claim = |worker: Arc<Worker<S>>| {
            let lease_clock =
                now + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
            tokio::spawn(async move {
                let claimed = std::time::Instant::now();
                let items = worker
                    .store
                    .claim_outbox(
                        &kinds,
                        to_millis(lease_clock),
                        &worker.owner,
                        lease_ms,
                        CLAIM,
                    )
                    .await?;
                Ok::<_, StoreError>((claimed, items))
            })
        };
        // Outcomes are marked by one writer beside the deliveries, many per transaction:
        // whatever arrived while its previous write ran.
        let (marks, marker) = self.marker(now);
        let mut next = claim(self.0.clone());
        // Whether a round ran after the pending claim was taken: it may have added records
        // (a task's notice to its CSM) that the claim could not see yet.
        let mut delivered_since_claim = false;
        let mut failure = None;
        loop {
            let (claimed, items) = match next.await {
                Ok(Ok(claimed)) => claimed,
                Ok(Err(error)) => break failure = Some(error),
                Err(error) => break failure = Some(StoreError::Writer(error.to_string())),
            };
            if items.is_empty() {
                if !std::mem::take(&mut delivered_since_claim) {
                    break;
                }
                next = claim(self.0.clone());
                continue;
            }
            // A batch whose lease is half gone when its turn comes (it was claimed ahead of
            // a round stuck on slow servers) is not delivered: its lease runs out and any
            // engine takes it then, so no record is ever delivered by two. (So does a batch
            // claimed ahead of a round that fails: as after a crash.)
            if claimed.elapsed() > lease / 2 {
                next = claim(self.0.clone());
                continue;
            }
            // The next batch is claimed while this one is delivered, so a round does not
            // wait for the database between batches; unless this one holds mails that wait
            // for their marks (a store that does not note accepted mails): a claim beside
            // them would widen the window in which a crash sends a mail twice.
            let mails = items
                .iter()
                .any(|item| matches!(item.record.payload, Payload::Email(_)));
            let ahead = (!mails || self.store.notes_accepted()).then(|| claim(self.0.clone()));
            delivered_since_claim = ahead.is_some();
            if let Err(error) = self
                .deliver_round(items, mails, &marks, concurrency, now, &mut report)
                .await
            {
                break failure = Some(error);
            }
            next = ahead.unwrap_or_else(|| claim(self.0.clone()));
        }
        drop(marks);
        // The writer's own error first: deliveries stop with `writer_stopped` after it.
        marker
            .await
            .map_err(|e| StoreError::Writer(e.to_string()))??;
        failure.map_or(Ok(report), Err)
    }

    /// Delivers one claimed batch: one queue per recipient, in order, the queues side by
    /// side. Step emails already sent in earlier rounds count for the frequency cap: a round
    /// with mails ends once its marks are stored, so they are when the next one reads them.
    /// `mails`: whether `items` holds any.
    async fn deliver_round(
        &self,
        items: Vec<OutboxItem>,
        mails: bool,
        marks: &Marks,
        concurrency: usize,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let mut recipients = Recipients::read(&self.store, &self.definitions, &items, now).await?;
        let mut queues: BTreeMap<(String, String), Vec<OutboxItem>> = BTreeMap::new();
        for item in items {
            let recipient = (
                item.record.account_id.clone(),
                item.record.contact_id.clone(),
            );
            queues.entry(recipient).or_default().push(item);
        }
        let queues: Vec<(Vec<i64>, Vec<OutboxItem>)> = queues
            .into_iter()
            .map(|((account, contact), queue)| (recipients.sent_to(&account, &contact), queue))
            .collect();
        let recipients = Arc::new(recipients);
        // Each recipient's queue is a task of its own, so deliveries use every core.
        let mut rounds = futures_util::stream::iter(queues)
            .map(|(sent, queue)| {
                let worker = self.0.clone();
                let recipients = recipients.clone();
                let marks = marks.clone();
                tokio::spawn(async move {
                    worker
                        .deliver_queue(queue, &recipients, sent, &marks, now)
                        .await
                })
            })
            .buffer_unordered(concurrency);
        let mut failure = None;
        while let Some(done) = rounds.next().await {
            match done {
                Ok(Ok(round)) => report.add(&round),
                Ok(Err(error)) => failure = Some(error),
                Err(error) => failure = Some(StoreError::Writer(error.to_string())),
            }
        }
        // A round with mails ends once its marks are stored: the next round's frequency cap
        // counts the mails this one sent.
        if mails && failure.is_none() {
            marks.stored(None).await?;
        }
        failure.map_or(Ok(()), Err)
    }
}

/// What one deliverer's deliveries share: settings, channels, keys, the task-assignment lock.
#[derive(Debug)]
pub struct Worker<S: Store> {
    definitions: Arc<Definitions>,
    store: S,
    owner: String,
    outbox_dir: PathBuf,
    /// `email.from` and `email.reply_to`, or why one is not an address.
    sender: Result<Sender, String>,
    smtp: Option<Result<smtp::SmtpChannel, String>>,
    webhooks: webhook::WebhookChannel,
    unsubscribe: OnceCell<UnsubscribeKey>,
    installation: OnceCell<String>,
    /// Tasks are assigned one at a time, so two at once cannot both see a CSM's last free
    /// slot; the lock holds the open tasks per CSM as this worker counts them.
    assigning: tokio::sync::Mutex<tasks::OpenTasks>,
    /// Endpoints disabled after a 410: name → the URL that answered it and why (read once
    /// per round).
    disabled: std::sync::Mutex<BTreeMap<String, String>>,
    /// Records what it would send without sending it (journey tests, plans).
    simulated: bool,
}

impl<S: Store> Worker<S> {
    /// A worker writing `.eml` files into `outbox_dir` (when no SMTP server is set).
    pub fn new(definitions: Arc<Definitions>, store: S, outbox_dir: PathBuf) -> Self {
        let owner = format!("{}-{}", std::process::id(), rand::random::<u32>());
        let smtp = definitions.config.email.smtp.as_ref().map(|server| {
            smtp::SmtpChannel::new(server, concurrency(&definitions), &definitions.root)
        });
        let webhooks = webhook::WebhookChannel::new(&definitions.config.webhooks, &|name| {
            std::env::var(name).ok()
        });
        let sender = Sender::of(&definitions.config.email);
        Self {
            definitions,
            store,
            owner,
            outbox_dir,
            sender,
            smtp,
            webhooks,
            unsubscribe: OnceCell::new(),
            installation: OnceCell::new(),
            assigning: tokio::sync::Mutex::new(tasks::OpenTasks::default()),
            disabled: std::sync::Mutex::new(BTreeMap::new()),
            simulated: false,
        }
    }

    /// A worker that decides everything a real one does (send windows, the frequency cap,
    /// suppressions, task assignment) and marks mails and webhooks sent without sending
    /// them: for journey tests and plans, which must never reach a customer.
    pub fn simulated(definitions: Arc<Definitions>, store: S) -> Self {
        let mut deliverer = Self::new(definitions, store, PathBuf::new());
        deliverer.smtp = None;
        deliverer.simulated = true;
        deliverer
    }

    /// Reads webhook signing secrets from `env` instead of the process environment.
    pub fn with_secrets(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        self.webhooks = webhook::WebhookChannel::new(&self.definitions.config.webhooks, &env);
        self
    }

    /// The key signing unsubscribe links (read once).
    pub async fn unsubscribe_key(&self) -> Result<&UnsubscribeKey, StoreError> {
        self.unsubscribe
            .get_or_try_init(|| UnsubscribeKey::load(&self.definitions.config, &self.store))
            .await
    }

    /// This installation's random id (made on first use, kept in the database and shared by
    /// every engine process on it), which makes Message-IDs unique across installations.
    pub async fn installation_id(&self) -> Result<&str, StoreError> {
        let id = self
            .installation
            .get_or_try_init(|| async {
                let fresh: String = (0..8)
                    .map(|_| format!("{:02x}", rand::random::<u8>()))
                    .collect();
                self.store.meta_or_insert(INSTALLATION_KEY, &fresh).await
            })
            .await?;
        Ok(id)
    }

    /// Delivers one recipient's records in order, given when step emails went to it lately.
    /// A mail the server took is stored as such before the next goes: noted in the store's
    /// journal of accepted mails, or, where it keeps none, by waiting for its mark (a crash
    /// right after the server took it repeats at most that one mail). Other outcomes are
    /// marked in batches, tasks as they are written.
    async fn deliver_queue(
        &self,
        queue: Vec<OutboxItem>,
        recipients: &Recipients,
        mut sent: Vec<i64>,
        marks: &Marks,
        now: DateTime<Utc>,
    ) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        for item in queue {
            let is_email = matches!(item.record.payload, Payload::Email(_));
            let Some(outcome) = self
                .deliver(item, recipients, &sent, now, &mut report)
                .await?
            else {
                continue;
            };
            if is_email && matches!(outcome.1, DeliveryOutcome::Sent(_)) {
                sent.push(to_millis(now));
            }
            // A mail the server took is noted at once where the store can (its mark then
            // goes with others); else it waits for its mark. Other outcomes go with the next
            // batch: a webhook's (receivers drop a repeat by its id), a mail not taken.
            let noted = match &outcome {
                (id, DeliveryOutcome::Sent(result)) if is_email => {
                    self.note_accepted(*id, to_millis(now), result)
                }
                _ => true,
            };
            if noted {
                marks.send((Some(outcome), None)).await?;
            } else {
                marks.stored(Some(outcome)).await?;
            }
        }
        Ok(report)
    }

    /// Whether the store noted that the server accepted the mail of record `id` (see
    /// [`Store::note_accepted`]). If it could not, the mail waits for its mark instead.
    fn note_accepted(&self, id: i64, at: i64, result: &str) -> bool {
        self.store
            .note_accepted(id, &self.owner, at, result)
            .unwrap_or_else(|error| {
                tracing::warn!("{error}; the mail waits for its mark instead");
                false
            })
    }

    /// A writer that marks delivered records (those this worker still holds) in batches,
    /// and tells each sender that asked when its mark is stored.
    fn marker(
        &self,
        now: DateTime<Utc>,
    ) -> (Marks, tokio::task::JoinHandle<Result<(), StoreError>>) {
        // Webhook outcomes do not wait for their marks, so deliveries can run ahead of the
        // writer; past a batch's worth of unmarked outcomes they wait, which bounds what a
        // crash leaves to deliver again. (No delivery holds the store's write gate while it
        // hands over its outcome, so the writer is never kept from it.)
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Mark>(CLAIM as usize);
        let store = self.store.clone();
        let owner = self.owner.clone();
        let at = to_millis(now);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MARK_BATCH);
            let mut acks = Vec::new();
            // Taken with the first outcome: a call that delivers nothing holds none.
            let mut held = None;
            while let Some((outcome, ack)) = receiver.recv().await {
                batch.extend(outcome);
                acks.extend(ack);
                // Someone waits (a mail for its mark, a round for its end): write what has
                // arrived at once. Other outcomes alone wait a moment for more.
                let linger = tokio::time::Instant::now() + MARK_LINGER;
                while batch.len() < MARK_BATCH {
                    let next = if acks.is_empty() {
                        tokio::time::timeout_at(linger, receiver.recv())
                            .await
                            .ok()
                            .flatten()
                    } else {
                        receiver.try_recv().ok()
                    };
                    let Some((outcome, ack)) = next else {
                        break;
                    };
                    batch.extend(outcome);
                    acks.extend(ack);
                }
                if batch.is_empty() {
                    // Only waits: everything handed over before them is stored.
                    for ack in acks.drain(..) {
                        let _ = ack.send(());
                    }
                    continue;
                }
                let connection = match &mut held {
                    Some(connection) => connection,
                    None => held.insert(store.hold_connection().await?),
                };
                store
                    .finish_outbox_held(connection, &owner, at, &batch)
                    .await?;
                batch.clear();
                for ack in acks.drain(..) {
                    let _ = ack.send(());
                }
            }
            Ok(())
        });
        (Marks(sender), writer)
    }

    /// Delivers one record; its outcome, to be marked (tasks are marked as they are written).
    async fn deliver(
        &self,
        item: OutboxItem,
        recipients: &Recipients,
        sent: &[i64],
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<Option<(i64, DeliveryOutcome)>, StoreError> {
        let at = to_millis(now);
        let attempt = match &item.record.payload {
            // Each kind's delivery is boxed: held inline, they made every queue's future
            // about ten kilobytes (1.5 boxed), copied as each was spawned.
            Payload::Task(task) => {
                Box::pin(self.deliver_task(&item, task, now, report)).await?;
                return Ok(None);
            }
            Payload::Email(mail) => {
                match hold_email(recipients, self, &item, mail, sent, now, report) {
                    Some(held) => held,
                    None => Box::pin(self.deliver_email(&item, mail, now, report)).await?,
                }
            }
            Payload::Webhook(call) => Box::pin(self.deliver_webhook(&item, call, report)).await?,
        };
        let outcome = match attempt {
            Attempt::Held(outcome) => outcome,
            Attempt::Sent(result) => DeliveryOutcome::Sent(result),
            Attempt::Temporary(reason, after) => retry(&item, at, reason, after, report),
            Attempt::Permanent(reason)
            | Attempt::Bounced(reason)
            | Attempt::EndpointGone(reason) => {
                report.failed += 1;
                DeliveryOutcome::Failed(reason)
            }
        };
        Ok(Some((item.id, outcome)))
    }

    async fn deliver_task(
        &self,
        item: &OutboxItem,
        payload: &TaskPayload,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<(), StoreError> {
        let mut open = self.assigning.lock().await;
        for attempt in 1..=PLANS {
            let mut task = tasks::plan(
                &self.definitions,
                &self.store,
                &mut open,
                &item.record,
                payload,
                now,
            )
            .await?;
            if attempt == PLANS {
                // Slots keep vanishing under other engines: assign as planned.
                task.capacity = None;
            }
            let keys = signin::PageKeys::new(self.unsubscribe_key().await?);
            // A sign-in link is a credential: it lives by the wall clock, also when the
            // engine's clock is simulated (the demo, plans).
            let notices = notices::for_task(
                &self.definitions,
                &item.record.idempotency_key,
                item.record.enrollment_id,
                &task,
                &keys,
                chrono::Utc::now().timestamp_millis(),
            );
            match self
                .store
                .deliver_task(item.id, &self.owner, to_millis(now), &task, &notices)
                .await?
            {
                Some(TaskWrite::Created(_)) => {
                    open.add(task.assignee.as_deref());
                    report.tasks_created += 1;
                }
                Some(TaskWrite::Updated(_)) => report.tasks_updated += 1,
                Some(TaskWrite::AssigneeFull) => {
                    open.forget();
                    continue;
                }
                None => {}
            }
            break;
        }
        Ok(())
    }

    /// Sends a step email (with its unsubscribe link) or a notice to a CSM.
    async fn deliver_email(
        &self,
        item: &OutboxItem,
        mail: &EmailPayload,
        now: DateTime<Utc>,
        report: &mut DeliveryReport,
    ) -> Result<Attempt, StoreError> {
        let record = &item.record;
        let to = mail.to.as_str();
        let notice = mail.notice;
        let mut envelope = Envelope::default();
        if !notice {
            let key = self.unsubscribe_key().await?;
            envelope.unsubscribe = Some(unsubscribe::link(
                &self.definitions.config,
                key,
                to,
                now.timestamp(),
            ));
        }
        let attempt = self.send_email(record, &envelope).await;
        match &attempt {
            Attempt::Sent(_) => report.emails += 1,
            Attempt::Bounced(reason) => {
                self.store
                    .suppress(&Suppression {
                        email: address_of(to),
                        reason: "hard_bounced".into(),
                        detail: reason.clone(),
                        created_at: to_millis(now),
                    })
                    .await?;
            }
            _ => {}
        }
        Ok(attempt)
    }

    /// Sends (or writes) one mail through the configured channel.
    pub async fn send_email(
        &self,
        record: &crate::store::OutboxRecord,
        envelope: &Envelope<'_>,
    ) -> Attempt {
        let installation = match self.installation_id().await {
            Ok(id) => id,
            Err(error) => return Attempt::Temporary(error.to_string(), None),
        };
        let envelope = &Envelope {
            installation,
            ..envelope.clone()
        };
        let sender = self
            .sender
            .as_ref()
            .map_err(|problem| email_file::EmailError::Permanent(problem.clone()));
        match &self.smtp {
            None if self.simulated => Attempt::Sent("simulated".into()),
            None => match sender
                .and_then(|sender| email_file::write(&self.outbox_dir, record, sender, envelope))
            {
                Ok(path) => Attempt::Sent(path.display().to_string()),
                Err(error) => error.into(),
            },
            Some(Err(problem)) => Attempt::Temporary(problem.clone(), None),
            Some(Ok(channel)) => {
                match sender.and_then(|sender| email_file::build(record, sender, envelope)) {
                    Ok(message) => channel.send(message).await,
                    Err(error) => error.into(),
                }
            }
        }
    }

    async fn deliver_webhook(
        &self,
        item: &OutboxItem,
        call: &WebhookPayload,
        report: &mut DeliveryReport,
    ) -> Result<Attempt, StoreError> {
        let record = &item.record;
        let endpoint = call.endpoint.as_str();
        let url = self.webhooks.url(endpoint).unwrap_or_default();
        let disabled = self.disabled_lock().get(endpoint).cloned();
        if let Some(disabled) = disabled
            && let Some((disabled_url, why)) = disabled.split_once(' ')
            && disabled_url == url
        {
            return Ok(Attempt::Permanent(format!(
                "endpoint `{endpoint}` is disabled ({why}); `touchline deliveries enable {endpoint}` turns it back on"
            )));
        }
        // Serialized from the record as it is; no body is JSON `null`.
        let body = call.body.as_ref().unwrap_or(&serde_json::Value::Null);
        let attempt = if self.simulated {
            Attempt::Sent("simulated".into())
        } else {
            self.webhooks
                .send(endpoint, &record.idempotency_key, body)
                .await
        };
        match &attempt {
            Attempt::Sent(_) => report.webhooks += 1,
            Attempt::EndpointGone(reason) => {
                tracing::warn!("webhook endpoint `{endpoint}` answered 410 Gone; disabling it");
                let value = format!("{url} {reason}");
                self.store.set_meta(&disabled_key(endpoint), &value).await?;
                self.disabled_lock().insert(endpoint.to_string(), value);
            }
            _ => {}
        }
        Ok(attempt)
    }
}

impl<S: Store> Worker<S> {
    async fn read_disabled_endpoints(&self) -> Result<(), StoreError> {
        let mut disabled = BTreeMap::new();
        for name in self.definitions.config.webhooks.keys() {
            if let Some(value) = self.store.meta(&disabled_key(name)).await? {
                disabled.insert(name.clone(), value);
            }
        }
        *self.disabled_lock() = disabled;
        Ok(())
    }

    fn disabled_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        // A panic elsewhere cannot leave the map half-written: every write replaces or
        // inserts whole values.
        self.disabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Turns a webhook endpoint disabled after a 410 back on; false if it was not disabled.
pub async fn enable_endpoint<S: Store>(store: &S, endpoint: &str) -> Result<bool, StoreError> {
    let was = store.meta(&disabled_key(endpoint)).await?;
    if was.as_deref().is_some_and(|v| !v.is_empty()) {
        store.set_meta(&disabled_key(endpoint), "").await?;
        return Ok(true);
    }
    Ok(false)
}

impl From<email_file::EmailError> for Attempt {
    fn from(error: email_file::EmailError) -> Self {
        match error {
            email_file::EmailError::Permanent(reason) => Attempt::Permanent(reason),
            email_file::EmailError::Temporary(reason) => Attempt::Temporary(reason, None),
        }
    }
}

/// The next attempt's time, or the dead letter after the last attempt: 5 minutes, then
/// three times longer each time, at most 12 hours apart, with ±20% jitter (8 attempts span
/// more than a day); a receiver's `Retry-After` is honoured when it asks for longer.
fn retry(
    item: &OutboxItem,
    now: i64,
    error: String,
    after: Option<Duration>,
    report: &mut DeliveryReport,
) -> DeliveryOutcome {
    if item.attempts >= MAX_ATTEMPTS {
        report.failed += 1;
        return DeliveryOutcome::Dead(error);
    }
    report.retried += 1;
    let base_ms = (5 * 60 * 1000_i64)
        .saturating_mul(3_i64.saturating_pow((item.attempts - 1).max(0) as u32))
        .min(12 * 3600 * 1000);
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let backoff = (base_ms as f64 * jitter) as i64;
    // Never sooner than the receiver asked, never sooner than the backoff (so 8 attempts
    // still span more than a day).
    let asked = after.map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let wait = backoff.max(asked);
    DeliveryOutcome::Retry {
        at: now.saturating_add(wait),
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OutboxRecord;

    fn item(attempts: i64) -> OutboxItem {
        OutboxItem {
            id: 1,
            attempts,
            record: OutboxRecord {
                idempotency_key: "1:step".into(),
                enrollment_id: 1,
                journey_id: "j".into(),
                step_id: "step".into(),
                account_id: "a".into(),
                contact_id: String::new(),
                payload: Payload::Webhook(crate::store::WebhookPayload {
                    endpoint: "crm".into(),
                    body: None,
                }),
                held_out: false,
            },
        }
    }

    #[test]
    fn eight_attempts_span_more_than_a_day_then_the_record_is_dead() {
        let mut report = DeliveryReport::default();
        let mut at = 0_i64;
        for attempt in 1..MAX_ATTEMPTS {
            match retry(&item(attempt), at, "503".into(), None, &mut report) {
                DeliveryOutcome::Retry { at: next, .. } => at = next,
                other => panic!("attempt {attempt}: {other:?}"),
            }
        }
        // Even with the shortest jitter, the 8th attempt comes more than 24 hours after the first.
        assert!(at > 24 * 3600 * 1000, "{} hours", at / 3_600_000);
        assert_eq!(
            retry(&item(MAX_ATTEMPTS), at, "503".into(), None, &mut report),
            DeliveryOutcome::Dead("503".into())
        );
    }

    #[test]
    fn retry_after_is_honoured_when_it_asks_for_longer() {
        let mut report = DeliveryReport::default();
        let asked = Some(Duration::from_secs(3600));
        assert_eq!(
            retry(&item(1), 0, "429".into(), asked, &mut report),
            DeliveryOutcome::Retry {
                at: 3_600_000,
                error: "429".into()
            }
        );
        let short = Some(Duration::from_secs(1));
        match retry(&item(1), 0, "429".into(), short, &mut report) {
            DeliveryOutcome::Retry { at, .. } => assert!(at >= 4 * 60 * 1000, "{at}"),
            other => panic!("{other:?}"),
        }
    }
}
