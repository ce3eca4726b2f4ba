//! State: one [`Store`] interface, one implementation per database.
//!
//! SQLite (a file, nothing to install) is the default; PostgreSQL is chosen by URL when
//! several engine processes share the work. Both run the same SQL, written once in
//! [`sql`] and instantiated per database, and both pass one contract test suite.
//!
//! Writes that belong together go through [`Store::apply`] in one transaction, so an
//! enrollment's move and the outbox records it produces commit together or not at all, and
//! an enrollment advanced by another process (its `version` moved on) is left alone.

mod accepted_journal;
pub mod group_commit;
mod json_rows;
pub mod payload;
mod sql;
mod sqlite_outbox;
mod sqlite_reader;

pub use payload::{Assignment, EmailPayload, Payload, Strategy, TaskPayload, WebhookPayload};

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::model::{AccountState, Contact, Event, MetricValue};

pub use sql::{PostgresStore, SqliteStore};

/// The database URL used when `touchline.yaml` names none.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://touchline.db";

/// A storage error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON could not be read.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// The URL names no supported database.
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// The database file is not there.
    #[error("no database at {0}")]
    Missing(String),
    /// A batch read outside the pool failed.
    #[error("database read failed: {0}")]
    Read(String),
    /// A background writer stopped unexpectedly.
    #[error("a database writer stopped: {0}")]
    Writer(String),
}

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Records to import, all in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Import {
    /// Accounts to upsert.
    pub accounts: Vec<crate::model::Account>,
    /// Contacts to upsert.
    pub contacts: Vec<Contact>,
    /// Metric values to record.
    pub metrics: Vec<MetricValue>,
    /// Events to record.
    pub events: Vec<Event>,
}

impl Import {
    /// Records of every kind it holds.
    pub fn len(&self) -> usize {
        self.accounts.len() + self.contacts.len() + self.metrics.len() + self.events.len()
    }

    /// Whether it holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Rows inserted or changed (identical rows are not counted).
    pub changed: u64,
    /// Rows that were already stored exactly so.
    pub unchanged: u64,
}

/// An enrollment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// Row id.
    pub id: i64,
    /// Journey id.
    pub journey_id: String,
    /// Content hash of the journey version it entered.
    pub version_hash: String,
    /// The account.
    pub account_id: String,
    /// The contact (empty for account journeys).
    pub contact_id: String,
    /// Where it stands.
    pub status: EnrollmentStatus,
    /// Index of the step to run next.
    pub step_index: i64,
    /// When the current wait began.
    pub wait_started_at: Option<i64>,
    /// When the enrollment is next due (ms).
    pub next_due_at: Option<i64>,
    /// When it entered (ms).
    pub entered_at: i64,
    /// When it ended (ms).
    pub ended_at: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<String>,
    /// Optimistic-concurrency counter.
    pub version: i64,
}

/// A subject of a journey: an account, or a contact at it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubjectKey {
    /// Journey id.
    pub journey_id: String,
    /// Account id.
    pub account_id: String,
    /// Contact id (empty for account journeys).
    pub contact_id: String,
}

/// The result of evaluating one account.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The account.
    pub account_id: String,
    /// The `data_version` the evaluation read (the account stays dirty if it moved on).
    pub data_version: i64,
    /// All current scores that are known.
    pub scores: BTreeMap<String, f64>,
    /// Scores that are unknown for the account, with why.
    pub unknown_scores: BTreeMap<String, String>,
    /// Scores that changed, for the history.
    pub changed_scores: Vec<(String, f64)>,
    /// The tier and the rule that decided it (`None`: the tier stays as it was).
    pub tier: Option<(String, String)>,
    /// The previous tier, when the tier changed.
    pub tier_changed_from: Option<Option<String>>,
    /// When to evaluate again even if nothing changes (ms): a value dated later coming due,
    /// or rules that read the time.
    pub recheck_at: Option<i64>,
}

/// A new enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnrollment {
    /// Who and which journey.
    pub key: SubjectKey,
    /// The version's hash.
    pub version_hash: String,
    /// When it entered (ms).
    pub entered_at: i64,
    /// Why it entered (event name, condition, schedule).
    pub reason: String,
}

/// An outbox record: a step's email, webhook or task, to be delivered once.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRecord {
    /// `enrollment:step` — the same step never produces two records.
    pub idempotency_key: String,
    /// The enrollment that produced it.
    pub enrollment_id: i64,
    /// Journey id.
    pub journey_id: String,
    /// Step id.
    pub step_id: String,
    /// The account.
    pub account_id: String,
    /// The contact (empty for account journeys).
    pub contact_id: String,
    /// What it delivers, rendered.
    pub payload: Payload,
    /// The subject is in the journey's holdout: stored as `held_out`, never sent.
    pub held_out: bool,
}

impl OutboxRecord {
    /// `email`, `webhook` or `task`.
    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }
}

/// One line of an enrollment's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Step id, if the entry is about a step.
    pub step_id: Option<String>,
    /// `entered`, `sent`, `skipped`, `waiting`, `branched`, `goal_reached`, …
    pub event: String,
    /// Details.
    pub detail: String,
}

/// A change to an existing enrollment, applied only if nobody else changed it first.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentUpdate {
    /// The enrollment as it was read (its `version` is checked).
    pub before: Enrollment,
    /// New status.
    pub status: EnrollmentStatus,
    /// New step index.
    pub step_index: i64,
    /// Start of the current wait.
    pub wait_started_at: Option<i64>,
    /// When it is next due.
    pub next_due_at: Option<i64>,
    /// End reason, when it ends.
    pub end_reason: Option<String>,
    /// Outbox records the move produced.
    pub outbox: Vec<OutboxRecord>,
    /// History lines.
    pub log: Vec<LogEntry>,
}

/// The part of an account's data that rules read, when they read only some of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFields {
    /// Facts (`arr`, `plan`, `goals`, …).
    pub facts: BTreeSet<String>,
    /// Metrics by name (`None`: all of them).
    pub metrics: Option<BTreeSet<String>>,
    /// Whether attributes are read.
    pub attributes: bool,
}

/// Everything one batch of engine work writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The time of the pass (ms).
    pub now: i64,
    /// Account evaluations.
    pub evaluations: Vec<Evaluation>,
    /// New enrollments.
    pub new_enrollments: Vec<NewEnrollment>,
    /// Moves of existing enrollments.
    pub updates: Vec<EnrollmentUpdate>,
    /// Entry conditions that became true.
    pub edges_set: Vec<SubjectKey>,
    /// Entry conditions that became false.
    pub edges_cleared: Vec<SubjectKey>,
    /// A work cursor (kept in `meta`) that must move from `from` to `to` for this batch to
    /// count; if another process moved it first, the whole batch is dropped.
    pub cursor: Option<CursorMove>,
    /// Events read before their time: (sequence number, time), kept until it comes.
    pub events_deferred: Vec<(i64, i64)>,
    /// Deferred events acted on now; if another process took one first, the whole batch is
    /// dropped.
    pub events_released: Vec<i64>,
}

/// Metric values as they were at a time: the latest per (account, metric), and per account
/// when its next value is dated (ms).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsAsOf {
    /// The latest value of each metric at or before the time.
    pub values: Vec<MetricValue>,
    /// Per account, the time of its first value after the time.
    pub next_at: Vec<(String, i64)>,
}

/// An account's logins around a time (ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginsAsOf {
    /// The account.
    pub account_id: String,
    /// Its latest login at or before the time.
    pub latest: Option<i64>,
    /// Its first login after the time.
    pub next: Option<i64>,
}

/// Where an outbox record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its time (a retry, a send window, the frequency cap).
    Pending,
    /// Leased to a worker that is delivering it.
    Sending,
    /// Held by the blast-radius guard for a person to decide.
    Held,
    /// Delivered.
    Sent,
    /// Not sent on purpose (suppressed, over the cap, discarded from a hold).
    Skipped,
    /// Failed for good.
    Failed,
    /// Out of attempts.
    Dead,
    /// Never sent: the subject is in the journey's holdout group.
    HeldOut,
}

impl DeliveryStatus {
    /// Every status.
    pub const ALL: [DeliveryStatus; 8] = [
        Self::Pending,
        Self::Sending,
        Self::Held,
        Self::Sent,
        Self::Skipped,
        Self::Failed,
        Self::Dead,
        Self::HeldOut,
    ];

    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Held => "held",
            Self::Sent => "sent",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::HeldOut => "held_out",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown delivery status `{text}`")))
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a CSM task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its CSM.
    Open,
    /// Done (by the CSM, or closed by touchline when the journey's goal was reached).
    Done,
}

impl TaskStatus {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Done => "done",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "open" => Ok(Self::Open),
            "done" => Ok(Self::Done),
            other => Err(StoreError::Corrupt(format!(
                "unknown task status `{other}`"
            ))),
        }
    }
}

impl PartialEq<&str> for TaskStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Where an enrollment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    /// Walking the journey.
    Active,
    /// Ran out of steps.
    Completed,
    /// Reached the journey's goal.
    GoalReached,
    /// Left: an exit step or the exit condition.
    Exited,
    /// Could not go on (its account, contact or journey version is gone).
    Failed,
}

impl EnrollmentStatus {
    /// The name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::GoalReached => "goal_reached",
            Self::Exited => "exited",
            Self::Failed => "failed",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "active" => Self::Active,
            "completed" => Self::Completed,
            "goal_reached" => Self::GoalReached,
            "exited" => Self::Exited,
            "failed" => Self::Failed,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "unknown enrollment status `{other}`"
                )));
            }
        })
    }
}

impl std::fmt::Display for EnrollmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for EnrollmentStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A journey on hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldJourney {
    /// The journey.
    pub journey_id: String,
    /// Why it was held.
    pub reason: String,
    /// Since when (ms).
    pub created_at: i64,
    /// Outbox records held.
    pub records: i64,
}

/// A compare-and-set move of a cursor kept in `meta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorMove {
    /// The meta key.
    pub key: String,
    /// The value the batch was read at (`None`: not set yet).
    pub from: Option<String>,
    /// The value after the batch.
    pub to: String,
}

impl Changes {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.evaluations.is_empty()
            && self.new_enrollments.is_empty()
            && self.updates.is_empty()
            && self.edges_set.is_empty()
            && self.edges_cleared.is_empty()
            && self.cursor.is_none()
            && self.events_deferred.is_empty()
            && self.events_released.is_empty()
    }
}

/// What [`Store::apply`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Enrollments created.
    pub enrolled: u64,
    /// Enrollment moves applied.
    pub moved: u64,
    /// Enrollment moves dropped because another process got there first.
    pub conflicts: u64,
    /// Outbox records written.
    pub outbox: u64,
    /// True when the batch was dropped because its cursor had moved.
    pub cursor_lost: bool,
}

/// A row of `touchline status`: a count under a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// What is counted (e.g. `onboarding/welcome`).
    pub label: String,
    /// How many.
    pub count: i64,
}

/// How long one channel's sent records took from being written to being delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latency {
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// For each bound asked for, how many took at most that long.
    pub at_most: Vec<i64>,
    /// Sent records in all.
    pub count: i64,
    /// Their latencies added up (ms).
    pub sum_ms: i64,
}

/// Outbox records of one step in one status, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutboxCount {
    /// The journey.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
    /// `email`, `webhook` or `task`.
    pub kind: String,
    /// Where the records stand.
    pub status: DeliveryStatus,
    /// How many.
    pub count: i64,
}

/// A score before and after one step, for one enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct StepScoreChange {
    /// The enrollment.
    pub enrollment_id: i64,
    /// The step.
    pub step_id: String,
    /// `email` or `task`.
    pub kind: String,
    /// In the holdout (nothing sent) rather than sent.
    pub held_out: bool,
    /// The account.
    pub account_id: String,
    /// When the step ran (ms).
    pub at: i64,
    /// The score then (`None`: not scored yet).
    pub before: Option<f64>,
    /// The score a window later.
    pub after: Option<f64>,
}

/// One account's score at a time.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreAt {
    /// The account.
    pub account_id: String,
    /// The value.
    pub value: f64,
    /// When it was computed (ms).
    pub at: i64,
}

/// A change of tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierChange {
    /// Previous tier.
    pub from: Option<String>,
    /// New tier.
    pub to: String,
    /// The rule that decided it.
    pub rule: String,
    /// When (ms).
    pub at: i64,
}

/// An outbox record claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// The record.
    pub record: OutboxRecord,
    /// Delivery attempts so far, this one included.
    pub attempts: i64,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Delivered; what the receiver said.
    Sent(String),
    /// A temporary failure: try again at this time (ms).
    Retry {
        /// When.
        at: i64,
        /// Why it failed.
        error: String,
    },
    /// A permanent failure: not retried.
    Failed(String),
    /// Out of attempts.
    Dead(String),
    /// Not yet: held without using up an attempt (a send window, the frequency cap).
    Defer {
        /// Until when (ms).
        until: i64,
        /// Why, as shown by `touchline deliveries`.
        why: String,
    },
    /// Not sent on purpose (a suppressed recipient, a mail over the frequency cap); why.
    Skipped(String),
}

/// An address on the suppression list: no step email goes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    /// The address, lower-cased.
    pub email: String,
    /// `unsubscribed`, `hard_bounced` or `manual`.
    pub reason: String,
    /// Where it came from (the unsubscribe link, the SMTP reply, who added it).
    pub detail: String,
    /// When (ms).
    pub created_at: i64,
}

/// A full pass's batch of accounts (see [`Store::sweep_inputs`]).
#[derive(Debug, Clone, Default)]
pub struct SweepInputs {
    /// The accounts, in id order, holding what the rules read.
    pub states: Vec<AccountState>,
    /// The ids of those with running enrollments, in order.
    pub running: Vec<String>,
}

/// What the send checks know of one recipient: whether the contact is subscribed, and the
/// time zones a send window is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientFacts {
    /// The account.
    pub account_id: String,
    /// The contact (`None` for an account without contacts).
    pub contact_id: Option<String>,
    /// Whether the contact takes step emails.
    pub subscribed: bool,
    /// The contact's time zone.
    pub timezone: Option<String>,
    /// The account's time zone.
    pub account_timezone: Option<String>,
}

/// An outbox record as `touchline deliveries` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    /// Row id.
    pub id: i64,
    /// The record.
    pub record: OutboxRecord,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// Next attempt (ms), for pending records.
    pub next_attempt_at: Option<i64>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Why a pending record waits (a send window, the frequency cap).
    pub held_reason: Option<String>,
    /// When it was delivered (ms).
    pub delivered_at: Option<i64>,
}

/// A CSM task to create (or to update, if an open one has the same key).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Open tasks with the same key are updated, never duplicated.
    pub dedupe_key: String,
    /// The account.
    pub account_id: String,
    /// The journey that made it.
    pub journey_id: String,
    /// The step that made it.
    pub step_id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The CSM it is assigned to (`None`: nobody could take it).
    pub assignee: Option<String>,
    /// `low`, `normal`, `high`, `urgent`.
    pub priority: String,
    /// When it is due (ms).
    pub due_at: Option<i64>,
    /// Why it was made: journey, step, tier, scores.
    pub reason: serde_json::Value,
    /// The assignee's capacity, when the assignment counted on a free slot: the task is
    /// only created if the slot is still free when it is written (another engine process
    /// may have taken it since).
    pub capacity: Option<i64>,
}

/// A CSM task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Row id.
    pub id: i64,
    /// The task's fields as created.
    pub task: NewTask,
    /// Open or done.
    pub status: TaskStatus,
    /// Created (ms).
    pub created_at: i64,
    /// Why it was closed, when it was closed by touchline (e.g. `goal reached`).
    pub closed_reason: Option<String>,
    /// Last changed (ms): for a done task, when it was done.
    pub updated_at: i64,
    /// Out of the CSM's way until then (ms).
    pub snoozed_until: Option<i64>,
    /// What the CSM wrote when marking it done.
    pub note: Option<String>,
}

/// A person's change to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskChange {
    /// Mark it done, with an optional note.
    Done {
        /// The note.
        note: Option<String>,
    },
    /// Out of the way until this time (ms).
    Snooze {
        /// Until (ms).
        until: i64,
    },
    /// Give it to another CSM, if they have room.
    Reassign {
        /// The CSM.
        to: String,
        /// Their capacity (open tasks), if set.
        capacity: Option<i64>,
    },
}

impl TaskChange {
    /// The action's name in the task's history.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Done { .. } => "done",
            Self::Snooze { .. } => "snoozed",
            Self::Reassign { .. } => "reassigned",
        }
    }
}

/// What a task change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskChangeOutcome {
    /// Changed and recorded.
    Changed,
    /// It already was so (a form sent twice): nothing written.
    Unchanged,
    /// No such task.
    NotFound,
    /// The task is done: it cannot be snoozed or reassigned.
    Closed,
    /// The new assignee has no room.
    AssigneeFull,
}

/// One line of a task's history.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TaskLogEntry {
    /// When (ms).
    pub at: i64,
    /// Who: a CSM id, `admin`, `cli` or `touchline`.
    pub actor: String,
    /// `done`, `snoozed`, `reassigned`.
    pub action: String,
    /// The note, the time, the CSMs.
    pub detail: String,
}

/// What delivering a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskWrite {
    /// A new task, with its id.
    Created(i64),
    /// An open task with the same key was updated.
    Updated(i64),
    /// Nothing written: the assignee's last free slot was taken meanwhile; plan again.
    AssigneeFull,
}

/// A connection a store keeps out of its pool for a caller (see [`Store::hold_connection`]);
/// none when the pool has only one (a database in memory), which must stay free for
/// everything else.
pub struct HeldConnection<S: Store>(Option<S::Connection>);

impl<S: Store> std::fmt::Debug for HeldConnection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldConnection")
    }
}

/// The store interface every database implements.
pub trait Store: Clone + Send + Sync + 'static {
    /// A pooled connection of the store's database.
    type Connection: Send + 'static;
    /// Writes an import in one transaction. Identical rows change nothing.
    fn import(&self, import: &Import) -> impl Future<Output = Result<ImportOutcome>> + Send;
    /// Writes chunks of records (a large file, read as it is written) in one transaction:
    /// all of them or, if anything fails, none.
    fn import_all(
        &self,
        chunks: impl Iterator<Item = Import> + Send,
    ) -> impl Future<Output = Result<ImportOutcome>> + Send;
    /// Writes several imports (from different callers) in one transaction, all or none,
    /// and says what each one changed.
    fn import_each(
        &self,
        imports: &[Import],
    ) -> impl Future<Output = Result<Vec<ImportOutcome>>> + Send;
    /// Ids of accounts whose inputs changed since they were last evaluated, after `after`.
    fn dirty_accounts(
        &self,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Ids of all accounts, after `after`.
    fn account_ids(
        &self,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Where a full pass's next batch ends: the last of the first `limit` account ids after
    /// `after` (`None`: there are none).
    fn sweep_bound(
        &self,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// A full pass's batch: the accounts with ids after `after` up to and including
    /// `through`, in id order, read as [`Store::load_rule_inputs`] reads them, and which of
    /// them have running enrollments.
    fn sweep_inputs(
        &self,
        after: &str,
        through: &str,
        fields: &RuleFields,
    ) -> impl Future<Output = Result<SweepInputs>> + Send;
    /// Marks every account for re-evaluation (rules changed, or on request).
    fn mark_all_dirty(&self) -> impl Future<Output = Result<u64>> + Send;
    /// Accounts with metrics, scores and tier, sorted by id; with their contacts if asked.
    fn load_accounts(
        &self,
        ids: &[String],
        with_contacts: bool,
    ) -> impl Future<Output = Result<Vec<AccountState>>> + Send;
    /// Accounts as [`Store::load_accounts`] reads them (without contacts), holding of their
    /// data only what `fields` names: the facts and attributes not named are left empty, and
    /// so are the metrics not named.
    fn load_rule_inputs(
        &self,
        ids: &[String],
        fields: &RuleFields,
    ) -> impl Future<Output = Result<Vec<AccountState>>> + Send;
    /// The contacts of these accounts, by id.
    fn contacts_of(
        &self,
        account_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Contact>>> + Send;
    /// All enrollments (any status) of these accounts.
    fn enrollments_of(
        &self,
        account_ids: &[String],
    ) -> impl Future<Output = Result<Vec<Enrollment>>> + Send;
    /// Entry conditions currently true for these accounts.
    fn edges_of(
        &self,
        account_ids: &[String],
    ) -> impl Future<Output = Result<Vec<SubjectKey>>> + Send;
    /// Active enrollments due at `now`, earliest first.
    fn due_enrollments(
        &self,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Enrollment>>> + Send;
    /// Events recorded after sequence number `after`.
    fn events_after(
        &self,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Event)>>> + Send;
    /// Events a pass read before their time (see [`Changes::events_deferred`]) whose time
    /// has come by `at`, earliest first.
    fn due_future_events(
        &self,
        at: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<(i64, Event)>>> + Send;
    /// Each metric's latest value at or before `at` for these accounts, and per account the
    /// time of its next value after `at`.
    fn metrics_as_of(
        &self,
        account_ids: &[String],
        at: i64,
    ) -> impl Future<Output = Result<MetricsAsOf>> + Send;
    /// Per account: its latest `login` event at or before `at`, and its next one after.
    fn logins_as_of(
        &self,
        account_ids: &[String],
        at: i64,
    ) -> impl Future<Output = Result<Vec<LoginsAsOf>>> + Send;
    /// Marks for evaluation the accounts whose `recheck_at` has come; how many.
    fn mark_due_rechecks(&self, at: i64) -> impl Future<Output = Result<u64>> + Send;
    /// Claims one firing of a journey's schedule; false if it was claimed before.
    fn claim_cron_fire(
        &self,
        journey_id: &str,
        fire_at: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The latest claimed firing of a journey's schedule.
    fn last_cron_fire(&self, journey_id: &str) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Writes a batch of engine work in one transaction.
    fn apply(&self, changes: &Changes) -> impl Future<Output = Result<Applied>> + Send;
    /// Reads a setting the engine keeps.
    fn meta(&self, key: &str) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Writes a setting the engine keeps.
    fn set_meta(&self, key: &str, value: &str) -> impl Future<Output = Result<()>> + Send;
    /// Reads a setting, first writing `value` if it is not set (the first writer wins).
    fn meta_or_insert(&self, key: &str, value: &str)
    -> impl Future<Output = Result<String>> + Send;
    /// Remembers a journey version's text (no-op if known).
    fn save_journey_version(
        &self,
        journey_id: &str,
        hash: &str,
        text: &str,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// A journey version's text.
    fn journey_version(
        &self,
        journey_id: &str,
        hash: &str,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Accounts per tier.
    fn tier_counts(&self) -> impl Future<Output = Result<Vec<Count>>> + Send;
    /// Enrollments per journey, status and step.
    fn enrollment_counts(&self) -> impl Future<Output = Result<Vec<Count>>> + Send;
    /// Outbox records per kind and status.
    fn outbox_counts(&self) -> impl Future<Output = Result<Vec<Count>>> + Send;
    /// The most recent outbox records.
    fn recent_outbox(&self, limit: i64) -> impl Future<Output = Result<Vec<OutboxRecord>>> + Send;
    /// An account's tier changes, oldest first.
    fn tier_history(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<TierChange>>> + Send;
    /// Tier changes of every account in `[since, until)` (ms), per (from, to, rule), counted
    /// (`at` is the first such change).
    fn tier_flows(
        &self,
        since: i64,
        until: i64,
    ) -> impl Future<Output = Result<Vec<(TierChange, i64)>>> + Send;
    /// Enrollments (any status) that entered in `[from, to)` (ms), oldest first.
    fn enrollments_entered(
        &self,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<Enrollment>>> + Send;
    /// Per (journey, step): how many enrollments that entered in `[from, to)` reached the
    /// step (a step skipped for the subject's tier does not count).
    fn steps_reached(
        &self,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<(String, String, i64)>>> + Send;
    /// How long sent records took from being written to being delivered, per kind: for
    /// each bound (ms) how many took at most that long, then the count and the sum (ms).
    fn delivery_latency(
        &self,
        bounds_ms: &[i64],
    ) -> impl Future<Output = Result<Vec<Latency>>> + Send;
    /// For one journey's email and task steps that ran in `[from, until - window_ms]` and were
    /// sent or held out: the `score` when the step ran and `window_ms` later, per enrollment
    /// and step.
    fn step_score_changes(
        &self,
        journey_id: &str,
        score: &str,
        from: i64,
        until: i64,
        window_ms: i64,
    ) -> impl Future<Output = Result<Vec<StepScoreChange>>> + Send;
    /// Per account with a history of `score`: its value at `at` (ms), or, for accounts first
    /// scored later, the first value before `until`.
    fn scores_at(
        &self,
        score: &str,
        at: i64,
        until: i64,
    ) -> impl Future<Output = Result<Vec<ScoreAt>>> + Send;
    /// When each account first had an event named `name` (ms).
    fn first_events(&self, name: &str) -> impl Future<Output = Result<Vec<(String, i64)>>> + Send;
    /// Outbox records written in `[from, to)`, per journey, step, kind and status.
    fn outbox_by_step(
        &self,
        from: i64,
        to: i64,
    ) -> impl Future<Output = Result<Vec<StepOutboxCount>>> + Send;
    /// Claims up to `limit` pending outbox records of these kinds, due at `now`, for
    /// `owner` until `now + lease_ms`. Records whose lease ran out are claimable again.
    fn claim_outbox(
        &self,
        kinds: &[&str],
        now: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxItem>>> + Send;
    /// Records how a claimed delivery ended; false if `owner` no longer holds the record.
    fn finish_outbox(
        &self,
        id: i64,
        owner: &str,
        now: i64,
        outcome: &DeliveryOutcome,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Stores at once that the server accepted the mail of record `id`, claimed by `owner`,
    /// at `at`, answering `result`, where a mark would wait for the database: on an SQLite
    /// file, a line in this process's journal of accepted mails (`accepted_journal`), read
    /// back before any lease is taken over. The mark itself may then go with others. False
    /// where the store keeps no such journal: the mail waits for its mark.
    fn note_accepted(&self, id: i64, owner: &str, at: i64, result: &str) -> Result<bool>;
    /// Whether [`Store::note_accepted`] notes mails here (so they need not wait for marks).
    fn notes_accepted(&self) -> bool;
    /// A connection kept for many writes in a row (a delivery call's marks). Each query on
    /// the pool checks a connection out and back in, and the pool tests every connection
    /// coming back with a round trip to the database: for SQLite, another hand-over to
    /// the connection's thread on every mark.
    fn hold_connection(&self) -> impl Future<Output = Result<HeldConnection<Self>>> + Send;
    /// Records how several claimed deliveries ended, in one transaction, on `held` (or on
    /// a connection from the pool when it holds none); how many `owner` still held.
    fn finish_outbox_held(
        &self,
        held: &mut HeldConnection<Self>,
        owner: &str,
        now: i64,
        outcomes: &[(i64, DeliveryOutcome)],
    ) -> impl Future<Output = Result<u64>> + Send;
    /// Creates (or updates) a task and marks its outbox record sent, in one transaction;
    /// a new task's `notices` (outbox records telling its CSM) are written with it.
    /// `None` if `owner` no longer holds the record.
    fn deliver_task(
        &self,
        outbox_id: i64,
        owner: &str,
        now: i64,
        task: &NewTask,
        notices: &[OutboxRecord],
    ) -> impl Future<Output = Result<Option<TaskWrite>>> + Send;
    /// The times (ms) step emails were sent to this contact since `since`, oldest first.
    fn emails_sent_since(
        &self,
        account_id: &str,
        contact_id: &str,
        since: i64,
    ) -> impl Future<Output = Result<Vec<i64>>> + Send;
    /// When step emails were sent to the contacts of these accounts since `since`:
    /// (account id, contact id, delivered at), oldest first.
    fn emails_sent_to(
        &self,
        account_ids: &[String],
        since: i64,
    ) -> impl Future<Output = Result<Vec<(String, String, i64)>>> + Send;
    /// What the send checks know of every contact of these accounts (an account without
    /// contacts appears once, with no contact), read as one JSON row per chunk.
    fn recipient_facts(
        &self,
        account_ids: &[String],
    ) -> impl Future<Output = Result<Vec<RecipientFacts>>> + Send;
    /// The suppressions of those of these addresses that are suppressed.
    fn suppressions_of(
        &self,
        emails: &[String],
    ) -> impl Future<Output = Result<Vec<Suppression>>> + Send;
    /// The suppression of an address, if it is suppressed.
    fn suppression(&self, email: &str) -> impl Future<Output = Result<Option<Suppression>>> + Send;
    /// Puts an address on the suppression list; false if it was already there.
    fn suppress(&self, suppression: &Suppression) -> impl Future<Output = Result<bool>> + Send;
    /// Takes an address off the suppression list; false if it was not there.
    fn unsuppress(&self, email: &str) -> impl Future<Output = Result<bool>> + Send;
    /// The suppression list, by address.
    fn suppressions(&self) -> impl Future<Output = Result<Vec<Suppression>>> + Send;
    /// Outbox records with one of these statuses, newest first.
    fn deliveries(
        &self,
        statuses: &[DeliveryStatus],
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DeliveryRow>>> + Send;
    /// Puts a record with one of `from` statuses back in the queue, due at `now`, with its
    /// attempts reset; false if there is no such record in such a status.
    fn requeue(
        &self,
        id: i64,
        from: &[DeliveryStatus],
        now: i64,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Open tasks per assignee.
    fn open_task_counts(&self) -> impl Future<Output = Result<Vec<Count>>> + Send;
    /// Accounts whose score is unknown, per score.
    fn unknown_score_counts(&self) -> impl Future<Output = Result<Vec<Count>>> + Send;
    /// Accounts in all.
    fn account_count(&self) -> impl Future<Output = Result<i64>> + Send;
    /// Holds a journey (keeping the first reason if it is held already) and its pending
    /// outbox records written at `at`; how many records were held.
    fn hold_journey(
        &self,
        journey_id: &str,
        reason: &str,
        at: i64,
    ) -> impl Future<Output = Result<u64>> + Send;
    /// The journeys on hold, with their held records.
    fn holds(&self) -> impl Future<Output = Result<Vec<HeldJourney>>> + Send;
    /// Ends a hold: its records go out (`release`, due at `now`) or are skipped; how many,
    /// `None` if the journey is not held.
    fn end_hold(
        &self,
        journey_id: &str,
        release: bool,
        now: i64,
    ) -> impl Future<Output = Result<Option<u64>>> + Send;
    /// Adds one to a named counter and returns the new value.
    fn next_counter(&self, key: &str) -> impl Future<Output = Result<i64>> + Send;
    /// Tasks, optionally for one assignee and one status, oldest first.
    fn tasks(
        &self,
        assignee: Option<&str>,
        status: Option<TaskStatus>,
    ) -> impl Future<Output = Result<Vec<Task>>> + Send;
    /// An account's score history: (score, value, at ms), oldest first.
    fn score_history(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<(String, f64, i64)>>> + Send;
    /// What was delivered for an account (mails, webhooks, tasks), oldest first.
    fn delivered_to(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<DeliveryRow>>> + Send;
    /// An account's tasks, newest first.
    fn account_tasks(&self, account_id: &str) -> impl Future<Output = Result<Vec<Task>>> + Send;
    /// One task.
    fn task(&self, id: i64) -> impl Future<Output = Result<Option<Task>>> + Send;
    /// Applies a person's change to a task and records it (with `notices` to write when
    /// it changed), in one transaction; a change that is already so writes nothing. A
    /// reassignment counts the new assignee's open tasks under the same lock as task
    /// creation, so a free slot is given once.
    fn change_task(
        &self,
        id: i64,
        change: &TaskChange,
        actor: &str,
        now: i64,
        notices: &[OutboxRecord],
    ) -> impl Future<Output = Result<TaskChangeOutcome>> + Send;
    /// A task's history, oldest first.
    fn task_log(&self, id: i64) -> impl Future<Output = Result<Vec<TaskLogEntry>>> + Send;
    /// An enrollment's history: (time, step, event, detail).
    fn enrollment_log(
        &self,
        enrollment_id: i64,
    ) -> impl Future<Output = Result<Vec<(i64, LogEntry)>>> + Send;
}

/// An open store of either kind.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    Postgres(PostgresStore),
}

/// Opens the database at `url` and applies migrations. Relative SQLite paths are resolved
/// against `base` (the project folder).
pub async fn open(url: &str, base: &std::path::Path) -> Result<AnyStore> {
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        let path = if path == ":memory:" {
            path.to_string()
        } else {
            base.join(path).to_string_lossy().into_owned()
        };
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            // 32 MiB of page cache per connection (256 MiB for the pool): random account
            // reads and updates then stay in memory instead of going back to the file.
            .pragma("cache_size", "-32768")
            .pragma("temp_store", "memory");
        // Eight connections: a pass reads two batches ahead while it writes, and the API's
        // writer and the deliveries run beside it (with four, at 1 000 events/s they waited
        // for connections: p99 101 ms instead of 26–30 ms). A connection to a local file does
        // not go stale: checking each one as it leaves the pool would cost a round trip to
        // its worker thread on every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let store = SqliteStore::new(pool);
        return Ok(AnyStore::Sqlite(if path == ":memory:" {
            store
        } else {
            store.reading_file(path.into())
        }));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url)?;
        return open_postgres(options).await.map(AnyStore::Postgres);
    }
    Err(StoreError::UnsupportedUrl(url.to_string()))
}

/// A fresh, migrated database in memory (journey tests). One connection that never
/// closes: every connection to `:memory:` would be a database of its own.
pub async fn open_memory() -> Result<SqliteStore> {
    let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    sqlx::migrate!("migrations/sqlite").run(&pool).await?;
    Ok(SqliteStore::new(pool))
}

/// Copies the SQLite database at `url` (relative to `base`) into a new file at `to`,
/// reading it through a read-only connection: the source is never written, not even its
/// journal mode (a plan works on the copy).
pub async fn copy_sqlite(url: &str, base: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    };
    let source = base.join(path);
    if !source.is_file() {
        return Err(StoreError::Missing(source.display().to_string()));
    }
    let options = SqliteConnectOptions::new()
        .filename(&source)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    let mut connection = sqlx::ConnectOptions::connect(&options).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(to.to_string_lossy().into_owned())
        .execute(&mut connection)
        .await?;
    sqlx::Connection::close(connection).await?;
    Ok(())
}

/// Opens PostgreSQL with the given options and applies migrations.
pub async fn open_postgres(options: PgConnectOptions) -> Result<PostgresStore> {
    // Statements are prepared once per connection and run many times with other values. After
    // five runs PostgreSQL may switch to one generic plan, and for marking a batch of
    // outbox records it picked one that scans the whole outbox (a batch of 32 took
    // 50–150 ms instead of a few): every run is planned for its own values instead.
    let options = options.options([("plan_cache_mode", "force_custom_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    sqlx::migrate!("migrations/postgres").run(&pool).await?;
    Ok(PostgresStore::new(pool))
}

/// Runs `$body` with `$store` bound to the concrete store inside an [`AnyStore`].
#[macro_export]
macro_rules! with_store {
    ($any:expr, |$store:ident| $body:expr) => {
        match $any {
            $crate::store::AnyStore::Sqlite($store) => $body,
            $crate::store::AnyStore::Postgres($store) => $body,
        }
    };
}

/// Milliseconds for an optional time.
pub(crate) fn millis(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(crate::clock::to_millis)
}
