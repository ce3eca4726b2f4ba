//! The engine: one pass brings every account and enrollment up to date at a given time.
//!
//! A pass ([`Engine::tick`]) runs four phases, each in batches whose writes commit in one
//! transaction:
//!
//! 1. **Changed accounts** — accounts whose inputs changed since their last evaluation
//!    (all of them when the definitions changed): scores, tier, goal and exit checks of
//!    their running enrollments, and entry conditions that *became* true.
//! 2. **Events** — new events enroll subjects into journeys that start on them.
//! 3. **Schedules** — journeys whose cron schedule fired since the last pass.
//! 4. **Due enrollments** — run steps until each has to wait or ends; email, webhook and
//!    task steps write outbox records in the same transaction as the move.
//!
//! Work is incremental: nothing is read for accounts that did not change and enrollments
//! that are not due. Running a pass again at the same time finds nothing to do.

pub mod as_of;
pub mod context;
pub mod journeys;
pub mod scoring;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use minijinja::Environment;
use rhai::Dynamic;
use tokio::sync::oneshot;

use crate::clock::{from_millis, to_millis};
use crate::definitions::config::GuardSettings;
use crate::definitions::journey::{Audience, Entry};
use crate::definitions::{Definitions, Journey};
use crate::model::{AccountState, Contact, Event};
use crate::rules::{Bindings, Rule};
use crate::store::{
    self, Changes, CursorMove, Enrollment, EnrollmentUpdate, NewEnrollment, RuleFields, Store,
    SubjectKey,
};

use journeys::StepContext;

/// Accounts or enrollments per batch (one transaction each).
pub const BATCH: usize = 500;

/// Accounts per batch of a full pass that reads ranges of accounts for their rules alone:
/// larger, because each batch costs hand-offs between threads and a transaction whatever
/// its size, and such a batch holds only what the rules read.
pub const RANGE_BATCH: usize = 2000;

/// The meta key set when the go-live pass has finished: later passes are guarded.
const GUARD_ARMED: &str = "guard_armed";

/// Batches read ahead of the one being evaluated.
const LOADS_AHEAD: usize = 2;

const EVENTS_CURSOR: &str = "events_cursor";
const FINGERPRINT: &str = "definitions_fingerprint";
/// The full re-evaluation under way: `at:ID` (every account after ID is still to be
/// evaluated; `at:` for all of them) or `done`.
const SWEEP: &str = "full_sweep";
const SWEEP_AT: &str = "at:";
const SWEEP_DONE: &str = "done";
/// How long an account may go unevaluated when rules read the time, unless
/// `recheck_interval` says otherwise.
const DEFAULT_RECHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Accounts evaluated.
    pub evaluated: u64,
    /// Accounts whose tier changed.
    pub tier_changes: u64,
    /// Events read.
    pub events: u64,
    /// Schedule firings claimed.
    pub schedule_fires: u64,
    /// Enrollments created.
    pub enrolled: u64,
    /// Enrollment moves.
    pub moved: u64,
    /// Outbox records written.
    pub outbox: u64,
    /// Batches or moves another process got to first.
    pub conflicts: u64,
    /// Rule errors (a formula or condition that failed), counted.
    pub rule_errors: u64,
    /// Accounts whose score is unknown (its formula failed), per score.
    pub unknown_scores: BTreeMap<String, u64>,
    /// Accounts whose tier stayed as it was because a tier rule could not be evaluated.
    pub tiers_kept: u64,
    /// Journeys held by the guard in this pass: journey, records held now, why.
    pub held: Vec<(String, u64, String)>,
    /// New enrollments written in this pass, per journey (for the guard).
    pub enrolled_by_journey: BTreeMap<String, u64>,
    /// Outbox records written in this pass, per journey (for the guard).
    pub outbox_by_journey: BTreeMap<String, u64>,
    /// Whether every account was re-evaluated because the definitions changed.
    pub full_reevaluation: bool,
    /// Milliseconds spent in each phase: changed accounts, events, schedules, due enrollments.
    pub phase_ms: [u64; 4],
}

impl PassReport {
    /// One line saying what the pass at `now` did.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        use crate::text::count;
        let mut text = format!(
            "pass at {}: {} evaluated ({}), {}, {}, {} enrolled, {}, {}",
            now.format("%Y-%m-%d %H:%M UTC"),
            count(self.evaluated, "account", "accounts"),
            count(self.tier_changes, "tier change", "tier changes"),
            count(self.events, "event", "events"),
            count(self.schedule_fires, "schedule run", "schedule runs"),
            self.enrolled,
            count(self.moved, "move", "moves"),
            count(self.outbox, "outbox record", "outbox records"),
        );
        if self.rule_errors > 0 {
            text.push_str(&format!(
                ", {} (see the log)",
                count(self.rule_errors, "rule error", "rule errors")
            ));
        }
        for (score, accounts) in &self.unknown_scores {
            text.push_str(&format!(
                ", {score} unknown for {}",
                count(*accounts, "account", "accounts")
            ));
        }
        for (journey, records, reason) in &self.held {
            text.push_str(&format!(
                "; HELD {journey}: {} held ({reason}) — see `touchline hold`",
                count(*records, "record", "records")
            ));
        }
        if self.tiers_kept > 0 {
            text.push_str(&format!(
                ", {} kept (a tier rule could not be evaluated)",
                count(self.tiers_kept, "tier", "tiers")
            ));
        }
        if self.full_reevaluation {
            text.push_str(" — definitions changed, every account re-evaluated");
        }
        text
    }

    /// True when the pass changed nothing.
    pub fn is_idle(&self) -> bool {
        self.evaluated == 0
            && self.events == 0
            && self.schedule_fires == 0
            && self.enrolled == 0
            && self.moved == 0
    }

    /// Counts what a batch writes, per journey, before it is applied (a batch another
    /// process got to first may count twice: the guard errs on the side of holding).
    fn count(&mut self, changes: &Changes) {
        for new in &changes.new_enrollments {
            *self
                .enrolled_by_journey
                .entry(new.key.journey_id.clone())
                .or_default() += 1;
        }
        for record in changes.updates.iter().flat_map(|u| &u.outbox) {
            *self
                .outbox_by_journey
                .entry(record.journey_id.clone())
                .or_default() += 1;
        }
    }

    fn add(&mut self, applied: store::Applied) {
        self.enrolled += applied.enrolled;
        self.moved += applied.moved;
        self.outbox += applied.outbox;
        self.conflicts += applied.conflicts + u64::from(applied.cursor_lost);
    }
}

/// An engine error.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A background task of the pass failed.
    #[error("a pass task failed: {0}")]
    Task(String),
}

/// Compiled journey versions by (journey id, version hash); `None` for a version that no
/// longer compiles.
type VersionCache = HashMap<(String, String), Option<Arc<Journey>>>;

/// The engine over one store.
pub struct Engine<S: Store> {
    definitions: Arc<Definitions>,
    store: S,
    versions: Mutex<VersionCache>,
    templates: Environment<'static>,
    /// How long an account may go unevaluated when rules read the time (`None`: no rule does).
    time_recheck: Option<chrono::Duration>,
    /// What of an account the scores and tier rules read, when that is all evaluation reads
    /// of an account without running enrollments (`None`: evaluation reads all of it).
    rule_fields: Option<Arc<RuleFields>>,
}

impl<S: Store> std::fmt::Debug for Engine<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("journeys", &self.definitions.journeys.len())
            .finish_non_exhaustive()
    }
}

/// Accounts read for evaluation, with their enrollments and entry edges.
#[derive(Debug, Clone, Default)]
pub struct LoadedBatch {
    /// The accounts.
    pub states: Vec<AccountState>,
    /// Their enrollments, by account.
    pub enrollments: BTreeMap<String, Vec<Enrollment>>,
    /// Entry conditions currently true.
    pub edges: HashSet<SubjectKey>,
}

/// The subjects of a journey at an account: the account itself, or each of its contacts.
fn subjects<'a>(journey: &Journey, state: &'a AccountState) -> Vec<Option<&'a Contact>> {
    match journey.file.audience {
        Audience::Accounts => vec![None],
        Audience::Contacts => state.contacts.iter().map(Some).collect(),
    }
}

fn subject_key(journey_id: &str, account_id: &str, contact: Option<&Contact>) -> SubjectKey {
    SubjectKey {
        journey_id: journey_id.to_string(),
        account_id: account_id.to_string(),
        contact_id: contact.map(|c| c.id.clone()).unwrap_or_default(),
    }
}

impl<S: Store> Engine<S> {
    /// An engine running `definitions` over `store`.
    pub fn new(definitions: Arc<Definitions>, store: S) -> Self {
        let mut templates = journeys::template_environment();
        templates.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        // Every template text is compiled once, keyed by its source.
        for source in template_sources(&definitions) {
            if let Err(error) = templates.add_template_owned(source.clone(), source) {
                tracing::warn!("template does not compile: {error}");
            }
        }
        let time_recheck = definitions.rules().any(Rule::reads_time).then(|| {
            let interval = definitions
                .config
                .recheck_interval
                .as_ref()
                .map_or(DEFAULT_RECHECK, |d| d.value.0);
            chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::hours(1))
        });
        let rule_fields = rule_fields(&definitions).map(Arc::new);
        Self {
            definitions,
            store,
            versions: Mutex::new(HashMap::new()),
            templates,
            time_recheck,
            rule_fields,
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The definitions the engine runs.
    pub fn definitions(&self) -> &Arc<Definitions> {
        &self.definitions
    }

    fn score_names(&self) -> Vec<&str> {
        self.definitions
            .scores
            .iter()
            .map(|s| s.name.as_str())
            .collect()
    }

    /// One pass at time `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<PassReport, EngineError> {
        let mut report = PassReport::default();
        // Read before the pass: a pass that began before any pass finished is part of the
        // go-live, even when another engine process finishes its own first.
        let go_live = self.store.meta(GUARD_ARMED).await?.is_none();
        self.remember_versions(now).await?;
        report.full_reevaluation = self.reevaluate_if_definitions_changed().await?;
        self.store.mark_due_rechecks(to_millis(now)).await?;
        let mut started = std::time::Instant::now();
        let mut lap = |report: &mut PassReport, phase: usize| {
            report.phase_ms[phase] = started.elapsed().as_millis() as u64;
            started = std::time::Instant::now();
        };
        self.evaluate_changed(now, &mut report).await?;
        lap(&mut report, 0);
        self.process_events(now, &mut report).await?;
        lap(&mut report, 1);
        self.fire_schedules(now, &mut report).await?;
        lap(&mut report, 2);
        self.advance_due(now, &mut report).await?;
        lap(&mut report, 3);
        self.guard(go_live, now, &mut report).await?;
        Ok(report)
    }

    /// The blast-radius guard: a journey that enrolled far more in this pass than usual
    /// (more than `guard.max_share_percent` of all accounts, and at least
    /// `guard.min_enrollments`) is held, and so are the records it wrote in this pass and
    /// every pass after, until a person releases or discards them (`touchline hold`). The
    /// first passes on a new database (those that began before any pass had finished) are the
    /// go-live and hold nothing.
    async fn guard(
        &self,
        go_live: bool,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        if go_live {
            if self.store.meta(GUARD_ARMED).await?.is_none() {
                self.store
                    .set_meta(GUARD_ARMED, &to_millis(now).to_string())
                    .await?;
            }
            return Ok(());
        }
        let at = to_millis(now);
        let held: HashMap<String, String> = self
            .store
            .holds()
            .await?
            .into_iter()
            .map(|h| (h.journey_id, h.reason))
            .collect();
        let settings = &self.definitions.config.guard;
        let floor = self
            .definitions
            .journeys
            .values()
            .filter_map(|j| j.file.guard.and_then(|g| g.min_enrollments))
            .chain(Some(settings.min_enrollments()))
            .min()
            .unwrap_or(GuardSettings::MIN_ENROLLMENTS);
        let busy = report.enrolled_by_journey.values().any(|n| *n > floor);
        let errors = report.rule_errors;
        let broken_feed = settings
            .rule_error_limit(report.evaluated)
            .is_some_and(|limit| errors > limit);
        if held.is_empty() && !busy && !broken_feed {
            return Ok(());
        }
        let accounts = u64::try_from(self.store.account_count().await?).unwrap_or(0);
        let enrolled = report.enrolled_by_journey.clone();
        let wrote = report.outbox_by_journey.clone();
        for journey in self.definitions.journeys.values() {
            let count = enrolled.get(&journey.id).copied().unwrap_or(0);
            let limit = settings.limit(journey.file.guard.as_ref(), accounts);
            let reason = match (limit, held.get(&journey.id)) {
                (_, Some(reason)) => format!("still on hold: {reason}"),
                (Some(limit), None) if count > limit => format!(
                    "{count} new enrollments in one pass, more than {limit} ({accounts} accounts)"
                ),
                (Some(_), None) if broken_feed && wrote.contains_key(&journey.id) => format!(
                    "{errors} rule errors in one pass over {} (a data feed may be broken)",
                    crate::text::count(report.evaluated, "account", "accounts")
                ),
                _ => continue,
            };
            if held.contains_key(&journey.id) && !wrote.contains_key(&journey.id) {
                continue;
            }
            let records = self.store.hold_journey(&journey.id, &reason, at).await?;
            if !held.contains_key(&journey.id) {
                tracing::warn!(
                    journey = %journey.id,
                    "held {records} outbox records: {reason}; `touchline hold release {}` sends them",
                    journey.id
                );
            }
            report.held.push((journey.id.clone(), records, reason));
        }
        Ok(())
    }

    /// Has the next pass re-evaluate every account (a sweep through them in id order, which
    /// writes only what changed); a sweep under way starts over. Returns how many accounts
    /// there are.
    pub async fn request_full_reevaluation(&self) -> Result<u64, EngineError> {
        self.store.set_meta(SWEEP, SWEEP_AT).await?;
        Ok(u64::try_from(self.store.account_count().await?).unwrap_or(0))
    }

    async fn remember_versions(&self, now: DateTime<Utc>) -> Result<(), EngineError> {
        for journey in self.definitions.journeys.values() {
            let key = (journey.id.clone(), journey.hash.clone());
            let known = self
                .versions
                .lock()
                .map(|v| v.contains_key(&key))
                .unwrap_or(false);
            if !known {
                self.store
                    .save_journey_version(&journey.id, &journey.hash, &journey.text, to_millis(now))
                    .await?;
                if let Ok(mut versions) = self.versions.lock() {
                    versions.insert(key, Some(Arc::new(journey.clone())));
                }
            }
        }
        Ok(())
    }

    async fn reevaluate_if_definitions_changed(&self) -> Result<bool, EngineError> {
        let stored = self.store.meta(FINGERPRINT).await?;
        if stored.as_deref() == Some(self.definitions.fingerprint.as_str()) {
            return Ok(false);
        }
        self.store.set_meta(SWEEP, SWEEP_AT).await?;
        self.store
            .set_meta(FINGERPRINT, &self.definitions.fingerprint)
            .await?;
        Ok(stored.is_some())
    }

    /// The journey version an enrollment is pinned to (compiled once, then cached).
    async fn version(
        &self,
        journey_id: &str,
        hash: &str,
    ) -> Result<Option<Arc<Journey>>, EngineError> {
        let key = (journey_id.to_string(), hash.to_string());
        if let Some(found) = self.versions.lock().ok().and_then(|v| v.get(&key).cloned()) {
            return Ok(found);
        }
        let compiled = match self.store.journey_version(journey_id, hash).await? {
            Some(text) => match self.definitions.compile_version(journey_id, &text) {
                Ok(journey) => Some(Arc::new(journey)),
                Err(problems) => {
                    let first = problems
                        .first()
                        .map(|d| d.message.clone())
                        .unwrap_or_default();
                    tracing::error!(
                        journey = journey_id,
                        version = hash,
                        "stored journey version no longer compiles: {first}"
                    );
                    None
                }
            },
            None => None,
        };
        if let Ok(mut versions) = self.versions.lock() {
            versions.insert(key, compiled.clone());
        }
        Ok(compiled)
    }

    /// Loads the named accounts (each once, with contacts), keyed by id; also returns the ids.
    async fn states_by_id<'a>(
        &self,
        account_ids: impl Iterator<Item = &'a str>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, HashMap<String, AccountState>), EngineError> {
        let ids: Vec<String> = account_ids
            .map(String::from)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let states = as_of::load_accounts(&self.store, &ids, true, now)
            .await?
            .into_iter()
            .map(|s| (s.account.id.clone(), s))
            .collect();
        Ok((ids, states))
    }

    fn bindings(&self, state: &AccountState, now: DateTime<Utc>) -> Bindings {
        context::bindings(state, &self.score_names(), now)
    }

    fn step_context<'a>(
        &'a self,
        journey: &'a Journey,
        state: &'a AccountState,
        contact: Option<&'a Contact>,
        bindings: &'a mut Bindings,
        now: DateTime<Utc>,
    ) -> StepContext<'a> {
        bindings.set_contact(contact.map_or(Dynamic::UNIT, context::contact_map));
        StepContext {
            definitions: &self.definitions,
            journey,
            state,
            contact,
            bindings,
            templates: &self.templates,
            now,
        }
    }

    // Phase 1 ------------------------------------------------------------------------------

    /// Evaluates every account of a full re-evaluation that is under way, then every changed
    /// account.
    async fn evaluate_changed(
        &self,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        // A sweep another process moved on from is picked up where it stands.
        while let Some(cursor) = self
            .store
            .meta(SWEEP)
            .await?
            .filter(|c| c.as_str() != SWEEP_DONE)
        {
            if !self.evaluate_batches(Some(cursor), now, report).await? {
                break;
            }
        }
        self.evaluate_batches(None, now, report).await?;
        Ok(())
    }

    /// The next batch of accounts after `after`: every account in a sweep, else the changed
    /// ones.
    async fn batch_ids(&self, sweeping: bool, after: &str) -> Result<Vec<String>, EngineError> {
        Ok(if sweeping {
            self.store.account_ids(after, BATCH as i64).await?
        } else {
            self.store.dirty_accounts(after, BATCH as i64).await?
        })
    }

    /// Evaluates the changed accounts, or, given the sweep's cursor, every account after it
    /// (each batch moves the cursor in the transaction of its writes). Storage work runs
    /// beside the rules: while one batch is evaluated, the next [`LOADS_AHEAD`] are read and
    /// the previous one written, each in a task of its own. True when another process moved
    /// the sweep's cursor first (the sweep goes on from where that left it).
    async fn evaluate_batches(
        &self,
        mut sweep: Option<String>,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<bool, EngineError> {
        let sweeping = sweep.is_some();
        let mut after = sweep
            .as_deref()
            .and_then(|c| c.strip_prefix(SWEEP_AT))
            .unwrap_or_default()
            .to_string();
        // Batches being read, each with the id it ends at.
        let mut loading: std::collections::VecDeque<Loading> = std::collections::VecDeque::new();
        // A full pass's ranges are read side by side, each told where it starts by the one
        // before as soon as that knows where it ends: finding a range's end never holds up
        // the rules.
        let mut next_start: Option<oneshot::Receiver<Option<String>>> = None;
        let mut exhausted = false;
        let mut writing: Option<
            tokio::task::JoinHandle<Result<store::Applied, store::StoreError>>,
        > = None;
        let mut lost = false;
        loop {
            // Keep reading ahead: batches read at once use both cores (SQLite reads side by
            // side on separate connections).
            while !exhausted && loading.len() < LOADS_AHEAD {
                let needs = self.needs();
                let load = match needs.range_fields().filter(|_| sweeping) {
                    // A full pass over accounts read for their rules alone reads each batch
                    // as a range of ids.
                    Some(fields) => {
                        let start = next_start.take().unwrap_or_else(|| {
                            let (first, start) = oneshot::channel();
                            let _ = first.send(Some(after.clone()));
                            start
                        });
                        let (end, next) = oneshot::channel();
                        next_start = Some(next);
                        tokio::spawn(load_next_range(self.store.clone(), start, end, fields, now))
                    }
                    None => {
                        let ids = self.batch_ids(sweeping, &after).await?;
                        let Some(last) = ids.last() else {
                            exhausted = true;
                            break;
                        };
                        after = last.clone();
                        let (store, last) = (self.store.clone(), last.clone());
                        tokio::spawn(async move {
                            let batch = load_batch(store, ids, needs, now).await?;
                            Ok(Some((last, batch)))
                        })
                    }
                };
                loading.push_back(load);
            }
            let Some(load) = loading.pop_front() else {
                break;
            };
            let Some((last, batch)) = load.await.map_err(join_error)?? else {
                // The ranges have passed the last account; those still reading find none.
                exhausted = true;
                continue;
            };
            let mut changes = self.evaluate_loaded(batch, now, report).await?;
            if let Some(from) = sweep.take() {
                let to = if exhausted && loading.is_empty() {
                    SWEEP_DONE.to_string()
                } else {
                    format!("{SWEEP_AT}{last}")
                };
                changes.cursor = Some(sweep_move(from, to.clone()));
                sweep = Some(to);
            }
            if let Some(previous) = writing.take() {
                let applied = previous.await.map_err(join_error)??;
                lost |= applied.cursor_lost;
                report.add(applied);
            }
            if lost {
                break;
            }
            let store = self.store.clone();
            report.count(&changes);
            writing = Some(tokio::spawn(async move { store.apply(&changes).await }));
        }
        if let Some(last) = writing {
            let applied = last.await.map_err(join_error)??;
            lost |= applied.cursor_lost;
            report.add(applied);
        }
        // A sweep that found nothing (left) to read is done.
        if let Some(from) = sweep.filter(|s| s != SWEEP_DONE && !lost) {
            let changes = Changes {
                now: to_millis(now),
                cursor: Some(sweep_move(from, SWEEP_DONE.into())),
                ..Changes::default()
            };
            let applied = self.store.apply(&changes).await?;
            report.add(applied);
            lost |= applied.cursor_lost;
        }
        Ok(lost)
    }

    /// What reading a batch for evaluation needs.
    fn needs(&self) -> Needs {
        Needs {
            contact_rules: self.contact_rules(),
            edges: self
                .definitions
                .journeys
                .values()
                .any(|j| matches!(j.file.entry, Entry::Condition(_))),
            rule_fields: self.rule_fields.clone(),
        }
    }

    /// Whether evaluation needs contacts whatever the enrollments: a contact journey entered
    /// by condition.
    fn contact_rules(&self) -> bool {
        self.definitions.journeys.values().any(|j| {
            j.file.audience == Audience::Contacts && matches!(j.file.entry, Entry::Condition(_))
        })
    }

    /// Reads what evaluating these accounts needs: their data, enrollments and entry edges.
    pub async fn load_batch(
        &self,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<LoadedBatch, EngineError> {
        load_batch(self.store.clone(), ids.to_vec(), self.needs(), now).await
    }

    /// Reads a full pass's batch, the accounts after `after` up to `through`, as a pass over
    /// accounts read for their rules alone does (see [`Store::sweep_bound`]); `None` when
    /// this project's passes read batches by id.
    pub async fn load_range(
        &self,
        after: &str,
        through: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<LoadedBatch>, EngineError> {
        let Some(fields) = self.needs().range_fields() else {
            return Ok(None);
        };
        let (after, through) = (after.to_string(), through.to_string());
        load_range(self.store.clone(), after, through, fields, now)
            .await
            .map(Some)
    }

    /// Evaluates loaded accounts: scores, tier, goal and exit of running enrollments, and
    /// entry conditions. Reads nothing from the store for journeys whose version is cached,
    /// which is what the benchmark's floor measures.
    pub async fn evaluate_loaded(
        &self,
        batch: LoadedBatch,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<Changes, EngineError> {
        let LoadedBatch {
            states,
            enrollments,
            edges,
        } = batch;
        let mut changes = Changes {
            now: to_millis(now),
            ..Changes::default()
        };
        let score_names = self.score_names();
        let empty = Vec::new();
        let mut shared = None;
        let mut own;
        for mut state in states {
            let account_enrollments = enrollments.get(&state.account.id).unwrap_or(&empty);
            // Without running enrollments, the scores and tier rules are all that read it:
            // one set of bindings serves every such account in turn.
            let fields = self
                .rule_fields
                .as_deref()
                .filter(|_| !has_active(account_enrollments));
            let bindings = match fields {
                Some(fields) => context::rebind(&mut shared, &state, &score_names, now, fields),
                None => {
                    own = context::bindings(&state, &score_names, now);
                    &mut own
                }
            };
            let scored = scoring::score(&self.definitions, bindings);
            report.rule_errors += scored.errors.len() as u64;
            for error in &scored.errors {
                tracing::warn!(account = %state.account.id, "{error}");
            }
            for name in scored.unknown.keys() {
                *report.unknown_scores.entry(name.clone()).or_default() += 1;
            }
            if let Some(why) = &scored.tier_blocked {
                report.tiers_kept += 1;
                tracing::warn!(account = %state.account.id, "tier kept: {why}");
            }
            let recheck_at = self.recheck_at(&state, now);
            let tier = scored.tier(&self.definitions);
            // Writing an evaluation that changes nothing stored is skipped (and not built).
            let unchanged = state.evaluated_version >= state.data_version
                && scored.scores == state.scores
                && scored.unknown == state.unknown_scores
                && tier.is_none_or(|(tier, rule)| {
                    state.tier.as_deref() == Some(tier) && state.tier_rule.as_deref() == Some(rule)
                })
                && recheck_at.is_none_or(|at| state.recheck_at.is_some_and(|stored| stored <= at));
            report.evaluated += 1;
            if !unchanged {
                let mut evaluation = scoring::evaluation(
                    &self.definitions,
                    &state.account.id,
                    state.data_version,
                    &state.scores,
                    state.tier.as_deref(),
                    &scored,
                );
                evaluation.recheck_at = recheck_at;
                // A first tier is recorded in the history but is not a change.
                report.tier_changes +=
                    u64::from(matches!(evaluation.tier_changed_from, Some(Some(_))));
                changes.evaluations.push(evaluation);
            }
            state.scores = scored.scores;
            state.unknown_scores = scored.unknown;
            if let Some((tier, rule)) = tier
                && state.tier_rule.as_deref() != Some(rule)
            {
                state.tier = Some(tier.to_string());
                state.tier_rule = Some(rule.to_string());
            }

            for enrollment in account_enrollments
                .iter()
                .filter(|e| e.status == store::EnrollmentStatus::Active)
            {
                let Some(journey) = self
                    .version(&enrollment.journey_id, &enrollment.version_hash)
                    .await?
                else {
                    continue;
                };
                let contact = state
                    .contacts
                    .iter()
                    .find(|c| c.id == enrollment.contact_id);
                let mut ctx = self.step_context(&journey, &state, contact, bindings, now);
                if let Some(update) = journeys::on_data_change(&mut ctx, enrollment) {
                    changes.updates.push(update);
                }
            }
            self.condition_entries(
                &state,
                account_enrollments,
                &edges,
                bindings,
                now,
                &mut changes,
            );
        }
        Ok(changes)
    }

    /// When to evaluate the account again while nothing about it changes: when data dated
    /// later comes due, or after the recheck interval when rules read the time.
    fn recheck_at(&self, state: &AccountState, now: DateTime<Utc>) -> Option<i64> {
        // Each account comes back between half the interval and the whole of it, at a point
        // fixed by its id: the base is spread over the hour instead of all at once.
        let by_time = self.time_recheck.map(|interval| {
            let interval = interval.num_milliseconds().max(2);
            let spread = (stable_hash(&state.account.id) % (interval as u64 / 2)) as i64;
            to_millis(now) + interval - spread
        });
        match (state.next_change_at, by_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Entry conditions: enroll where (segment and condition) went from false to true.
    fn condition_entries(
        &self,
        state: &AccountState,
        enrollments: &[Enrollment],
        edges: &HashSet<SubjectKey>,
        bindings: &mut Bindings,
        now: DateTime<Utc>,
        changes: &mut Changes,
    ) {
        let engine = &self.definitions.engine;
        for journey in self.definitions.journeys.values() {
            let (Entry::Condition(_), Some(rule)) = (&journey.file.entry, &journey.entry_rule)
            else {
                continue;
            };
            for contact in subjects(journey, state) {
                bindings.set_contact(contact.map_or(Dynamic::UNIT, context::contact_map));
                let key = subject_key(&journey.id, &state.account.id, contact);
                let was = edges.contains(&key);
                let earlier =
                    journeys::subject_enrollments(enrollments, &key.journey_id, &key.contact_id);
                let verdict =
                    journeys::entry_verdict(engine, journey, state, bindings, &earlier, was, now);
                if verdict == journeys::EntryVerdict::Enters {
                    changes.new_enrollments.push(NewEnrollment {
                        key: key.clone(),
                        version_hash: journey.hash.clone(),
                        entered_at: to_millis(now),
                        reason: format!("entry condition became true: {}", rule.source.trim()),
                    });
                }
                match (verdict.condition_holds(), was) {
                    (Some(true), false) => changes.edges_set.push(key),
                    (Some(false), true) => changes.edges_cleared.push(key),
                    _ => {}
                }
            }
        }
    }

    // Phase 2 ------------------------------------------------------------------------------

    async fn process_events(
        &self,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        let mut by_event: HashMap<&str, Vec<&Journey>> = HashMap::new();
        for journey in self.definitions.journeys.values() {
            if let Entry::Event(name) = &journey.file.entry {
                by_event
                    .entry(name.value.as_str())
                    .or_default()
                    .push(journey);
            }
        }
        // Events read before their time (they wait in the store), whose time has come.
        loop {
            let due = self
                .store
                .due_future_events(to_millis(now), BATCH as i64)
                .await?;
            if due.is_empty() {
                break;
            }
            let mut changes = Changes {
                now: to_millis(now),
                events_released: due.iter().map(|(seq, _)| *seq).collect(),
                ..Changes::default()
            };
            let events: Vec<&Event> = due.iter().map(|(_, e)| e).collect();
            self.enroll_on_events(&by_event, &events, now, &mut changes)
                .await?;
            report.events += due.len() as u64;
            report.count(&changes);
            report.add(self.store.apply(&changes).await?);
        }
        // New events, in the order they arrived; those dated after the pass wait for their time.
        loop {
            let cursor = self.store.meta(EVENTS_CURSOR).await?;
            let after: i64 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
            let events = self.store.events_after(after, BATCH as i64).await?;
            let Some((last_seq, _)) = events.last() else {
                break;
            };
            let (ready, later): (Vec<_>, Vec<_>) = events.iter().partition(|(_, e)| e.at <= now);
            let mut changes = Changes {
                now: to_millis(now),
                cursor: Some(CursorMove {
                    key: EVENTS_CURSOR.into(),
                    from: cursor.clone(),
                    to: last_seq.to_string(),
                }),
                events_deferred: later
                    .iter()
                    .map(|(seq, e)| (*seq, to_millis(e.at)))
                    .collect(),
                ..Changes::default()
            };
            let ready: Vec<&Event> = ready.iter().map(|(_, e)| e).collect();
            self.enroll_on_events(&by_event, &ready, now, &mut changes)
                .await?;
            report.events += ready.len() as u64;
            report.count(&changes);
            let applied = self.store.apply(&changes).await?;
            report.add(applied);
            // Caught up: events arriving from now on belong to the next pass, which they
            // wake. Reading on while they trickle in would keep this pass, and everything
            // it queued, from finishing.
            if !applied.cursor_lost && events.len() < BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Enrolls the subjects of these events into the journeys that start on them.
    async fn enroll_on_events(
        &self,
        by_event: &HashMap<&str, Vec<&Journey>>,
        events: &[&Event],
        now: DateTime<Utc>,
        changes: &mut Changes,
    ) -> Result<(), EngineError> {
        let relevant: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|e| by_event.contains_key(e.name.as_str()))
            .collect();
        let (ids, states) = self
            .states_by_id(relevant.iter().map(|e| e.account_id.as_str()), now)
            .await?;
        let enrollments = group_by_account(self.store.enrollments_of(&ids).await?);
        // Each account's rule data is built once per batch, however many events it has.
        let mut bindings_by_account: HashMap<&str, Bindings> = HashMap::new();
        for event in relevant {
            let Some(state) = states.get(&event.account_id) else {
                continue;
            };
            let bindings = bindings_by_account
                .entry(state.account.id.as_str())
                .or_insert_with(|| self.bindings(state, now));
            let empty = Vec::new();
            let existing = enrollments.get(&state.account.id).unwrap_or(&empty);
            for journey in &by_event[event.name.as_str()] {
                let candidates: Vec<Option<&Contact>> =
                    match (journey.file.audience, &event.contact_id) {
                        (Audience::Contacts, Some(id)) => state
                            .contacts
                            .iter()
                            .filter(|c| c.id == *id)
                            .map(Some)
                            .collect(),
                        _ => subjects(journey, state),
                    };
                let reason = format!(
                    "event `{}` at {}",
                    event.name,
                    event.at.format("%Y-%m-%d %H:%M UTC")
                );
                self.enroll_if_eligible(
                    journey, state, candidates, existing, bindings, now, &reason, changes,
                );
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn enroll_if_eligible(
        &self,
        journey: &Journey,
        state: &AccountState,
        candidates: Vec<Option<&Contact>>,
        existing: &[Enrollment],
        bindings: &mut Bindings,
        now: DateTime<Utc>,
        reason: &str,
        changes: &mut Changes,
    ) {
        let engine = &self.definitions.engine;
        for contact in candidates {
            bindings.set_contact(contact.map_or(Dynamic::UNIT, context::contact_map));
            let key = subject_key(&journey.id, &state.account.id, contact);
            let earlier = journeys::subject_enrollments(existing, &key.journey_id, &key.contact_id);
            let queued = changes.new_enrollments.iter().any(|n| n.key == key);
            let verdict =
                journeys::entry_verdict(engine, journey, state, bindings, &earlier, false, now);
            if queued || verdict != journeys::EntryVerdict::Enters {
                continue;
            }
            changes.new_enrollments.push(NewEnrollment {
                key,
                version_hash: journey.hash.clone(),
                entered_at: to_millis(now),
                reason: reason.to_string(),
            });
        }
    }

    // Phase 3 ------------------------------------------------------------------------------

    async fn fire_schedules(
        &self,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        let zone = self.definitions.config.timezone.value.0;
        for journey in self.definitions.journeys.values() {
            let Entry::Schedule(schedule) = &journey.file.entry else {
                continue;
            };
            let since_key = format!("schedule_since:{}", journey.id);
            let since = match self.store.last_cron_fire(&journey.id).await? {
                Some(last) => from_millis(last),
                None => match self.store.meta(&since_key).await? {
                    Some(since) => since.parse().ok().map(from_millis).unwrap_or(now),
                    None => {
                        // A schedule counts from when touchline first saw the journey.
                        self.store
                            .set_meta(&since_key, &to_millis(now).to_string())
                            .await?;
                        now
                    }
                },
            };
            // After downtime, only the latest missed firing runs: a sweep, not a flood.
            let Some(fire_at) = schedule
                .value
                .latest_at_or_before(&now.with_timezone(&zone))
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t > since)
            else {
                continue;
            };
            if !self
                .store
                .claim_cron_fire(&journey.id, to_millis(fire_at))
                .await?
            {
                continue;
            }
            report.schedule_fires += 1;
            let reason = format!(
                "schedule `{}` fired at {}",
                schedule.value.text,
                fire_at.format("%Y-%m-%d %H:%M UTC")
            );
            let mut after = String::new();
            loop {
                let ids = self.store.account_ids(&after, BATCH as i64).await?;
                let Some(last) = ids.last() else { break };
                after = last.clone();
                let with_contacts = journey.file.audience == Audience::Contacts;
                let states = as_of::load_accounts(&self.store, &ids, with_contacts, now).await?;
                let enrollments = group_by_account(self.store.enrollments_of(&ids).await?);
                let mut changes = Changes {
                    now: to_millis(now),
                    ..Changes::default()
                };
                for state in &states {
                    let mut bindings = self.bindings(state, now);
                    let empty = Vec::new();
                    let existing = enrollments.get(&state.account.id).unwrap_or(&empty);
                    self.enroll_if_eligible(
                        journey,
                        state,
                        subjects(journey, state),
                        existing,
                        &mut bindings,
                        now,
                        &reason,
                        &mut changes,
                    );
                }
                report.count(&changes);
                report.add(self.store.apply(&changes).await?);
            }
        }
        Ok(())
    }

    // Phase 4 ------------------------------------------------------------------------------

    async fn advance_due(
        &self,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> Result<(), EngineError> {
        // Every due enrollment is moved (to a later time) or ended, so asking again for what
        // is due finds the next ones; `seen` guards against one that somehow stays due.
        let mut seen: HashSet<i64> = HashSet::new();
        loop {
            let due: Vec<Enrollment> = self
                .store
                .due_enrollments(to_millis(now), BATCH as i64)
                .await?
                .into_iter()
                .filter(|e| seen.insert(e.id))
                .collect();
            if due.is_empty() {
                break;
            }
            let (_, states) = self
                .states_by_id(due.iter().map(|e| e.account_id.as_str()), now)
                .await?;
            let mut changes = Changes {
                now: to_millis(now),
                ..Changes::default()
            };
            let mut bindings_by_account: HashMap<&str, Bindings> = HashMap::new();
            for enrollment in &due {
                let Some(state) = states.get(&enrollment.account_id) else {
                    changes
                        .updates
                        .push(failed(enrollment, "the account no longer exists"));
                    continue;
                };
                let Some(journey) = self
                    .version(&enrollment.journey_id, &enrollment.version_hash)
                    .await?
                else {
                    changes.updates.push(failed(
                        enrollment,
                        "its journey version can no longer be loaded",
                    ));
                    continue;
                };
                let contact = state
                    .contacts
                    .iter()
                    .find(|c| c.id == enrollment.contact_id);
                if journey.file.audience == Audience::Contacts && contact.is_none() {
                    changes
                        .updates
                        .push(failed(enrollment, "the contact no longer exists"));
                    continue;
                }
                let bindings = bindings_by_account
                    .entry(state.account.id.as_str())
                    .or_insert_with(|| self.bindings(state, now));
                let mut ctx = self.step_context(&journey, state, contact, bindings, now);
                changes
                    .updates
                    .push(journeys::advance(&mut ctx, enrollment));
            }
            report.count(&changes);
            report.add(self.store.apply(&changes).await?);
        }
        Ok(())
    }
}

/// What reading a batch for evaluation needs.
#[derive(Debug, Clone)]
struct Needs {
    /// Contacts of every account (a contact journey entered by condition).
    contact_rules: bool,
    /// Entry edges (a journey entered by condition).
    edges: bool,
    /// Only these fields of accounts without running enrollments.
    rule_fields: Option<Arc<RuleFields>>,
}

impl Needs {
    /// What a full pass reads of each account when it reads its batches as ranges of ids:
    /// only the rules' fields, with no contacts (`None`: it reads them by id).
    fn range_fields(&self) -> Option<Arc<RuleFields>> {
        self.rule_fields.clone().filter(|_| !self.contact_rules)
    }
}

/// Whether any of these enrollments is running.
fn has_active(enrollments: &[Enrollment]) -> bool {
    enrollments
        .iter()
        .any(|e| e.status == store::EnrollmentStatus::Active)
}

/// What of an account the scores and tier rules read, when no journey is entered by
/// condition (evaluation then reads nothing else of an account without running enrollments)
/// and every rule reads the account through property chains only.
fn rule_fields(definitions: &Definitions) -> Option<RuleFields> {
    if definitions
        .journeys
        .values()
        .any(|j| matches!(j.file.entry, Entry::Condition(_)))
    {
        return None;
    }
    let mut fields = RuleFields {
        metrics: Some(Default::default()),
        ..RuleFields::default()
    };
    let rules = definitions.scores.iter().map(|s| &s.rule);
    let tiers = definitions.tiers.iter().filter_map(|t| t.rule.as_ref());
    for rule in rules.chain(tiers) {
        for path in rule.account_reads()? {
            let (first, rest) = match path.split_once('.') {
                Some((first, rest)) => (first, Some(rest)),
                None => (path.as_str(), None),
            };
            match (first, rest) {
                ("scores" | "tier", _) => {}
                ("metrics", Some(rest)) => {
                    let name = rest.split('.').next().unwrap_or(rest);
                    if let Some(metrics) = &mut fields.metrics {
                        metrics.insert(name.to_string());
                    }
                }
                ("metrics", None) => fields.metrics = None,
                ("attributes", _) => fields.attributes = true,
                (fact, _) if crate::model::ACCOUNT_FACTS.contains(&fact) => {
                    fields.facts.insert(fact.to_string());
                }
                _ => return None,
            }
        }
    }
    Some(fields)
}

/// Reads a batch of accounts for evaluation. Contacts are read only when a rule may look at
/// one: a contact journey entered by condition, or a running contact enrollment. Accounts
/// without running enrollments are read with only the fields the rules read, when that is
/// known.
async fn load_batch<S: Store>(
    store: S,
    ids: Vec<String>,
    needs: Needs,
    now: DateTime<Utc>,
) -> Result<LoadedBatch, EngineError> {
    let enrollments = group_by_account(store.enrollments_of(&ids).await?);
    let contact_rules = needs.contact_rules;
    let mut states = match &needs.rule_fields {
        Some(fields) if !contact_rules => {
            let mut states = store.load_rule_inputs(&ids, fields).await?;
            read_running_whole(&store, &mut states, &enrollments).await?;
            states
        }
        _ => store.load_accounts(&ids, contact_rules).await?,
    };
    if !contact_rules {
        read_goal_contacts(&store, &mut states, &enrollments).await?;
    }
    as_of::see_as_of(&store, &mut states, now).await?;
    let edges = if needs.edges {
        store.edges_of(&ids).await?.into_iter().collect()
    } else {
        HashSet::new()
    };
    Ok(LoadedBatch {
        states,
        enrollments,
        edges,
    })
}

/// Reads a full pass's batch, the accounts after `after` up to `through`, when the rules
/// read only `fields` and no journey is entered by condition (so only running enrollments
/// matter, and there are no entry edges).
async fn load_range<S: Store>(
    store: S,
    after: String,
    through: String,
    fields: Arc<RuleFields>,
    now: DateTime<Utc>,
) -> Result<LoadedBatch, EngineError> {
    let store::SweepInputs {
        mut states,
        running,
    } = store.sweep_inputs(&after, &through, &fields).await?;
    let enrollments = if running.is_empty() {
        BTreeMap::new()
    } else {
        group_by_account(store.enrollments_of(&running).await?)
    };
    read_running_whole(&store, &mut states, &enrollments).await?;
    read_goal_contacts(&store, &mut states, &enrollments).await?;
    as_of::see_as_of(&store, &mut states, now).await?;
    Ok(LoadedBatch {
        states,
        enrollments,
        edges: HashSet::new(),
    })
}

/// A batch being read for evaluation: the id it ends at, and the batch (`None` for a full
/// pass's range past the last account).
type Loading = tokio::task::JoinHandle<Result<Option<(String, LoadedBatch)>, EngineError>>;

/// Reads a full pass's next range: it starts where the range before it ends (`start`;
/// `None` once past the last account), tells the range after it where it ends itself
/// (`end`), then reads its accounts.
async fn load_next_range<S: Store>(
    store: S,
    start: oneshot::Receiver<Option<String>>,
    end: oneshot::Sender<Option<String>>,
    fields: Arc<RuleFields>,
    now: DateTime<Utc>,
) -> Result<Option<(String, LoadedBatch)>, EngineError> {
    // A range before that failed reports its own error, ahead of this one.
    let Ok(Some(after)) = start.await else {
        let _ = end.send(None);
        return Ok(None);
    };
    let through = store.sweep_bound(&after, RANGE_BATCH as i64).await?;
    let _ = end.send(through.clone());
    let Some(through) = through else {
        return Ok(None);
    };
    let batch = load_range(store, after, through.clone(), fields, now).await?;
    Ok(Some((through, batch)))
}

/// The accounts with an enrollment for which `keep` holds.
fn accounts_with(
    enrollments: &BTreeMap<String, Vec<Enrollment>>,
    keep: impl Fn(&Enrollment) -> bool,
) -> Vec<String> {
    enrollments
        .iter()
        .filter(|(_, list)| list.iter().any(&keep))
        .map(|(account, _)| account.clone())
        .collect()
}

/// Replaces the rule inputs of accounts with running enrollments by the whole account: a
/// step's goal or exit may read anything.
async fn read_running_whole<S: Store>(
    store: &S,
    states: &mut [AccountState],
    enrollments: &BTreeMap<String, Vec<Enrollment>>,
) -> Result<(), EngineError> {
    let running = accounts_with(enrollments, |e| e.status == store::EnrollmentStatus::Active);
    if running.is_empty() {
        return Ok(());
    }
    let mut whole: HashMap<String, AccountState> = store
        .load_accounts(&running, false)
        .await?
        .into_iter()
        .map(|s| (s.account.id.clone(), s))
        .collect();
    for state in states {
        if let Some(full) = whole.remove(&state.account.id) {
            *state = full;
        }
    }
    Ok(())
}

/// Adds the contacts of the accounts whose running contact enrollments need a goal check.
async fn read_goal_contacts<S: Store>(
    store: &S,
    states: &mut [AccountState],
    enrollments: &BTreeMap<String, Vec<Enrollment>>,
) -> Result<(), EngineError> {
    let needed = accounts_with(enrollments, |e| {
        e.status == store::EnrollmentStatus::Active && !e.contact_id.is_empty()
    });
    if needed.is_empty() {
        return Ok(());
    }
    let mut contacts: HashMap<String, Vec<Contact>> = HashMap::new();
    for contact in store.contacts_of(&needed).await? {
        contacts
            .entry(contact.account_id.clone())
            .or_default()
            .push(contact);
    }
    for state in states {
        if let Some(list) = contacts.remove(&state.account.id) {
            state.contacts = list;
        }
    }
    Ok(())
}

fn sweep_move(from: String, to: String) -> CursorMove {
    CursorMove {
        key: SWEEP.into(),
        from: Some(from),
        to,
    }
}

fn join_error(error: tokio::task::JoinError) -> EngineError {
    EngineError::Task(error.to_string())
}

/// Every template text the definitions hold: mail parts, task texts, webhook body strings.
fn template_sources(definitions: &Definitions) -> Vec<String> {
    fn strings(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(map) => map.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut sources = Vec::new();
    for template in definitions.template_files.values() {
        sources.extend([template.subject.clone(), template.text.clone()]);
        sources.extend(template.html.as_deref().map(journeys::html_name));
    }
    for step in definitions.journeys.values().flat_map(|j| &j.steps) {
        match &step.action {
            crate::definitions::Action::Task(task) => {
                sources.push(task.title.clone());
                sources.extend(task.description.clone());
                sources.extend(task.key.clone());
            }
            crate::definitions::Action::Webhook(webhook) => {
                if let Some(body) = &webhook.body {
                    strings(body, &mut sources);
                }
            }
            _ => {}
        }
    }
    sources.sort();
    sources.dedup();
    sources
}

fn failed(enrollment: &Enrollment, reason: &str) -> EnrollmentUpdate {
    EnrollmentUpdate {
        before: enrollment.clone(),
        status: store::EnrollmentStatus::Failed,
        step_index: enrollment.step_index,
        wait_started_at: None,
        next_due_at: None,
        end_reason: Some(reason.into()),
        outbox: Vec::new(),
        log: vec![store::LogEntry {
            step_id: None,
            event: "failed".into(),
            detail: reason.into(),
        }],
    }
}

/// A hash of `text` that is the same in every process and release (FNV-1a).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn group_by_account(enrollments: Vec<Enrollment>) -> BTreeMap<String, Vec<Enrollment>> {
    let mut grouped: BTreeMap<String, Vec<Enrollment>> = BTreeMap::new();
    for enrollment in enrollments {
        grouped
            .entry(enrollment.account_id.clone())
            .or_default()
            .push(enrollment);
    }
    grouped
}
