//! The SQL behind [`Store`], written once and instantiated for SQLite and PostgreSQL.
//!
//! Both databases accept the same statements here: `$N` placeholders, `ON CONFLICT` upserts,
//! `RETURNING`, partial indexes, times as integer milliseconds and JSON as text. A macro
//! stamps out one implementation per database, so each is a plain, monomorphic sqlx user.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sha2::{Digest, Sha256};
use sqlx::{QueryBuilder, Row};

use super::{
    Applied, Changes, Count, DeliveryOutcome, DeliveryRow, DeliveryStatus, Enrollment,
    EnrollmentStatus, EnrollmentUpdate, HeldConnection, HeldJourney, Import, ImportOutcome,
    Latency, LogEntry, LoginsAsOf, MetricsAsOf, NewTask, OutboxItem, OutboxRecord, Payload,
    RecipientFacts, Result, RuleFields, ScoreAt, StepOutboxCount, StepScoreChange, Store,
    StoreError, SubjectKey, Suppression, SweepInputs, Task, TaskChange, TaskChangeOutcome,
    TaskLogEntry, TaskStatus, TaskWrite, TierChange, millis,
};
use crate::clock::{from_millis, to_millis};
use crate::model::{Account, AccountState, Contact, Event, MetricValue};

/// Rows per multi-row statement: below both databases' parameter limits.
pub(super) const CHUNK: usize = 500;

/// Enrollments moved per statement: each column's value is a `CASE` over the chunk's ids,
/// which every moved row evaluates, so chunks stay small.
const MOVE_CHUNK: usize = 100;
const ACCOUNT_COLUMNS: &str = "id, name, plan, arr, mrr, industry, owner, timezone, goals, status, contract_start, \
     contract_end, created_at, last_login_at, attributes, row_hash, metrics, scores, unknown_scores, tier, tier_rule, data_version, evaluated_version, metrics_latest_at, recheck_at";

/// The last of the first `$2` account ids after `$1`.
pub(super) const SWEEP_BOUND: &str =
    "SELECT max(id) FROM (SELECT id FROM accounts WHERE id > $1 ORDER BY id LIMIT $2) batch";

/// The accounts with running enrollments among those with ids after `$1` up to `$2`.
pub(super) const SWEEP_RUNNING: &str = "SELECT DISTINCT account_id FROM enrollments \
     WHERE status = 'active' AND account_id > $1 AND account_id <= $2 ORDER BY account_id";

const CONTACT_COLUMNS: &str = "id, account_id, email, name, first_name, role, locale, timezone, subscribed, created_at, last_login_at, attributes";

const DELIVERY_COLUMNS: &str = "id, idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, \
     contact_id, payload, status, attempts, next_attempt_at, last_error, held_reason, delivered_at";
const TASK_COLUMNS: &str = "id, dedupe_key, account_id, journey_id, step_id, title, description, assignee, \
     priority, status, due_at, reason, created_at, closed_reason, updated_at, snoozed_until, note";
const ENROLLMENT_COLUMNS: &str = "id, journey_id, version_hash, account_id, contact_id, status, step_index, \
     wait_started_at, next_due_at, entered_at, ended_at, end_reason, version";

fn row_hash<T: serde::Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{e}: {text}")))
}

/// The numbers of a map of names to numbers (an account's metrics or scores), those named in
/// `names` only when given, read in one pass over the text without parsing the others: a
/// full pass reads a few metrics of each account out of dozens. touchline writes these
/// columns itself, as compact JSON (`{"a":1.5,"b":2}`), and only that shape is read here.
/// `None` (the caller parses the whole object) for anything else: spaces, escapes in a name,
/// a value that is not a plain number, a key read that appears twice.
fn compact_numbers(text: &str, names: Option<&BTreeSet<String>>) -> Option<BTreeMap<String, f64>> {
    let bytes = text.as_bytes();
    let (b'{', b'}') = (*bytes.first()?, *bytes.last()?) else {
        return None;
    };
    let end = bytes.len() - 1;
    let mut at = 1;
    let mut found = BTreeMap::new();
    // One byte loop: the entries are short, so it beats a search call per delimiter.
    while at < end {
        if bytes[at] != b'"' {
            return None;
        }
        let name_start = at + 1;
        at = name_start;
        while at < end && bytes[at] != b'"' {
            if bytes[at] == b'\\' {
                return None;
            }
            at += 1;
        }
        let name = text.get(name_start..at)?;
        at += 1;
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = at + 1;
        at = value_start;
        while at < end && bytes[at] != b',' {
            at += 1;
        }
        let number = text.get(value_start..at)?;
        if !number.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            return None;
        }
        if names.is_none_or(|names| names.contains(name)) {
            let number: f64 = number.parse().ok().filter(|n: &f64| n.is_finite())?;
            if found.insert(name.to_string(), number).is_some() {
                return None;
            }
            // Every named metric found: the rest of the text cannot change them (the
            // database writes each name once).
            if names.is_some_and(|names| found.len() == names.len()) {
                return Some(found);
            }
        }
        // Past the comma; a trailing comma leaves nothing to read and fails below.
        at += 1;
        if at == end {
            return None;
        }
    }
    Some(found)
}

/// A map of names to numbers that touchline wrote (an account's metrics or scores), read
/// through the one-pass scan when it has the compact shape, else parsed whole.
pub(super) fn numbers_json(text: &str) -> Result<BTreeMap<String, f64>> {
    match compact_numbers(text, None) {
        Some(numbers) => Ok(numbers),
        None => from_json(text),
    }
}

/// The metrics named in `names` of an account's metrics object, read without building the
/// others.
pub(super) fn metrics_named(text: &str, names: &BTreeSet<String>) -> Result<BTreeMap<String, f64>> {
    if let Some(picked) = compact_numbers(text, Some(names)) {
        return Ok(picked);
    }
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};

    /// A key, borrowed from the text when it has no escapes.
    struct Key<'de>(std::borrow::Cow<'de, str>);
    impl<'de> serde::Deserialize<'de> for Key<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a metric name")
                }
                fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                    Ok(Key(std::borrow::Cow::Borrowed(v)))
                }
                fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                    Ok(Key(std::borrow::Cow::Owned(v.to_string())))
                }
            }
            d.deserialize_str(KeyVisitor)
        }
    }
    struct Pick<'a>(&'a BTreeSet<String>);
    impl<'de> Visitor<'de> for Pick<'_> {
        type Value = BTreeMap<String, f64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object of metrics")
        }
        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                if self.0.contains(key.as_ref()) {
                    out.insert(key.into_owned(), map.next_value::<f64>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(out)
        }
    }
    impl<'de> DeserializeSeed<'de> for Pick<'_> {
        type Value = BTreeMap<String, f64>;
        fn deserialize<D: serde::Deserializer<'de>>(
            self,
            d: D,
        ) -> std::result::Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(text);
    Pick(names)
        .deserialize(&mut deserializer)
        .and_then(|metrics| deserializer.end().map(|()| metrics))
        .map_err(|e| StoreError::Corrupt(format!("{e}: {text}")))
}

/// The latest value per (account, metric) in an import, and each (account, metric, time) once.
fn dedupe_metrics(metrics: &[MetricValue]) -> (Vec<&MetricValue>, Vec<&MetricValue>) {
    let mut history: BTreeMap<(&str, &str, i64), &MetricValue> = BTreeMap::new();
    let mut latest: BTreeMap<(&str, &str), &MetricValue> = BTreeMap::new();
    for m in metrics {
        history.insert((&m.account_id, &m.name, to_millis(m.at)), m);
        let entry = latest.entry((&m.account_id, &m.name)).or_insert(m);
        if m.at >= entry.at {
            *entry = m;
        }
    }
    (
        history.into_values().collect(),
        latest.into_values().collect(),
    )
}

macro_rules! store_impl {
    ($name:ident, $db:ty, $pool:ty, $doc:literal, $metrics_json:literal, $skip_locked:literal, $claim_plan:literal, $json_keys:literal, $serial_writes:literal, $json:expr) => {
        #[doc = $doc]
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
            writes: std::sync::Arc<tokio::sync::Mutex<()>>,
            /// Batch readers of the database file (SQLite files only; see `sqlite_reader`).
            readers: Option<std::sync::Arc<super::sqlite_reader::Readers>>,
            /// Outbox claims and marks on the database file (SQLite files only; see `sqlite_outbox`).
            outbox: Option<std::sync::Arc<super::sqlite_outbox::OutboxConnection>>,
        }

        impl $name {
            /// Wraps a connected, migrated pool.
            pub fn new(pool: $pool) -> Self {
                Self { pool, writes: Default::default(), readers: None, outbox: None }
            }

            /// SQLite takes one writer at a time and makes the others sleep and retry while
            /// they hold a pooled connection; under load that starves the pool. So on SQLite
            /// this process's writes queue here first, before taking a connection (readers
            /// are not held up: WAL lets them read beside the writer). PostgreSQL writes side
            /// by side.
            async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
                if $serial_writes { Some(self.writes.lock().await) } else { None }
            }

            /// How a write transaction begins. On SQLite it takes the write lock at once: a
            /// transaction that reads first and writes later fails at once with "database is
            /// locked", without waiting, if another connection holds the lock when it comes
            /// to write (SQLite runs no busy handler for that upgrade). Another process on the
            /// same file does, or a connection of this one still rolling back a transaction
            /// that was dropped (sqlx rolls back in the background).
            const BEGIN_WRITE: &'static str = if $serial_writes { "BEGIN IMMEDIATE" } else { "BEGIN" };

            /// A write transaction on a pooled connection (see [`Self::BEGIN_WRITE`]).
            async fn begin_write(&self) -> Result<sqlx::Transaction<'static, $db>> {
                Ok(self.pool.begin_with(Self::BEGIN_WRITE).await?)
            }

            /// The connection pool.
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            /// The stored payloads of outbox records `ids`.
            async fn outbox_payloads(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
                let mut payloads = HashMap::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("SELECT id, payload FROM outbox_payloads WHERE id");
                    Self::push_in_list(&mut query, chunk.iter().copied());
                    for row in query.build().fetch_all(&self.pool).await? {
                        payloads.insert(row.try_get("id")?, row.try_get("payload")?);
                    }
                }
                Ok(payloads)
            }

            /// `select` (ending in the column the ids are of) over `ids`, a chunk at a time,
            /// each chunk answered as one JSON text (see `json_rows`) that `parse` reads.
            async fn json_chunks<T>(&self, select: &str, ids: &[String], parse: impl Fn(&str) -> Result<Vec<T>>) -> Result<Vec<T>> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let text: String = Self::in_list(select, chunk).build_query_scalar().fetch_one(&self.pool).await?;
                    out.extend(parse(&text)?);
                }
                Ok(out)
            }

            /// The first `limit` account ids, in order, where `condition` holds (`$1` is
            /// `after`), read as one JSON row.
            async fn ids_where(&self, condition: &str, after: &str, limit: i64) -> Result<Vec<String>> {
                let sql = format!(
                    "SELECT {} AS ids FROM (SELECT id FROM accounts WHERE {condition} ORDER BY id LIMIT $2) batch",
                    ($json.rows)("id", "id")
                );
                let text: String = sqlx::query_scalar(&sql).bind(after).bind(limit).fetch_one(&self.pool).await?;
                super::json_rows::ids(&text)
            }

            /// `sql` followed by `IN ($1, $2, …)` over `ids`.
            fn in_list<'a>(sql: &str, ids: &'a [String]) -> QueryBuilder<'a, $db> {
                let mut query = QueryBuilder::<$db>::new(sql);
                Self::push_in_list(&mut query, ids.iter().map(String::as_str));
                query
            }

            /// ` IN (<value>, …)`.
            fn push_in_list<'a, T: 'a + sqlx::Encode<'a, $db> + sqlx::Type<$db> + Send>(
                query: &mut QueryBuilder<'a, $db>,
                values: impl IntoIterator<Item = T>,
            ) {
                query.push(" IN (");
                let mut list = query.separated(", ");
                for value in values {
                    list.push_bind(value);
                }
                query.push(")");
            }

            fn enrollment(row: &<$db as sqlx::Database>::Row) -> Result<Enrollment> {
                Ok(Enrollment {
                    id: row.try_get("id")?,
                    journey_id: row.try_get("journey_id")?,
                    version_hash: row.try_get("version_hash")?,
                    account_id: row.try_get("account_id")?,
                    contact_id: row.try_get("contact_id")?,
                    status: EnrollmentStatus::parse(&row.try_get::<String, _>("status")?)?,
                    step_index: row.try_get("step_index")?,
                    wait_started_at: row.try_get("wait_started_at")?,
                    next_due_at: row.try_get("next_due_at")?,
                    entered_at: row.try_get("entered_at")?,
                    ended_at: row.try_get("ended_at")?,
                    end_reason: row.try_get("end_reason")?,
                    version: row.try_get("version")?,
                })
            }

            fn event_row(row: &<$db as sqlx::Database>::Row) -> Result<(i64, Event)> {
                Ok((
                    row.try_get("seq")?,
                    Event {
                        key: row.try_get("event_key")?,
                        account_id: row.try_get("account_id")?,
                        contact_id: row.try_get("contact_id")?,
                        name: row.try_get("name")?,
                        at: from_millis(row.try_get("at")?),
                        properties: from_json(&row.try_get::<String, _>("properties")?)?,
                    },
                ))
            }

            fn contact(row: &<$db as sqlx::Database>::Row) -> Result<Contact> {
                let time = |column: &str| -> Result<_> { Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis)) };
                Ok(Contact {
                    id: row.try_get("id")?,
                    account_id: row.try_get("account_id")?,
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                    first_name: row.try_get("first_name")?,
                    role: row.try_get("role")?,
                    locale: row.try_get("locale")?,
                    timezone: row.try_get("timezone")?,
                    subscribed: row.try_get::<i64, _>("subscribed")? != 0,
                    created_at: time("created_at")?,
                    last_login_at: time("last_login_at")?,
                    attributes: from_json(&row.try_get::<String, _>("attributes")?)?,
                })
            }

            fn account_state(row: &<$db as sqlx::Database>::Row) -> Result<AccountState> {
                let time = |column: &str| -> Result<_> { Ok(row.try_get::<Option<i64>, _>(column)?.map(from_millis)) };
                let account = Account {
                    id: row.try_get("id")?,
                    name: row.try_get("name")?,
                    plan: row.try_get("plan")?,
                    arr: row.try_get("arr")?,
                    mrr: row.try_get("mrr")?,
                    industry: row.try_get("industry")?,
                    owner: row.try_get("owner")?,
                    timezone: row.try_get("timezone")?,
                    goals: from_json(&row.try_get::<String, _>("goals")?)?,
                    status: row.try_get("status")?,
                    contract_start: time("contract_start")?,
                    contract_end: time("contract_end")?,
                    created_at: time("created_at")?,
                    last_login_at: time("last_login_at")?,
                    attributes: from_json(&row.try_get::<String, _>("attributes")?)?,
                };
                Ok(AccountState {
                    account,
                    metrics: from_json(&row.try_get::<String, _>("metrics")?)?,
                    scores: from_json(&row.try_get::<String, _>("scores")?)?,
                    unknown_scores: from_json(&row.try_get::<String, _>("unknown_scores")?)?,
                    tier: row.try_get("tier")?,
                    tier_rule: row.try_get("tier_rule")?,
                    data_version: row.try_get("data_version")?,
                    evaluated_version: row.try_get("evaluated_version")?,
                    metrics_latest_at: row.try_get("metrics_latest_at")?,
                    recheck_at: row.try_get("recheck_at")?,
                    next_change_at: None,
                    contacts: Vec::new(),
                })
            }

            /// Writes one import inside `tx`.
            async fn import_one(tx: &mut sqlx::Transaction<'_, $db>, import: &Import) -> Result<ImportOutcome> {
                let total = import.len() as u64;
                let mut changed = Self::import_accounts(tx, &import.accounts).await?;
                changed += Self::import_contacts(tx, &import.contacts).await?;
                changed += Self::import_metrics(tx, &import.metrics).await?;
                changed += Self::import_events(tx, &import.events).await?;
                Ok(ImportOutcome { changed, unchanged: total.saturating_sub(changed) })
            }

            async fn import_accounts(
                tx: &mut sqlx::Transaction<'_, $db>,
                accounts: &[Account],
            ) -> Result<u64> {
                let mut changed = 0;
                for chunk in accounts.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO accounts (id, name, plan, arr, mrr, industry, owner, timezone, goals, status, \
                         contract_start, contract_end, created_at, last_login_at, attributes, row_hash) ",
                    );
                    query.push_values(chunk, |mut row, a| {
                        row.push_bind(&a.id)
                            .push_bind(&a.name)
                            .push_bind(&a.plan)
                            .push_bind(a.arr)
                            .push_bind(a.mrr)
                            .push_bind(&a.industry)
                            .push_bind(&a.owner)
                            .push_bind(&a.timezone)
                            .push_bind(to_json(&a.goals))
                            .push_bind(&a.status)
                            .push_bind(millis(a.contract_start))
                            .push_bind(millis(a.contract_end))
                            .push_bind(millis(a.created_at))
                            .push_bind(millis(a.last_login_at))
                            .push_bind(to_json(&a.attributes))
                            .push_bind(row_hash(a));
                    });
                    query.push(
                        " ON CONFLICT (id) DO UPDATE SET name = excluded.name, plan = excluded.plan, arr = excluded.arr, \
                         mrr = excluded.mrr, industry = excluded.industry, owner = excluded.owner, \
                         timezone = excluded.timezone, goals = excluded.goals, status = excluded.status, \
                         contract_start = excluded.contract_start, contract_end = excluded.contract_end, \
                         created_at = excluded.created_at, \
                         last_login_at = COALESCE(excluded.last_login_at, accounts.last_login_at), \
                         attributes = excluded.attributes, row_hash = excluded.row_hash, \
                         data_version = accounts.data_version + 1 \
                         WHERE accounts.row_hash <> excluded.row_hash",
                    );
                    changed += query.build().execute(&mut **tx).await?.rows_affected();
                }
                Ok(changed)
            }

            async fn import_contacts(
                tx: &mut sqlx::Transaction<'_, $db>,
                contacts: &[Contact],
            ) -> Result<u64> {
                let mut changed_accounts: HashSet<String> = HashSet::new();
                let mut changed = 0;
                for chunk in contacts.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO contacts (id, account_id, email, name, first_name, role, locale, timezone, \
                         subscribed, created_at, last_login_at, attributes, row_hash) ",
                    );
                    query.push_values(chunk, |mut row, c| {
                        row.push_bind(&c.id)
                            .push_bind(&c.account_id)
                            .push_bind(&c.email)
                            .push_bind(&c.name)
                            .push_bind(&c.first_name)
                            .push_bind(&c.role)
                            .push_bind(&c.locale)
                            .push_bind(&c.timezone)
                            .push_bind(i64::from(c.subscribed))
                            .push_bind(millis(c.created_at))
                            .push_bind(millis(c.last_login_at))
                            .push_bind(to_json(&c.attributes))
                            .push_bind(row_hash(c));
                    });
                    query.push(
                        " ON CONFLICT (id) DO UPDATE SET account_id = excluded.account_id, email = excluded.email, \
                         name = excluded.name, first_name = excluded.first_name, role = excluded.role, \
                         locale = excluded.locale, timezone = excluded.timezone, subscribed = excluded.subscribed, \
                         created_at = excluded.created_at, \
                         last_login_at = COALESCE(excluded.last_login_at, contacts.last_login_at), \
                         attributes = excluded.attributes, row_hash = excluded.row_hash \
                         WHERE contacts.row_hash <> excluded.row_hash RETURNING account_id",
                    );
                    let rows = query.build().fetch_all(&mut **tx).await?;
                    changed += rows.len() as u64;
                    for row in rows {
                        changed_accounts.insert(row.try_get("account_id")?);
                    }
                }
                Self::touch_accounts(tx, changed_accounts.into_iter().collect()).await?;
                Ok(changed)
            }

            /// Bumps `data_version` so the accounts are re-evaluated.
            async fn touch_accounts(tx: &mut sqlx::Transaction<'_, $db>, ids: Vec<String>) -> Result<()> {
                for chunk in ids.chunks(CHUNK) {
                    let mut query = Self::in_list("UPDATE accounts SET data_version = data_version + 1 WHERE id", chunk);
                    query.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            async fn import_metrics(
                tx: &mut sqlx::Transaction<'_, $db>,
                metrics: &[MetricValue],
            ) -> Result<u64> {
                let (history, latest) = dedupe_metrics(metrics);
                let mut changed = 0;
                for chunk in history.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO metric_history (account_id, name, at, value) ");
                    query.push_values(chunk, |mut row, m| {
                        row.push_bind(&m.account_id).push_bind(&m.name).push_bind(to_millis(m.at)).push_bind(m.value);
                    });
                    query.push(
                        " ON CONFLICT (account_id, name, at) DO UPDATE SET value = excluded.value \
                         WHERE metric_history.value <> excluded.value",
                    );
                    changed += query.build().execute(&mut **tx).await?.rows_affected();
                }
                let mut changed_accounts: HashSet<String> = HashSet::new();
                for chunk in latest.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO account_metrics (account_id, name, value, at) ");
                    query.push_values(chunk, |mut row, m| {
                        row.push_bind(&m.account_id).push_bind(&m.name).push_bind(m.value).push_bind(to_millis(m.at));
                    });
                    query.push(
                        " ON CONFLICT (account_id, name) DO UPDATE SET value = excluded.value, at = excluded.at \
                         WHERE excluded.at >= account_metrics.at \
                         AND (excluded.at <> account_metrics.at OR excluded.value <> account_metrics.value) \
                         RETURNING account_id",
                    );
                    for row in query.build().fetch_all(&mut **tx).await? {
                        changed_accounts.insert(row.try_get("account_id")?);
                    }
                }
                // Accounts carry their latest metrics as one JSON object, so evaluation reads
                // one row per account.
                let ids: Vec<String> = changed_accounts.into_iter().collect();
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "UPDATE accounts SET data_version = data_version + 1, metrics = \
                         (SELECT {} FROM account_metrics m WHERE m.account_id = accounts.id), \
                         metrics_latest_at = (SELECT MAX(m.at) FROM account_metrics m WHERE m.account_id = accounts.id) WHERE id",
                        $metrics_json
                    );
                    let mut query = Self::in_list(&sql, chunk);
                    query.build().execute(&mut **tx).await?;
                }
                Ok(changed)
            }

            async fn import_events(tx: &mut sqlx::Transaction<'_, $db>, events: &[Event]) -> Result<u64> {
                let mut changed = 0;
                let mut logins: Vec<&Event> = Vec::new();
                for chunk in events.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO events (event_key, account_id, contact_id, name, at, properties) ",
                    );
                    query.push_values(chunk, |mut row, e| {
                        row.push_bind(&e.key)
                            .push_bind(&e.account_id)
                            .push_bind(&e.contact_id)
                            .push_bind(&e.name)
                            .push_bind(to_millis(e.at))
                            .push_bind(to_json(&e.properties));
                    });
                    query.push(" ON CONFLICT (event_key) DO NOTHING RETURNING event_key");
                    let inserted: HashSet<String> = query
                        .build()
                        .fetch_all(&mut **tx)
                        .await?
                        .iter()
                        .map(|row| row.try_get("event_key"))
                        .collect::<std::result::Result<_, _>>()?;
                    changed += inserted.len() as u64;
                    logins.extend(chunk.iter().filter(|e| e.is_login() && inserted.contains(&e.key)));
                }
                for event in logins {
                    let at = to_millis(event.at);
                    sqlx::query(
                        "UPDATE accounts SET last_login_at = $2, data_version = data_version + 1 \
                         WHERE id = $1 AND (last_login_at IS NULL OR last_login_at < $2)",
                    )
                    .bind(&event.account_id)
                    .bind(at)
                    .execute(&mut **tx)
                    .await?;
                    if let Some(contact) = &event.contact_id {
                        sqlx::query(
                            "UPDATE contacts SET last_login_at = $2 WHERE id = $1 \
                             AND (last_login_at IS NULL OR last_login_at < $2)",
                        )
                        .bind(contact)
                        .bind(at)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                Ok(changed)
            }

            /// Keeps events read before their time, and takes those acted on now; false when
            /// another process took one of them first.
            async fn apply_deferred_events(tx: &mut sqlx::Transaction<'_, $db>, changes: &Changes) -> Result<bool> {
                for chunk in changes.events_deferred.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO future_events (seq, at) ");
                    query.push_values(chunk, |mut row, (seq, at)| {
                        row.push_bind(*seq).push_bind(*at);
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    query.build().execute(&mut **tx).await?;
                }
                for chunk in changes.events_released.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("DELETE FROM future_events WHERE seq IN (");
                    let mut list = query.separated(", ");
                    for seq in chunk {
                        list.push_bind(*seq);
                    }
                    query.push(")");
                    if query.build().execute(&mut **tx).await?.rows_affected() != chunk.len() as u64 {
                        return Ok(false);
                    }
                }
                Ok(true)
            }

            /// Writes evaluations with one multi-row statement per chunk.
            async fn apply_evaluations(tx: &mut sqlx::Transaction<'_, $db>, changes: &Changes) -> Result<()> {
                for chunk in changes.evaluations.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("WITH v (id, scores, unknown_scores, tier, tier_rule, version, recheck_at) AS (");
                    query.push_values(chunk, |mut row, e| {
                        let (tier, rule) = e.tier.clone().unzip();
                        row.push_bind(e.account_id.clone())
                            .push_bind(to_json(&e.scores))
                            .push_bind(to_json(&e.unknown_scores))
                            .push_bind(tier)
                            .push_bind(rule)
                            .push_bind(e.data_version)
                            .push_bind(e.recheck_at);
                    });
                    query.push(
                        ") UPDATE accounts SET scores = v.scores, unknown_scores = v.unknown_scores, \
                         tier = COALESCE(v.tier, accounts.tier), tier_rule = COALESCE(v.tier_rule, accounts.tier_rule), \
                         recheck_at = CASE WHEN accounts.recheck_at IS NULL OR v.recheck_at < accounts.recheck_at \
                         THEN v.recheck_at ELSE accounts.recheck_at END, \
                         evaluated_version = CASE WHEN accounts.evaluated_version > v.version \
                         THEN accounts.evaluated_version ELSE v.version END \
                         FROM v WHERE accounts.id = v.id",
                    );
                    query.build().execute(&mut **tx).await?;
                }
                let scores: Vec<(&str, &str, f64)> = changes
                    .evaluations
                    .iter()
                    .flat_map(|e| e.changed_scores.iter().map(move |(name, value)| (e.account_id.as_str(), name.as_str(), *value)))
                    .collect();
                for chunk in scores.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO score_history (account_id, name, value, at) ");
                    query.push_values(chunk, |mut row, (account, name, value)| {
                        row.push_bind(*account).push_bind(*name).push_bind(*value).push_bind(changes.now);
                    });
                    query.build().execute(&mut **tx).await?;
                }
                let tiers: Vec<(&str, Option<&str>, &str, &str)> = changes
                    .evaluations
                    .iter()
                    .filter_map(|e| {
                        let from = e.tier_changed_from.as_ref()?;
                        let (to, rule) = e.tier.as_ref()?;
                        Some((e.account_id.as_str(), from.as_deref(), to.as_str(), rule.as_str()))
                    })
                    .collect();
                for chunk in tiers.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO tier_changes (account_id, from_tier, to_tier, rule, at) ");
                    query.push_values(chunk, |mut row, (account, from, to, rule)| {
                        row.push_bind(*account).push_bind(*from).push_bind(*to).push_bind(*rule).push_bind(changes.now);
                    });
                    query.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            fn task(row: &<$db as sqlx::Database>::Row) -> Result<Task> {
                Ok(Task {
                    id: row.try_get("id")?,
                    task: NewTask {
                        dedupe_key: row.try_get("dedupe_key")?,
                        account_id: row.try_get("account_id")?,
                        journey_id: row.try_get("journey_id")?,
                        step_id: row.try_get("step_id")?,
                        title: row.try_get("title")?,
                        description: row.try_get("description")?,
                        assignee: row.try_get("assignee")?,
                        priority: row.try_get("priority")?,
                        due_at: row.try_get("due_at")?,
                        reason: from_json(&row.try_get::<String, _>("reason")?)?,
                        capacity: None,
                    },
                    status: TaskStatus::parse(&row.try_get::<String, _>("status")?)?,
                    created_at: row.try_get("created_at")?,
                    closed_reason: row.try_get("closed_reason")?,
                    updated_at: row.try_get("updated_at")?,
                    snoozed_until: row.try_get("snoozed_until")?,
                    note: row.try_get("note")?,
                })
            }

            fn delivery_row(r: &<$db as sqlx::Database>::Row) -> Result<DeliveryRow> {
                Ok(DeliveryRow {
                    id: r.try_get("id")?,
                    record: Self::outbox_record(r)?,
                    status: DeliveryStatus::parse(&r.try_get::<String, _>("status")?)?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                    held_reason: r.try_get("held_reason")?,
                    delivered_at: r.try_get("delivered_at")?,
                })
            }

            /// A record from a row that holds its payload (`outbox` joined to `outbox_payloads`).
            fn outbox_record(row: &<$db as sqlx::Database>::Row) -> Result<OutboxRecord> {
                let text: String = row.try_get("payload")?;
                Self::outbox_record_with(row, &text)
            }

            /// A record from an `outbox` row and its stored payload.
            fn outbox_record_with(row: &<$db as sqlx::Database>::Row, text: &str) -> Result<OutboxRecord> {
                Ok(OutboxRecord {
                    idempotency_key: row.try_get("idempotency_key")?,
                    enrollment_id: row.try_get("enrollment_id")?,
                    journey_id: row.try_get("journey_id")?,
                    step_id: row.try_get("step_id")?,
                    account_id: row.try_get("account_id")?,
                    contact_id: row.try_get("contact_id")?,
                    payload: {
                        let kind: String = row.try_get("kind")?;
                        Payload::from_stored(&kind, text)
                            .map_err(|e| StoreError::Corrupt(format!("{e}: {text}")))?
                    },
                    // Read back only to deliver or show: held-out records are never claimed.
                    held_out: false,
                })
            }

            fn suppression_row(row: &<$db as sqlx::Database>::Row) -> Result<Suppression> {
                Ok(Suppression {
                    email: row.try_get("email")?,
                    reason: row.try_get("reason")?,
                    detail: row.try_get("detail")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            /// Marks how one claimed delivery ended, on `conn`.
            async fn finish_one(conn: &mut <$db as sqlx::Database>::Connection, id: i64, owner: &str, now: i64, outcome: &DeliveryOutcome) -> Result<bool> {
                if let DeliveryOutcome::Defer { until, why } = outcome {
                    let done = sqlx::query(
                        "UPDATE outbox SET status = 'pending', next_attempt_at = $3, held_reason = $4, attempts = attempts - 1, \
                         claimed_by = NULL, lease_until = NULL WHERE id = $1 AND claimed_by = $2 AND status = 'sending'",
                    )
                    .bind(id)
                    .bind(owner)
                    .bind(*until)
                    .bind(why)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    return Ok(done == 1);
                }
                let (status, next, error, result) = match outcome {
                    DeliveryOutcome::Defer { .. } => unreachable!("handled above"),
                    DeliveryOutcome::Sent(result) => ("sent", None, None, Some(result.as_str())),
                    DeliveryOutcome::Retry { at, error } => ("pending", Some(*at), Some(error.as_str()), None),
                    DeliveryOutcome::Failed(error) => ("failed", None, Some(error.as_str()), None),
                    DeliveryOutcome::Dead(error) => ("dead", None, Some(error.as_str()), None),
                    DeliveryOutcome::Skipped(why) => ("skipped", None, Some(why.as_str()), None),
                };
                let done = sqlx::query(
                    "UPDATE outbox SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
                     last_error = COALESCE($5, last_error), result = $6, held_reason = NULL, \
                     delivered_at = CASE WHEN $3 = 'sent' THEN $7 ELSE delivered_at END, \
                     claimed_by = NULL, lease_until = NULL \
                     WHERE id = $1 AND claimed_by = $2 AND status = 'sending'",
                )
                .bind(id)
                .bind(owner)
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(result)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            /// Writes history lines with one multi-row statement per chunk.
            async fn log_all(tx: &mut sqlx::Transaction<'_, $db>, entries: &[(i64, i64, &LogEntry)]) -> Result<()> {
                for chunk in entries.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO enrollment_log (enrollment_id, at, step_id, event, detail) ");
                    query.push_values(chunk, |mut row, (enrollment, at, entry)| {
                        row.push_bind(*enrollment).push_bind(*at).push_bind(&entry.step_id).push_bind(&entry.event).push_bind(&entry.detail);
                    });
                    query.build().execute(&mut **tx).await?;
                }
                Ok(())
            }

            /// [`Store::change_task`]'s work in `tx`, left to the caller to commit when the
            /// task changed.
            async fn change_task_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
                change: &TaskChange,
                actor: &str,
                now: i64,
                notices: &[OutboxRecord],
            ) -> Result<TaskChangeOutcome> {
                if matches!(change, TaskChange::Reassign { .. }) {
                    // The lock task creation takes: a free slot is counted once.
                    sqlx::query(
                        "INSERT INTO counters (key, value) VALUES ('task_assignment', 1) \
                         ON CONFLICT (key) DO UPDATE SET value = counters.value + 1",
                    )
                    .execute(&mut **tx)
                    .await?;
                }
                let Some(row) = sqlx::query("SELECT status, assignee, snoozed_until FROM tasks WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                else {
                    return Ok(TaskChangeOutcome::NotFound);
                };
                let done = row.try_get::<String, _>("status")? == "done";
                let assignee: Option<String> = row.try_get("assignee")?;
                let snoozed: Option<i64> = row.try_get("snoozed_until")?;
                let detail = match change {
                    TaskChange::Done { .. } if done => return Ok(TaskChangeOutcome::Unchanged),
                    TaskChange::Done { note } => {
                        sqlx::query("UPDATE tasks SET status = 'done', note = $2, snoozed_until = NULL, updated_at = $3 WHERE id = $1")
                            .bind(id)
                            .bind(note)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        note.clone().unwrap_or_default()
                    }
                    _ if done => return Ok(TaskChangeOutcome::Closed),
                    TaskChange::Snooze { until } if snoozed == Some(*until) => return Ok(TaskChangeOutcome::Unchanged),
                    TaskChange::Snooze { until } => {
                        sqlx::query("UPDATE tasks SET snoozed_until = $2, updated_at = $3 WHERE id = $1")
                            .bind(id)
                            .bind(*until)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        crate::clock::from_millis(*until).format("until %Y-%m-%d %H:%M UTC").to_string()
                    }
                    TaskChange::Reassign { to, .. } if assignee.as_deref() == Some(to.as_str()) => {
                        return Ok(TaskChangeOutcome::Unchanged);
                    }
                    TaskChange::Reassign { to, capacity } => {
                        if let Some(capacity) = capacity {
                            let open: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tasks WHERE assignee = $1 AND status = 'open'")
                                .bind(to)
                                .fetch_one(&mut **tx)
                                .await?
                                .try_get("n")?;
                            if open >= *capacity {
                                return Ok(TaskChangeOutcome::AssigneeFull);
                            }
                        }
                        sqlx::query("UPDATE tasks SET assignee = $2, snoozed_until = NULL, updated_at = $3 WHERE id = $1")
                            .bind(id)
                            .bind(to)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        format!("{} → {to}", assignee.as_deref().unwrap_or("(nobody)"))
                    }
                };
                sqlx::query("INSERT INTO task_log (task_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(now)
                    .bind(actor)
                    .bind(change.action())
                    .bind(&detail)
                    .execute(&mut **tx)
                    .await?;
                let notices: Vec<&OutboxRecord> = notices.iter().collect();
                Self::outbox_all(tx, &notices, now).await?;
                Ok(TaskChangeOutcome::Changed)
            }

            /// ` CASE id WHEN <id> THEN <value> … END`: in a statement that updates many rows
            /// named by id, each row's own value. (Joined to a list of values instead,
            /// PostgreSQL may read the whole table whenever its statistics predate the rows.)
            fn push_case_by_id<'a, T: 'a + sqlx::Encode<'a, $db> + sqlx::Type<$db> + Send>(
                query: &mut QueryBuilder<'a, $db>,
                values: impl IntoIterator<Item = (i64, T)>,
            ) {
                query.push(" CASE id");
                for (id, value) in values {
                    query.push(" WHEN ").push_bind(id).push(" THEN ").push_bind(value);
                }
                query.push(" END");
            }

            /// Moves enrollments as `updates` say, each only if its version is still the one
            /// read; whether each moved (false: another process moved it first).
            ///
            /// One statement per chunk, each column's new value picked by the enrollment's id:
            /// one statement per enrollment cost PostgreSQL a round trip each, 63 µs, for every
            /// enrollment a pass moved. An enrollment named twice moves once, as the first
            /// names it (the second would find its version moved on).
            async fn move_enrollments(tx: &mut sqlx::Transaction<'_, $db>, updates: &[EnrollmentUpdate], now: i64) -> Result<Vec<bool>> {
                let mut moved = HashSet::with_capacity(updates.len());
                for chunk in updates.chunks(MOVE_CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("UPDATE enrollments SET status =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.status.as_str())));
                    query.push(", step_index =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.step_index)));
                    query.push(", wait_started_at =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.wait_started_at)));
                    query.push(", next_due_at =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.next_due_at)));
                    query.push(", ended_at =");
                    let ended = |u: &EnrollmentUpdate| (u.status != EnrollmentStatus::Active).then_some(now);
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, ended(u))));
                    query.push(", end_reason =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.end_reason.as_deref())));
                    query.push(", version = version + 1 WHERE id");
                    Self::push_in_list(&mut query, chunk.iter().map(|u| u.before.id));
                    // A `CASE` takes its first match: an enrollment named twice is checked
                    // against, and moved to, what the first of them says.
                    query.push(" AND version =");
                    Self::push_case_by_id(&mut query, chunk.iter().map(|u| (u.before.id, u.before.version)));
                    query.push(" RETURNING id");
                    for row in query.build().fetch_all(&mut **tx).await? {
                        moved.insert(row.try_get::<i64, _>("id")?);
                    }
                }
                // Each moved id counts for the first update naming it only.
                Ok(updates.iter().map(|u| moved.remove(&u.before.id)).collect())
            }

            /// Writes outbox records (once per idempotency key) and their payloads; returns how
            /// many were new.
            async fn outbox_all(tx: &mut sqlx::Transaction<'_, $db>, records: &[&OutboxRecord], now: i64) -> Result<u64> {
                let mut inserted = 0;
                for chunk in records.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO outbox (idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, \
                         contact_id, status, next_attempt_at, created_at) ",
                    );
                    query.push_values(chunk, |mut row, r| {
                        row.push_bind(&r.idempotency_key)
                            .push_bind(r.enrollment_id)
                            .push_bind(&r.journey_id)
                            .push_bind(&r.step_id)
                            .push_bind(r.kind())
                            .push_bind(&r.account_id)
                            .push_bind(&r.contact_id)
                            .push_bind(if r.held_out { "held_out" } else { "pending" })
                            .push_bind(now)
                            .push_bind(now);
                    });
                    query.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key");
                    let rows = query.build().fetch_all(&mut **tx).await?;
                    if rows.is_empty() {
                        continue;
                    }
                    inserted += rows.len() as u64;
                    // A key twice in one batch is inserted once, as the first of them.
                    let mut by_key: HashMap<&str, &OutboxRecord> = HashMap::with_capacity(chunk.len());
                    for record in chunk {
                        by_key.entry(record.idempotency_key.as_str()).or_insert(record);
                    }
                    let mut payloads = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let key: String = row.try_get("idempotency_key")?;
                        let record = by_key
                            .get(key.as_str())
                            .ok_or_else(|| StoreError::Corrupt(format!("outbox record `{key}` was inserted but not asked for")))?;
                        payloads.push((row.try_get::<i64, _>("id")?, to_json(&record.payload)));
                    }
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO outbox_payloads (id, payload) ");
                    query.push_values(&payloads, |mut row, (id, payload)| {
                        row.push_bind(*id).push_bind(payload);
                    });
                    query.build().execute(&mut **tx).await?;
                }
                Ok(inserted)
            }
        }

        impl Store for $name {
            type Connection = sqlx::pool::PoolConnection<$db>;

            async fn import(&self, import: &Import) -> Result<ImportOutcome> {
                self.import_all(std::iter::once(import.clone())).await
            }

            async fn import_all(&self, chunks: impl Iterator<Item = Import> + Send) -> Result<ImportOutcome> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                let mut outcome = ImportOutcome::default();
                for import in chunks {
                    let one = Self::import_one(&mut tx, &import).await?;
                    outcome.changed += one.changed;
                    outcome.unchanged += one.unchanged;
                }
                tx.commit().await?;
                Ok(outcome)
            }

            async fn import_each(&self, imports: &[Import]) -> Result<Vec<ImportOutcome>> {
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                let mut outcomes = Vec::with_capacity(imports.len());
                for import in imports {
                    outcomes.push(Self::import_one(&mut tx, import).await?);
                }
                tx.commit().await?;
                Ok(outcomes)
            }

            async fn dirty_accounts(&self, after: &str, limit: i64) -> Result<Vec<String>> {
                self.ids_where("data_version > evaluated_version AND id > $1", after, limit).await
            }

            async fn account_ids(&self, after: &str, limit: i64) -> Result<Vec<String>> {
                self.ids_where("id > $1", after, limit).await
            }

            async fn sweep_bound(&self, after: &str, limit: i64) -> Result<Option<String>> {
                if let Some(readers) = &self.readers {
                    return readers.sweep_bound(after, limit).await;
                }
                Ok(sqlx::query_scalar(SWEEP_BOUND).bind(after).bind(limit).fetch_one(&self.pool).await?)
            }

            async fn sweep_inputs(&self, after: &str, through: &str, fields: &RuleFields) -> Result<SweepInputs> {
                if let Some(readers) = &self.readers {
                    return readers.sweep_inputs(after, through, fields).await;
                }
                // The range as one JSON row, as `load_rule_inputs` reads a list of ids.
                let json = &$json;
                let row = super::json_rows::rule_input_columns(json, fields);
                let sql = format!("SELECT {} AS batch FROM accounts WHERE id > $1 AND id <= $2", (json.rows)(&row, "id"));
                let text: String = sqlx::query_scalar(&sql).bind(after).bind(through).fetch_one(&self.pool).await?;
                let states = super::json_rows::rule_inputs(&text, fields.metrics.as_ref())?;
                let running = sqlx::query_scalar(SWEEP_RUNNING).bind(after).bind(through).fetch_all(&self.pool).await?;
                Ok(SweepInputs { states, running })
            }

            async fn mark_all_dirty(&self) -> Result<u64> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let result = sqlx::query("UPDATE accounts SET data_version = evaluated_version + 1 WHERE data_version <= evaluated_version")
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected())
            }

            async fn load_accounts(&self, ids: &[String], with_contacts: bool) -> Result<Vec<AccountState>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut accounts: Vec<AccountState> = Vec::with_capacity(ids.len());
                let mut query = Self::in_list(&format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id"), ids);
                query.push(" ORDER BY id");
                for row in query.build().fetch_all(&self.pool).await? {
                    accounts.push(Self::account_state(&row)?);
                }
                if with_contacts {
                    let index: HashMap<&str, usize> = accounts.iter().enumerate().map(|(i, a)| (a.account.id.as_str(), i)).collect();
                    let mut by_account: Vec<Vec<Contact>> = vec![Vec::new(); accounts.len()];
                    for contact in self.contacts_of(ids).await? {
                        if let Some(&i) = index.get(contact.account_id.as_str()) {
                            by_account[i].push(contact);
                        }
                    }
                    for (account, contacts) in accounts.iter_mut().zip(by_account) {
                        account.contacts = contacts;
                    }
                }
                Ok(accounts)
            }

            async fn load_rule_inputs(&self, ids: &[String], fields: &RuleFields) -> Result<Vec<AccountState>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                if let Some(readers) = &self.readers {
                    return readers.rule_inputs(ids, fields).await;
                }
                // One JSON row for the batch (see `json_rows`); facts the rules do not read
                // are left out: empty text, unknown values.
                let json = &$json;
                let row = super::json_rows::rule_input_columns(json, fields);
                let select = format!("SELECT {} AS batch FROM accounts WHERE id", (json.rows)(&row, "id"));
                self.json_chunks(&select, ids, |text| super::json_rows::rule_inputs(text, fields.metrics.as_ref())).await
            }

            async fn contacts_of(&self, account_ids: &[String]) -> Result<Vec<Contact>> {
                let mut out = Vec::new();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = Self::in_list(&format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id"), chunk);
                    query.push(" ORDER BY id");
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push(Self::contact(&row)?);
                    }
                }
                Ok(out)
            }

            async fn enrollments_of(&self, account_ids: &[String]) -> Result<Vec<Enrollment>> {
                let mut out = Vec::new();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = Self::in_list(&format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE account_id"), chunk);
                    query.push(" ORDER BY id");
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push(Self::enrollment(&row)?);
                    }
                }
                Ok(out)
            }

            async fn edges_of(&self, account_ids: &[String]) -> Result<Vec<SubjectKey>> {
                let mut out = Vec::new();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = Self::in_list("SELECT journey_id, account_id, contact_id FROM entry_edges WHERE account_id", chunk);
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push(SubjectKey {
                            journey_id: row.try_get("journey_id")?,
                            account_id: row.try_get("account_id")?,
                            contact_id: row.try_get("contact_id")?,
                        });
                    }
                }
                Ok(out)
            }

            async fn due_enrollments(&self, now: i64, limit: i64) -> Result<Vec<Enrollment>> {
                let rows = sqlx::query(&format!(
                    "SELECT {ENROLLMENT_COLUMNS} FROM enrollments \
                     WHERE status = 'active' AND next_due_at <= $1 ORDER BY next_due_at, id LIMIT $2"
                ))
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::enrollment).collect()
            }

            async fn events_after(&self, after: i64, limit: i64) -> Result<Vec<(i64, Event)>> {
                let rows = sqlx::query(
                    "SELECT seq, event_key, account_id, contact_id, name, at, properties FROM events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::event_row).collect()
            }

            async fn due_future_events(&self, at: i64, limit: i64) -> Result<Vec<(i64, Event)>> {
                let rows = sqlx::query(
                    "SELECT e.seq, e.event_key, e.account_id, e.contact_id, e.name, e.at, e.properties \
                     FROM future_events f JOIN events e ON e.seq = f.seq \
                     WHERE f.at <= $1 ORDER BY f.at, f.seq LIMIT $2",
                )
                .bind(at)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::event_row).collect()
            }

            async fn metrics_as_of(&self, account_ids: &[String], at: i64) -> Result<MetricsAsOf> {
                let mut out = MetricsAsOf::default();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "SELECT h.account_id, h.name, h.value, h.at FROM metric_history h JOIN \
                         (SELECT account_id, name, MAX(at) AS at FROM metric_history WHERE at <= ",
                    );
                    query.push_bind(at).push(" AND account_id IN (");
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    query.push(
                        ") GROUP BY account_id, name) l \
                         ON h.account_id = l.account_id AND h.name = l.name AND h.at = l.at",
                    );
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.values.push(MetricValue {
                            account_id: row.try_get("account_id")?,
                            name: row.try_get("name")?,
                            value: row.try_get("value")?,
                            at: from_millis(row.try_get("at")?),
                        });
                    }
                    let mut query = QueryBuilder::<$db>::new("SELECT account_id, MIN(at) AS next_at FROM metric_history WHERE at > ");
                    query.push_bind(at).push(" AND account_id IN (");
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    query.push(") GROUP BY account_id");
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.next_at.push((row.try_get("account_id")?, row.try_get("next_at")?));
                    }
                }
                Ok(out)
            }

            async fn logins_as_of(&self, account_ids: &[String], at: i64) -> Result<Vec<LoginsAsOf>> {
                let mut out = Vec::new();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("SELECT account_id, MAX(CASE WHEN at <= ");
                    query.push_bind(at).push(" THEN at END) AS latest, MIN(CASE WHEN at > ");
                    query.push_bind(at).push(" THEN at END) AS next FROM events WHERE name = 'login' AND account_id IN (");
                    let mut list = query.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    query.push(") GROUP BY account_id");
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push(LoginsAsOf {
                            account_id: row.try_get("account_id")?,
                            latest: row.try_get("latest")?,
                            next: row.try_get("next")?,
                        });
                    }
                }
                Ok(out)
            }

            async fn mark_due_rechecks(&self, at: i64) -> Result<u64> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let result = sqlx::query(
                    "UPDATE accounts SET data_version = data_version + 1, recheck_at = NULL WHERE recheck_at <= $1",
                )
                .bind(at)
                .execute(&self.pool)
                .await?;
                Ok(result.rows_affected())
            }

            async fn claim_cron_fire(&self, journey_id: &str, fire_at: i64) -> Result<bool> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let result = sqlx::query("INSERT INTO cron_fires (journey_id, fire_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(journey_id)
                    .bind(fire_at)
                    .execute(&self.pool)
                    .await?;
                Ok(result.rows_affected() == 1)
            }

            async fn last_cron_fire(&self, journey_id: &str) -> Result<Option<i64>> {
                let row = sqlx::query("SELECT MAX(fire_at) AS last FROM cron_fires WHERE journey_id = $1")
                    .bind(journey_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(row.try_get("last")?)
            }

            async fn apply(&self, changes: &Changes) -> Result<Applied> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut applied = Applied::default();
                if changes.is_empty() {
                    return Ok(applied);
                }
                let now = changes.now;
                let mut tx = self.begin_write().await?;
                if let Some(cursor) = &changes.cursor {
                    let moved = match &cursor.from {
                        Some(from) => sqlx::query("UPDATE meta SET value = $3 WHERE key = $1 AND value = $2")
                            .bind(&cursor.key)
                            .bind(from)
                            .bind(&cursor.to)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                        None => sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                            .bind(&cursor.key)
                            .bind(&cursor.to)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected(),
                    };
                    if moved == 0 {
                        tx.rollback().await?;
                        return Ok(Applied { cursor_lost: true, ..applied });
                    }
                }
                if !Self::apply_deferred_events(&mut tx, changes).await? {
                    tx.rollback().await?;
                    return Ok(Applied { cursor_lost: true, ..applied });
                }
                Self::apply_evaluations(&mut tx, changes).await?;
                for chunk in changes.edges_set.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new("INSERT INTO entry_edges (journey_id, account_id, contact_id) ");
                    query.push_values(chunk, |mut row, key| {
                        row.push_bind(&key.journey_id).push_bind(&key.account_id).push_bind(&key.contact_id);
                    });
                    query.push(" ON CONFLICT DO NOTHING");
                    query.build().execute(&mut *tx).await?;
                }
                for chunk in changes.edges_cleared.chunks(CHUNK) {
                    let mut query =
                        QueryBuilder::<$db>::new("DELETE FROM entry_edges WHERE (journey_id, account_id, contact_id) IN (");
                    let mut list = query.separated(", ");
                    for key in chunk {
                        list.push("(");
                        list.push_bind_unseparated(&key.journey_id);
                        list.push_unseparated(", ");
                        list.push_bind_unseparated(&key.account_id);
                        list.push_unseparated(", ");
                        list.push_bind_unseparated(&key.contact_id);
                        list.push_unseparated(")");
                    }
                    query.push(")");
                    query.build().execute(&mut *tx).await?;
                }
                let mut log: Vec<(i64, i64, &LogEntry)> = Vec::new();
                let entered: Vec<LogEntry> = changes
                    .new_enrollments
                    .iter()
                    .map(|new| LogEntry { step_id: None, event: "entered".into(), detail: new.reason.clone() })
                    .collect();
                for (chunk_index, chunk) in changes.new_enrollments.chunks(CHUNK).enumerate() {
                    let mut query = QueryBuilder::<$db>::new(
                        "INSERT INTO enrollments (journey_id, version_hash, account_id, contact_id, status, step_index, \
                         next_due_at, entered_at) ",
                    );
                    query.push_values(chunk, |mut row, new| {
                        row.push_bind(&new.key.journey_id)
                            .push_bind(&new.version_hash)
                            .push_bind(&new.key.account_id)
                            .push_bind(&new.key.contact_id)
                            .push_bind("active")
                            .push_bind(0_i64)
                            .push_bind(new.entered_at)
                            .push_bind(new.entered_at);
                    });
                    query.push(" ON CONFLICT DO NOTHING RETURNING id, journey_id, account_id, contact_id");
                    for row in query.build().fetch_all(&mut *tx).await? {
                        let key = SubjectKey {
                            journey_id: row.try_get("journey_id")?,
                            account_id: row.try_get("account_id")?,
                            contact_id: row.try_get("contact_id")?,
                        };
                        let Some(position) = chunk.iter().position(|n| n.key == key) else { continue };
                        applied.enrolled += 1;
                        let new = &chunk[position];
                        log.push((row.try_get("id")?, new.entered_at, &entered[chunk_index * CHUNK + position]));
                    }
                }
                let mut outbox: Vec<&OutboxRecord> = Vec::new();
                let moved = Self::move_enrollments(&mut tx, &changes.updates, now).await?;
                for (update, moved) in changes.updates.iter().zip(moved) {
                    if !moved {
                        // Another process moved this enrollment first; its work stands.
                        applied.conflicts += 1;
                        continue;
                    }
                    applied.moved += 1;
                    if update.status == "goal_reached" {
                        // Reaching the goal closes the tasks this enrollment opened.
                        sqlx::query(
                            "UPDATE tasks SET status = 'done', closed_reason = 'goal reached', updated_at = $3 \
                             WHERE account_id = $1 AND journey_id = $2 AND status = 'open' AND outbox_key LIKE $4",
                        )
                        .bind(&update.before.account_id)
                        .bind(&update.before.journey_id)
                        .bind(now)
                        .bind(format!("{}:%", update.before.id))
                        .execute(&mut *tx)
                        .await?;
                    }
                    outbox.extend(&update.outbox);
                    log.extend(update.log.iter().map(|entry| (update.before.id, now, entry)));
                }
                applied.outbox = Self::outbox_all(&mut tx, &outbox, now).await?;
                Self::log_all(&mut tx, &log).await?;
                tx.commit().await?;
                Ok(applied)
            }

            async fn meta(&self, key: &str) -> Result<Option<String>> {
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn meta_or_insert(&self, key: &str, value: &str) -> Result<String> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                let row = sqlx::query("SELECT value FROM meta WHERE key = $1").bind(key).fetch_one(&self.pool).await?;
                Ok(row.try_get("value")?)
            }

            async fn save_journey_version(&self, journey_id: &str, hash: &str, text: &str, now: i64) -> Result<()> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                sqlx::query(
                    "INSERT INTO journey_versions (journey_id, hash, text, first_seen) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(journey_id)
                .bind(hash)
                .bind(text)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn journey_version(&self, journey_id: &str, hash: &str) -> Result<Option<String>> {
                let row = sqlx::query("SELECT text FROM journey_versions WHERE journey_id = $1 AND hash = $2")
                    .bind(journey_id)
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|r| r.try_get("text")).transpose()?)
            }

            async fn tier_counts(&self) -> Result<Vec<Count>> {
                let rows = sqlx::query(
                    "SELECT COALESCE(tier, '(not evaluated)') AS label, COUNT(*) AS n FROM accounts GROUP BY tier ORDER BY label",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(Count { label: r.try_get("label")?, count: r.try_get("n")? })).collect()
            }

            async fn enrollment_counts(&self) -> Result<Vec<Count>> {
                let rows = sqlx::query(
                    "SELECT journey_id || ' ' || status || ' ' || CAST(step_index AS TEXT) AS label, COUNT(*) AS n \
                     FROM enrollments GROUP BY journey_id, status, step_index ORDER BY journey_id, status, step_index",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(Count { label: r.try_get("label")?, count: r.try_get("n")? })).collect()
            }

            async fn outbox_counts(&self) -> Result<Vec<Count>> {
                let rows = sqlx::query(
                    "SELECT kind || ' ' || status AS label, COUNT(*) AS n FROM outbox GROUP BY kind, status ORDER BY kind, status",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(Count { label: r.try_get("label")?, count: r.try_get("n")? })).collect()
            }

            async fn recent_outbox(&self, limit: i64) -> Result<Vec<OutboxRecord>> {
                let rows = sqlx::query(
                    "SELECT idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, contact_id, payload \
                     FROM outbox JOIN outbox_payloads USING (id) ORDER BY id DESC LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(Self::outbox_record)
                    .collect()
            }

            async fn tier_history(&self, account_id: &str) -> Result<Vec<TierChange>> {
                let rows = sqlx::query("SELECT from_tier, to_tier, rule, at FROM tier_changes WHERE account_id = $1 ORDER BY at")
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(TierChange { from: r.try_get("from_tier")?, to: r.try_get("to_tier")?, rule: r.try_get("rule")?, at: r.try_get("at")? }))
                    .collect()
            }

            async fn tier_flows(&self, since: i64, until: i64) -> Result<Vec<(TierChange, i64)>> {
                let rows = sqlx::query("SELECT from_tier, to_tier, rule, MIN(at) AS at, COUNT(*) AS n FROM tier_changes WHERE at >= $1 AND at < $2 GROUP BY from_tier, to_tier, rule ORDER BY n DESC")
                    .bind(since)
                    .bind(until)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((TierChange { from: r.try_get("from_tier")?, to: r.try_get("to_tier")?, rule: r.try_get("rule")?, at: r.try_get("at")? }, r.try_get("n")?)))
                    .collect()
            }

            async fn step_score_changes(&self, journey_id: &str, score: &str, from: i64, until: i64, window_ms: i64) -> Result<Vec<StepScoreChange>> {
                // One row per enrollment and step (an account journey mails several contacts),
                // with the score when the step ran and `window_ms` later.
                let rows = sqlx::query(
                    "SELECT s.enrollment_id, s.step_id, s.kind, s.status, s.account_id, s.at, \
                     (SELECT h.value FROM score_history h WHERE h.account_id = s.account_id AND h.name = $2 \
                      AND h.at <= s.at ORDER BY h.at DESC LIMIT 1) AS before_value, \
                     (SELECT h.value FROM score_history h WHERE h.account_id = s.account_id AND h.name = $2 \
                      AND h.at <= s.at + $5 ORDER BY h.at DESC LIMIT 1) AS after_value \
                     FROM (SELECT enrollment_id, step_id, kind, status, account_id, MIN(created_at) AS at FROM outbox \
                           WHERE journey_id = $1 AND status IN ('sent', 'held_out') AND kind IN ('email', 'task') \
                           AND created_at >= $3 AND created_at + $5 <= $4 \
                           GROUP BY enrollment_id, step_id, kind, status, account_id) s",
                )
                .bind(journey_id)
                .bind(score)
                .bind(from)
                .bind(until)
                .bind(window_ms)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StepScoreChange {
                            enrollment_id: r.try_get("enrollment_id")?,
                            step_id: r.try_get("step_id")?,
                            kind: r.try_get("kind")?,
                            held_out: r.try_get::<String, _>("status")? == "held_out",
                            account_id: r.try_get("account_id")?,
                            at: r.try_get("at")?,
                            before: r.try_get("before_value")?,
                            after: r.try_get("after_value")?,
                        })
                    })
                    .collect()
            }

            async fn scores_at(&self, score: &str, at: i64, until: i64) -> Result<Vec<ScoreAt>> {
                // Per account: the latest value at `at`, else the first one after it.
                let rows = sqlx::query(
                    "SELECT account_id, value, at FROM (SELECT account_id, value, at, ROW_NUMBER() OVER ( \
                     PARTITION BY account_id ORDER BY CASE WHEN at <= $2 THEN 0 ELSE 1 END, \
                     CASE WHEN at <= $2 THEN -at ELSE at END) AS rn \
                     FROM score_history WHERE name = $1 AND at < $3) ranked WHERE rn = 1",
                )
                .bind(score)
                .bind(at)
                .bind(until)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok(ScoreAt { account_id: r.try_get("account_id")?, value: r.try_get("value")?, at: r.try_get("at")? }))
                    .collect()
            }

            async fn first_events(&self, name: &str) -> Result<Vec<(String, i64)>> {
                let rows = sqlx::query("SELECT account_id, MIN(at) AS at FROM events WHERE name = $1 GROUP BY account_id")
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("account_id")?, r.try_get("at")?))).collect()
            }

            async fn enrollments_entered(&self, from: i64, to: i64) -> Result<Vec<Enrollment>> {
                let rows = sqlx::query(&format!("SELECT {ENROLLMENT_COLUMNS} FROM enrollments WHERE entered_at >= $1 AND entered_at < $2 ORDER BY id"))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::enrollment).collect()
            }

            async fn steps_reached(&self, from: i64, to: i64) -> Result<Vec<(String, String, i64)>> {
                let rows = sqlx::query(
                    "SELECT e.journey_id, l.step_id, COUNT(DISTINCT l.enrollment_id) AS n FROM enrollment_log l \
                     JOIN enrollments e ON e.id = l.enrollment_id \
                     WHERE e.entered_at >= $1 AND e.entered_at < $2 AND l.step_id IS NOT NULL AND l.event <> 'skipped' \
                     GROUP BY e.journey_id, l.step_id",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("journey_id")?, r.try_get("step_id")?, r.try_get("n")?)))
                    .collect()
            }

            async fn delivery_latency(&self, bounds_ms: &[i64]) -> Result<Vec<Latency>> {
                let mut query = QueryBuilder::<$db>::new("SELECT kind, COUNT(*) AS n, CAST(COALESCE(SUM(delivered_at - created_at), 0) AS BIGINT) AS total");
                for (index, bound) in bounds_ms.iter().enumerate() {
                    query.push(", CAST(COALESCE(SUM(CASE WHEN delivered_at - created_at <= ");
                    query.push_bind(*bound);
                    query.push(format!(" THEN 1 ELSE 0 END), 0) AS BIGINT) AS b{index}"));
                }
                query.push(" FROM outbox WHERE status = 'sent' AND delivered_at IS NOT NULL GROUP BY kind ORDER BY kind");
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter()
                    .map(|r| {
                        let buckets = (0..bounds_ms.len())
                            .map(|index| r.try_get(format!("b{index}").as_str()))
                            .collect::<std::result::Result<Vec<i64>, _>>()?;
                        Ok(Latency { kind: r.try_get("kind")?, at_most: buckets, count: r.try_get("n")?, sum_ms: r.try_get("total")? })
                    })
                    .collect()
            }

            async fn outbox_by_step(&self, from: i64, to: i64) -> Result<Vec<StepOutboxCount>> {
                let rows = sqlx::query(
                    "SELECT journey_id, step_id, kind, status, COUNT(*) AS n FROM outbox \
                     WHERE created_at >= $1 AND created_at < $2 GROUP BY journey_id, step_id, kind, status",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(StepOutboxCount {
                            journey_id: r.try_get("journey_id")?,
                            step_id: r.try_get("step_id")?,
                            kind: r.try_get("kind")?,
                            status: DeliveryStatus::parse(&r.try_get::<String, _>("status")?)?,
                            count: r.try_get("n")?,
                        })
                    })
                    .collect()
            }

            async fn claim_outbox(&self, kinds: &[&str], now: i64, owner: &str, lease_ms: i64, limit: i64) -> Result<Vec<OutboxItem>> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                if kinds.is_empty() {
                    return Ok(Vec::new());
                }
                // On an SQLite file, the same statements in rusqlite (`sqlite_outbox`).
                if let Some(outbox) = &self.outbox {
                    return outbox.claim(kinds, now, owner, lease_ms, limit).await;
                }
                let mut tx = self.begin_write().await?;
                if !$claim_plan.is_empty() {
                    sqlx::query($claim_plan).execute(&mut *tx).await?;
                }
                // A worker that died mid-delivery lets its lease run out; the record is claimable again.
                sqlx::query("UPDATE outbox SET status = 'pending', claimed_by = NULL WHERE status = 'sending' AND lease_until < $1")
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let mut query = QueryBuilder::<$db>::new("UPDATE outbox SET status = 'sending', claimed_by = ");
                query.push_bind(owner).push(", lease_until = ").push_bind(now + lease_ms);
                query.push(", attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ");
                query.push_bind(now).push(" AND kind IN (");
                let mut list = query.separated(", ");
                for kind in kinds {
                    list.push_bind(*kind);
                }
                query.push(") ORDER BY next_attempt_at, id LIMIT ").push_bind(limit);
                query.push(concat!($skip_locked, ") RETURNING id, idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, contact_id, attempts"));
                let rows = query.build().fetch_all(&mut *tx).await?;
                tx.commit().await?;
                let ids = rows.iter().map(|r| r.try_get("id")).collect::<std::result::Result<Vec<i64>, _>>()?;
                let mut payloads = self.outbox_payloads(&ids).await?;
                let mut items: Vec<OutboxItem> = rows
                    .iter()
                    .zip(&ids)
                    .map(|(r, id)| {
                        let text = payloads
                            .remove(id)
                            .ok_or_else(|| StoreError::Corrupt(format!("outbox record {id} has no payload")))?;
                        Ok(OutboxItem {
                            id: *id,
                            attempts: r.try_get("attempts")?,
                            record: Self::outbox_record_with(r, &text)?,
                        })
                    })
                    .collect::<Result<_>>()?;
                items.sort_by_key(|i| i.id);
                Ok(items)
            }

            async fn finish_outbox(&self, id: i64, owner: &str, now: i64, outcome: &DeliveryOutcome) -> Result<bool> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut conn = self.pool.acquire().await?;
                Self::finish_one(&mut conn, id, owner, now, outcome).await
            }

            fn notes_accepted(&self) -> bool {
                self.outbox.is_some()
            }

            fn note_accepted(&self, id: i64, owner: &str, at: i64, result: &str) -> Result<bool> {
                let Some(outbox) = &self.outbox else {
                    return Ok(false);
                };
                outbox.note_accepted(id, owner, at, result)?;
                Ok(true)
            }

            async fn hold_connection(&self) -> Result<HeldConnection<Self>> {
                // Marks on an SQLite file run on a connection of their own (`sqlite_outbox`).
                if self.outbox.is_some() || self.pool.options().get_max_connections() < 2 {
                    return Ok(HeldConnection(None));
                }
                Ok(HeldConnection(Some(self.pool.acquire().await?)))
            }

            async fn finish_outbox_held(&self, held: &mut HeldConnection<Self>, owner: &str, now: i64, outcomes: &[(i64, DeliveryOutcome)]) -> Result<u64> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                // On an SQLite file, the same statements in rusqlite (`sqlite_outbox`).
                if let Some(outbox) = &self.outbox {
                    return outbox.finish(owner, now, outcomes).await;
                }
                let mut borrowed = None;
                let conn = match &mut held.0 {
                    Some(held) => &mut **held,
                    None => &mut **borrowed.insert(self.pool.acquire().await?),
                };
                // Sent records, the most common outcome, are marked with one statement per
                // chunk; the others one by one.
                let mut sent = Vec::new();
                let mut others = Vec::new();
                for (id, outcome) in outcomes {
                    match outcome {
                        DeliveryOutcome::Sent(result) => sent.push((*id, result.as_str())),
                        other => others.push((*id, other)),
                    }
                }
                // The records are named in an `IN` list, each one's result picked by a `CASE`
                // (`push_case_by_id`), so each is looked up in the primary key.
                fn mark_sent<'a>(chunk: &'a [(i64, &'a str)], owner: &'a str, now: i64) -> QueryBuilder<'a, $db> {
                    let mut query = QueryBuilder::<$db>::new("UPDATE outbox SET status = 'sent', result =");
                    $name::push_case_by_id(&mut query, chunk.iter().copied());
                    query.push(", held_reason = NULL, delivered_at = ").push_bind(now);
                    query.push(", claimed_by = NULL, lease_until = NULL WHERE id");
                    $name::push_in_list(&mut query, chunk.iter().map(|(id, _)| *id));
                    query.push(" AND claimed_by = ").push_bind(owner);
                    query.push(" AND status = 'sending'");
                    query
                }
                // A batch of sent records alone is one statement, atomic by itself: no
                // transaction around it, one round trip to the database, which is what a
                // mail waits for before its connection takes the next.
                if others.is_empty() && sent.len() <= CHUNK {
                    return Ok(mark_sent(&sent, owner, now).build().execute(&mut *conn).await?.rows_affected());
                }
                let mut tx = sqlx::Connection::begin_with(conn, Self::BEGIN_WRITE).await?;
                let mut finished = 0;
                for (id, outcome) in others {
                    finished += u64::from(Self::finish_one(&mut tx, id, owner, now, outcome).await?);
                }
                for chunk in sent.chunks(CHUNK) {
                    finished += mark_sent(chunk, owner, now).build().execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(finished)
            }

            async fn deliver_task(&self, outbox_id: i64, owner: &str, now: i64, task: &NewTask, notices: &[OutboxRecord]) -> Result<Option<TaskWrite>> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                let held = sqlx::query(
                    "UPDATE outbox SET status = 'sent', delivered_at = $3, claimed_by = NULL, lease_until = NULL, result = 'task' \
                     WHERE id = $1 AND claimed_by = $2 AND status = 'sending' RETURNING idempotency_key",
                )
                .bind(outbox_id)
                .bind(owner)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(held) = held else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let outbox_key: String = held.try_get("idempotency_key")?;
                let updated = sqlx::query(
                    "UPDATE tasks SET title = $2, description = $3, priority = $4, due_at = COALESCE(due_at, $5), reason = $6, \
                     updated_at = $7, outbox_key = $8 WHERE dedupe_key = $1 AND status = 'open' RETURNING id",
                )
                .bind(&task.dedupe_key)
                .bind(&task.title)
                .bind(&task.description)
                .bind(&task.priority)
                .bind(task.due_at)
                .bind(to_json(&task.reason))
                .bind(now)
                .bind(&outbox_key)
                .fetch_optional(&mut *tx)
                .await?;
                let write = match updated {
                    Some(row) => TaskWrite::Updated(row.try_get("id")?),
                    None => {
                        // New tasks are written one at a time across engine processes (this
                        // row stays locked until commit), so a free slot is counted once.
                        sqlx::query(
                            "INSERT INTO counters (key, value) VALUES ('task_assignment', 1) \
                             ON CONFLICT (key) DO UPDATE SET value = counters.value + 1",
                        )
                        .execute(&mut *tx)
                        .await?;
                        if let (Some(capacity), Some(assignee)) = (task.capacity, &task.assignee) {
                            let open: i64 = sqlx::query(
                                "SELECT COUNT(*) AS n FROM tasks WHERE assignee = $1 AND status = 'open'",
                            )
                            .bind(assignee)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("n")?;
                            if open >= capacity {
                                tx.rollback().await?;
                                return Ok(Some(TaskWrite::AssigneeFull));
                            }
                        }
                        let row = sqlx::query(
                            "INSERT INTO tasks (dedupe_key, account_id, journey_id, step_id, title, description, assignee, \
                             priority, status, due_at, reason, created_at, updated_at, outbox_key) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'open', $9, $10, $11, $11, $12) RETURNING id",
                        )
                        .bind(&task.dedupe_key)
                        .bind(&task.account_id)
                        .bind(&task.journey_id)
                        .bind(&task.step_id)
                        .bind(&task.title)
                        .bind(&task.description)
                        .bind(&task.assignee)
                        .bind(&task.priority)
                        .bind(task.due_at)
                        .bind(to_json(&task.reason))
                        .bind(now)
                        .bind(&outbox_key)
                        .fetch_one(&mut *tx)
                        .await?;
                        let notices: Vec<&OutboxRecord> = notices.iter().collect();
                        Self::outbox_all(&mut tx, &notices, now).await?;
                        TaskWrite::Created(row.try_get("id")?)
                    }
                };
                tx.commit().await?;
                Ok(Some(write))
            }

            async fn emails_sent_since(&self, account_id: &str, contact_id: &str, since: i64) -> Result<Vec<i64>> {
                let rows = sqlx::query(
                    "SELECT delivered_at FROM outbox WHERE kind = 'email' AND status = 'sent' AND account_id = $1 \
                     AND contact_id = $2 AND delivered_at > $3 ORDER BY delivered_at",
                )
                .bind(account_id)
                .bind(contact_id)
                .bind(since)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(r.try_get("delivered_at")?)).collect()
            }

            async fn emails_sent_to(&self, account_ids: &[String], since: i64) -> Result<Vec<(String, String, i64)>> {
                if let Some(readers) = &self.readers {
                    return readers.emails_sent_to(account_ids, since).await;
                }
                let mut out = Vec::new();
                for chunk in account_ids.chunks(CHUNK) {
                    let mut query = QueryBuilder::<$db>::new(
                        "SELECT account_id, contact_id, delivered_at FROM outbox WHERE kind = 'email' AND status = 'sent' AND delivered_at > ",
                    );
                    query.push_bind(since);
                    query.push(" AND account_id IN (");
                    let mut ids = query.separated(", ");
                    for id in chunk {
                        ids.push_bind(id);
                    }
                    query.push(") ORDER BY delivered_at");
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push((row.try_get("account_id")?, row.try_get("contact_id")?, row.try_get("delivered_at")?));
                    }
                }
                Ok(out)
            }

            async fn recipient_facts(&self, account_ids: &[String]) -> Result<Vec<RecipientFacts>> {
                if let Some(readers) = &self.readers {
                    return readers.recipient_facts(account_ids).await;
                }
                let json = &$json;
                let row = format!("{}(a.id, c.id, c.subscribed, c.timezone, a.timezone)", json.array);
                let select = format!(
                    "SELECT {} AS batch FROM accounts a LEFT JOIN contacts c ON c.account_id = a.id WHERE a.id",
                    (json.rows)(&row, "a.id, c.id")
                );
                self.json_chunks(&select, account_ids, super::json_rows::recipient_facts).await
            }

            async fn suppressions_of(&self, emails: &[String]) -> Result<Vec<Suppression>> {
                let emails: Vec<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
                if let Some(readers) = &self.readers {
                    return readers.suppressions_of(emails).await;
                }
                let mut out = Vec::new();
                for chunk in emails.chunks(CHUNK) {
                    let mut query = Self::in_list("SELECT email, reason, detail, created_at FROM suppressions WHERE email", chunk);
                    for row in query.build().fetch_all(&self.pool).await? {
                        out.push(Self::suppression_row(&row)?);
                    }
                }
                Ok(out)
            }

            async fn suppression(&self, email: &str) -> Result<Option<Suppression>> {
                let row = sqlx::query("SELECT email, reason, detail, created_at FROM suppressions WHERE email = $1")
                    .bind(email.trim().to_lowercase())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Self::suppression_row(&r)).transpose()
            }

            async fn suppress(&self, suppression: &Suppression) -> Result<bool> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let done = sqlx::query(
                    "INSERT INTO suppressions (email, reason, detail, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (email) DO NOTHING",
                )
                .bind(suppression.email.trim().to_lowercase())
                .bind(&suppression.reason)
                .bind(&suppression.detail)
                .bind(suppression.created_at)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn unsuppress(&self, email: &str) -> Result<bool> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let done = sqlx::query("DELETE FROM suppressions WHERE email = $1")
                    .bind(email.trim().to_lowercase())
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(done == 1)
            }

            async fn suppressions(&self) -> Result<Vec<Suppression>> {
                let rows = sqlx::query("SELECT email, reason, detail, created_at FROM suppressions ORDER BY email")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::suppression_row).collect()
            }

            async fn deliveries(&self, statuses: &[DeliveryStatus], limit: i64) -> Result<Vec<DeliveryRow>> {
                if statuses.is_empty() {
                    return Ok(Vec::new());
                }
                let mut query = QueryBuilder::<$db>::new(format!("SELECT {DELIVERY_COLUMNS} FROM outbox JOIN outbox_payloads USING (id) WHERE status IN ("));
                let mut list = query.separated(", ");
                for status in statuses {
                    list.push_bind(status.as_str());
                }
                query.push(") ORDER BY id DESC LIMIT ").push_bind(limit);
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::delivery_row).collect()
            }

            async fn delivered_to(&self, account_id: &str) -> Result<Vec<DeliveryRow>> {
                let rows = sqlx::query(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM outbox JOIN outbox_payloads USING (id) WHERE account_id = $1 AND status = 'sent' ORDER BY delivered_at, id"
                ))
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::delivery_row).collect()
            }

            async fn requeue(&self, id: i64, from: &[DeliveryStatus], now: i64) -> Result<bool> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut query = QueryBuilder::<$db>::new("UPDATE outbox SET status = 'pending', attempts = 0, claimed_by = NULL, lease_until = NULL, next_attempt_at = ");
                query.push_bind(now).push(" WHERE id = ").push_bind(id).push(" AND status IN (");
                let mut list = query.separated(", ");
                for status in from {
                    list.push_bind(status.as_str());
                }
                query.push(")");
                Ok(query.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn open_task_counts(&self) -> Result<Vec<Count>> {
                let rows = sqlx::query(
                    "SELECT assignee AS label, COUNT(*) AS n FROM tasks WHERE status = 'open' AND assignee IS NOT NULL \
                     GROUP BY assignee ORDER BY assignee",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|r| Ok(Count { label: r.try_get("label")?, count: r.try_get("n")? })).collect()
            }

            async fn unknown_score_counts(&self) -> Result<Vec<Count>> {
                let sql = format!(
                    "SELECT j.key AS label, COUNT(*) AS n FROM accounts, {} AS j \
                     WHERE accounts.unknown_scores <> '{{}}' GROUP BY j.key ORDER BY j.key",
                    $json_keys
                );
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(|r| Ok(Count { label: r.try_get("label")?, count: r.try_get("n")? })).collect()
            }

            async fn account_count(&self) -> Result<i64> {
                let row = sqlx::query("SELECT COUNT(*) AS n FROM accounts").fetch_one(&self.pool).await?;
                Ok(row.try_get("n")?)
            }

            async fn hold_journey(&self, journey_id: &str, reason: &str, at: i64) -> Result<u64> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                sqlx::query("INSERT INTO holds (journey_id, reason, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(journey_id)
                    .bind(reason)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
                let held = sqlx::query(
                    "UPDATE outbox SET status = 'held' WHERE journey_id = $1 AND status = 'pending' AND created_at = $2",
                )
                .bind(journey_id)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(held)
            }

            async fn holds(&self) -> Result<Vec<HeldJourney>> {
                let rows = sqlx::query(
                    "SELECT h.journey_id, h.reason, h.created_at, \
                     (SELECT COUNT(*) FROM outbox o WHERE o.journey_id = h.journey_id AND o.status = 'held') AS records \
                     FROM holds h ORDER BY h.journey_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(HeldJourney {
                            journey_id: r.try_get("journey_id")?,
                            reason: r.try_get("reason")?,
                            created_at: r.try_get("created_at")?,
                            records: r.try_get("records")?,
                        })
                    })
                    .collect()
            }

            async fn end_hold(&self, journey_id: &str, release: bool, now: i64) -> Result<Option<u64>> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                let ended = sqlx::query("DELETE FROM holds WHERE journey_id = $1")
                    .bind(journey_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if ended == 0 {
                    // Lets go of the write lock now, not when sqlx's background rollback runs.
                    tx.rollback().await?;
                    return Ok(None);
                }
                let query = if release {
                    sqlx::query("UPDATE outbox SET status = 'pending', next_attempt_at = $2 WHERE journey_id = $1 AND status = 'held'")
                        .bind(journey_id)
                        .bind(now)
                } else {
                    sqlx::query(
                        "UPDATE outbox SET status = 'skipped', last_error = 'discarded from a hold by a person' \
                         WHERE journey_id = $1 AND status = 'held'",
                    )
                    .bind(journey_id)
                };
                let records = query.execute(&mut *tx).await?.rows_affected();
                tx.commit().await?;
                Ok(Some(records))
            }

            async fn next_counter(&self, key: &str) -> Result<i64> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let row = sqlx::query(
                    "INSERT INTO counters (key, value) VALUES ($1, 1) \
                     ON CONFLICT (key) DO UPDATE SET value = counters.value + 1 RETURNING value",
                )
                .bind(key)
                .fetch_one(&self.pool)
                .await?;
                Ok(row.try_get("value")?)
            }

            async fn tasks(&self, assignee: Option<&str>, status: Option<TaskStatus>) -> Result<Vec<Task>> {
                let rows = sqlx::query(
                    &format!("SELECT {TASK_COLUMNS} FROM tasks \
                     WHERE ($1 IS NULL OR assignee = $1) AND ($2 IS NULL OR status = $2) ORDER BY id"),
                )
                .bind(assignee)
                .bind(status.map(TaskStatus::as_str))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(Self::task).collect()
            }

            async fn score_history(&self, account_id: &str) -> Result<Vec<(String, f64, i64)>> {
                let rows = sqlx::query("SELECT name, value, at FROM score_history WHERE account_id = $1 ORDER BY at, name")
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("value")?, r.try_get("at")?))).collect()
            }

            async fn account_tasks(&self, account_id: &str) -> Result<Vec<Task>> {
                let rows = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE account_id = $1 ORDER BY id DESC"))
                    .bind(account_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(Self::task).collect()
            }

            async fn task(&self, id: i64) -> Result<Option<Task>> {
                let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(Self::task).transpose()
            }

            async fn change_task(&self, id: i64, change: &TaskChange, actor: &str, now: i64, notices: &[OutboxRecord]) -> Result<TaskChangeOutcome> {
                // One writer at a time on SQLite, queued here rather than in SQLite's busy loop.
                let _writing = self.write_gate().await;
                let mut tx = self.begin_write().await?;
                let outcome = Self::change_task_in(&mut tx, id, change, actor, now, notices).await?;
                if matches!(outcome, TaskChangeOutcome::Changed) {
                    tx.commit().await?;
                } else {
                    // Lets go of the write lock now, not when sqlx's background rollback runs.
                    tx.rollback().await?;
                }
                Ok(outcome)
            }

            async fn task_log(&self, id: i64) -> Result<Vec<TaskLogEntry>> {
                let rows = sqlx::query("SELECT at, actor, action, detail FROM task_log WHERE task_id = $1 ORDER BY id")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(TaskLogEntry { at: r.try_get("at")?, actor: r.try_get("actor")?, action: r.try_get("action")?, detail: r.try_get("detail")? }))
                    .collect()
            }

            async fn enrollment_log(&self, enrollment_id: i64) -> Result<Vec<(i64, LogEntry)>> {
                let rows = sqlx::query("SELECT at, step_id, event, detail FROM enrollment_log WHERE enrollment_id = $1 ORDER BY id")
                    .bind(enrollment_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok((r.try_get("at")?, LogEntry { step_id: r.try_get("step_id")?, event: r.try_get("event")?, detail: r.try_get("detail")? }))
                    })
                    .collect()
            }
        }
    };
}

store_impl!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::SqlitePool,
    "The embedded SQLite store (the default).",
    "json_group_object(m.name, m.value)",
    "",
    "",
    "json_each(accounts.unknown_scores)",
    true,
    super::json_rows::SQLITE
);
impl SqliteStore {
    /// Reads batches of accounts from the file at `path`, the pool's database, and claims
    /// outbox records in it and marks them, on connections of its own.
    pub(super) fn reading_file(mut self, path: std::path::PathBuf) -> Self {
        self.outbox = Some(super::sqlite_outbox::OutboxConnection::new(path.clone()));
        self.readers = Some(super::sqlite_reader::Readers::new(path));
        self
    }
}

store_impl!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::PgPool,
    "The PostgreSQL store, for several engine processes.",
    "json_object_agg(m.name, m.value)::text",
    " FOR UPDATE SKIP LOCKED",
    // A claim walks the index in its order and stops at its limit. Left to choose, the
    // planner reads every due record and sorts them all for each claim of 200 whenever the
    // outbox's statistics predate a burst of new records (right after a pass enqueued
    // them, or for long on a large outbox, whose statistics say few records wait): 23 ms a
    // claim at 20 000 due instead of 3. Only this claim's transaction is affected.
    "SELECT set_config('enable_sort', 'off', true)",
    "json_each_text(accounts.unknown_scores::json)",
    false,
    super::json_rows::POSTGRES
);

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use rand::{Rng, SeedableRng};

    /// Picking metrics by their keys gives what parsing the whole object gives, to the bit,
    /// for objects written compactly (as touchline and SQLite write them) and spaced out (as
    /// PostgreSQL does), with names that need escaping and metrics that are missing.
    #[test]
    fn named_metrics_and_all_numbers_match_the_whole_parse() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let pool = ["logins", "seats", "rate", "a\"b", "x\\y", "logins_30d", "é"];
        for _ in 0..2000 {
            let metrics: BTreeMap<String, f64> = (0..rng.random_range(0..8))
                .map(|_| {
                    let value = loop {
                        let v = f64::from_bits(rng.random());
                        if v.is_finite() {
                            break if rng.random_bool(0.5) {
                                v
                            } else {
                                v.trunc() % 1e6
                            };
                        }
                    };
                    (pool[rng.random_range(0..pool.len())].to_string(), value)
                })
                .collect();
            let names: BTreeSet<String> = (0..rng.random_range(0..4))
                .map(|_| pool[rng.random_range(0..pool.len())].to_string())
                .collect();
            let compact = serde_json::to_string(&metrics).expect("json");
            let spaced = serde_json::to_string_pretty(&metrics).expect("json");
            for text in [compact, spaced] {
                let whole: BTreeMap<String, f64> = super::from_json(&text).expect("whole");
                let expected: BTreeMap<String, u64> = whole
                    .iter()
                    .filter(|(k, _)| names.contains(*k))
                    .map(|(k, v)| (k.clone(), v.to_bits()))
                    .collect();
                let picked: BTreeMap<String, u64> = super::metrics_named(&text, &names)
                    .expect("picked")
                    .into_iter()
                    .map(|(k, v)| (k, v.to_bits()))
                    .collect();
                assert_eq!(picked, expected, "{text} {names:?}");
                let bits = |numbers: BTreeMap<String, f64>| -> BTreeMap<String, u64> {
                    numbers.into_iter().map(|(k, v)| (k, v.to_bits())).collect()
                };
                let all = super::numbers_json(&text).expect("all");
                assert_eq!(bits(all), bits(whole), "{text}");
            }
        }
    }
}
