//! Batch reads of an SQLite file on connections of touchline's own, outside sqlx.
//!
//! sqlx runs each SQLite connection on a worker thread and hands every row, value by value,
//! across to the async side. For the reads a full pass makes of every account that hand-off
//! costs several times SQLite's own work, even with the batch folded into one JSON text
//! (`json_rows`): building and parsing the JSON then costs about 10 µs per account, where
//! stepping the rows in place costs about 1. So the rule-input reads of a file store step
//! their rows with rusqlite on a blocking thread, on query-only connections to the same file
//! (WAL lets them read beside the writer, and each read sees one committed state).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Row};

use super::{RecipientFacts, Result, RuleFields, StoreError, Suppression, SweepInputs};
use crate::clock::from_millis;
use crate::model::{ACCOUNT_FACTS, Account, AccountState};

/// Idle query-only connections to one SQLite file, opened as needed.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Read(error.to_string())
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(error: rusqlite::types::FromSqlError) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl Readers {
    /// Readers of the SQLite file at `path` (which sqlx has opened and migrated).
    pub(super) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            path,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `read` on a blocking thread with a connection of its own.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let connection = match readers.idle.lock().ok().and_then(|mut idle| idle.pop()) {
                Some(connection) => connection,
                None => readers.open()?,
            };
            let out = read(&connection);
            if let Ok(mut idle) = readers.idle.lock() {
                idle.push(connection);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Read(e.to_string()))?
    }

    fn open(&self) -> Result<Connection> {
        // Opened for writing, as a WAL reader must be able to set up the shared-memory file
        // when no other connection has it open; `query_only` refuses every write.
        let connection = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.pragma_update(None, "query_only", true)?;
        connection.busy_timeout(Duration::from_secs(30))?;
        // Pages are read through a memory map: a write between two batches (each moves the
        // pass's cursor) empties a connection's page cache, and refilling it by copying
        // every page again cost a tenth of a full pass.
        connection.pragma_update(None, "mmap_size", 1i64 << 30)?;
        Ok(connection)
    }

    /// [`super::Store::load_rule_inputs`]: the accounts with these ids, in id order, holding
    /// only what `fields` names.
    pub(super) async fn rule_inputs(
        self: &Arc<Self>,
        ids: &[String],
        fields: &RuleFields,
    ) -> Result<Vec<AccountState>> {
        let ids = ids.to_vec();
        let fields = fields.clone();
        self.with(move |connection| {
            let columns = columns(&fields);
            rows_in(
                connection,
                |list| format!("SELECT {columns} FROM accounts WHERE id IN ({list}) ORDER BY id"),
                &[],
                &ids,
                |row| rule_input(row, &fields),
            )
        })
        .await
    }

    /// [`super::Store::sweep_bound`].
    pub(super) async fn sweep_bound(
        self: &Arc<Self>,
        after: &str,
        limit: i64,
    ) -> Result<Option<String>> {
        let after = after.to_string();
        self.with(move |connection| {
            let mut statement = connection.prepare_cached(super::sql::SWEEP_BOUND)?;
            Ok(statement.query_row(rusqlite::params![after, limit], |row| row.get(0))?)
        })
        .await
    }

    /// [`super::Store::sweep_inputs`]: the accounts and the running ones read in one
    /// transaction, so both see the same state.
    pub(super) async fn sweep_inputs(
        self: &Arc<Self>,
        after: &str,
        through: &str,
        fields: &RuleFields,
    ) -> Result<SweepInputs> {
        let (after, through, fields) = (after.to_string(), through.to_string(), fields.clone());
        self.with(move |connection| {
            let snapshot = connection.unchecked_transaction()?;
            let sql = format!(
                "SELECT {} FROM accounts WHERE id > ?1 AND id <= ?2 ORDER BY id",
                columns(&fields)
            );
            let mut states = Vec::new();
            let mut statement = snapshot.prepare_cached(&sql)?;
            let mut rows = statement.query(rusqlite::params![after, through])?;
            while let Some(row) = rows.next()? {
                states.push(rule_input(row, &fields)?);
            }
            let mut statement = snapshot.prepare_cached(super::sql::SWEEP_RUNNING)?;
            let running = statement
                .query_map(rusqlite::params![after, through], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(SweepInputs { states, running })
        })
        .await
    }
}

/// What the send checks read of a claimed batch's recipients (`delivery::recipients`), read
/// here for the same reason as rule inputs: through sqlx they were a tenth of the store's
/// work per mail.
impl Readers {
    /// [`super::Store::recipient_facts`].
    pub(super) async fn recipient_facts(
        self: &Arc<Self>,
        account_ids: &[String],
    ) -> Result<Vec<RecipientFacts>> {
        let ids = account_ids.to_vec();
        self.with(move |connection| {
            rows_in(
                connection,
                |list| {
                    format!(
                        "SELECT a.id, c.id, c.subscribed, c.timezone, a.timezone FROM accounts a \
                         LEFT JOIN contacts c ON c.account_id = a.id WHERE a.id IN ({list}) ORDER BY a.id, c.id"
                    )
                },
                &[],
                &ids,
                |row| {
                    Ok(RecipientFacts {
                        account_id: row.get(0)?,
                        contact_id: row.get(1)?,
                        subscribed: row.get::<_, Option<i64>>(2)?.is_some_and(|s| s != 0),
                        timezone: row.get(3)?,
                        account_timezone: row.get(4)?,
                    })
                },
            )
        })
        .await
    }

    /// [`super::Store::suppressions_of`], `emails` already trimmed and lower-cased.
    pub(super) async fn suppressions_of(
        self: &Arc<Self>,
        emails: Vec<String>,
    ) -> Result<Vec<Suppression>> {
        self.with(move |connection| {
            rows_in(
                connection,
                |list| {
                    format!(
                        "SELECT email, reason, detail, created_at FROM suppressions WHERE email IN ({list})"
                    )
                },
                &[],
                &emails,
                |row| {
                    Ok(Suppression {
                        email: row.get(0)?,
                        reason: row.get(1)?,
                        detail: row.get(2)?,
                        created_at: row.get(3)?,
                    })
                },
            )
        })
        .await
    }

    /// [`super::Store::emails_sent_to`].
    pub(super) async fn emails_sent_to(
        self: &Arc<Self>,
        account_ids: &[String],
        since: i64,
    ) -> Result<Vec<(String, String, i64)>> {
        let ids = account_ids.to_vec();
        self.with(move |connection| {
            rows_in(
                connection,
                |list| {
                    format!(
                        "SELECT account_id, contact_id, delivered_at FROM outbox WHERE kind = 'email' \
                         AND status = 'sent' AND delivered_at > ? AND account_id IN ({list}) ORDER BY delivered_at"
                    )
                },
                &[&since],
                &ids,
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
        })
        .await
    }
}

/// The rows of `select(list)` for `keys`, a chunk at a time: `list` is a placeholder per key
/// of the chunk, bound after `leading`; each row read by `read`.
fn rows_in<T>(
    connection: &Connection,
    select: impl Fn(&str) -> String,
    leading: &[&dyn rusqlite::ToSql],
    keys: &[String],
    read: impl Fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(super::sql::CHUNK) {
        let mut statement = connection.prepare_cached(&select(&placeholders(chunk.len())))?;
        let params = leading
            .iter()
            .copied()
            .chain(chunk.iter().map(|key| key as &dyn rusqlite::ToSql));
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            out.push(read(row)?);
        }
    }
    Ok(out)
}

/// `n` positional parameters, comma-separated.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The columns of a rule-input read: `id`, the facts `fields` names (others as NULL), then
/// what every evaluation reads.
fn columns(fields: &RuleFields) -> String {
    let mut columns = vec!["id"];
    // The facts after `id`, in [`ACCOUNT_FACTS`] order, the last login apart.
    for fact in ACCOUNT_FACTS
        .iter()
        .filter(|fact| !matches!(**fact, "id" | "last_login_at"))
    {
        columns.push(if fields.facts.contains(*fact) {
            fact
        } else {
            "NULL"
        });
    }
    // The last login stays: it decides which logins a pass may see.
    columns.push("last_login_at");
    columns.push(if fields.attributes {
        "attributes"
    } else {
        "NULL"
    });
    let no_metrics = fields.metrics.as_ref().is_some_and(BTreeSet::is_empty);
    columns.push(if no_metrics { "NULL" } else { "metrics" });
    columns.extend(["scores", "unknown_scores"]);
    columns.extend(super::json_rows::EVALUATION_COLUMNS);
    columns.join(", ")
}

/// A column of JSON text, read as `T` (`default` when NULL).
fn json<T: serde::de::DeserializeOwned>(row: &Row<'_>, index: usize, default: T) -> Result<T> {
    match row.get_ref(index)?.as_str_or_null()? {
        Some(text) => super::sql::from_json(text),
        None => Ok(default),
    }
}

/// A column holding a map of names to numbers (empty when NULL).
fn numbers(row: &Row<'_>, index: usize) -> Result<BTreeMap<String, f64>> {
    match row.get_ref(index)?.as_str_or_null()? {
        Some(text) => super::sql::numbers_json(text),
        None => Ok(BTreeMap::new()),
    }
}

/// One row of [`columns`] as the account's state.
fn rule_input(row: &Row<'_>, fields: &RuleFields) -> Result<AccountState> {
    let time =
        |index: usize| -> Result<_> { Ok(row.get::<_, Option<i64>>(index)?.map(from_millis)) };
    let metrics = match (row.get_ref(15)?.as_str_or_null()?, &fields.metrics) {
        (None, _) => BTreeMap::new(),
        (Some(text), Some(names)) => super::sql::metrics_named(text, names)?,
        (Some(text), None) => super::sql::numbers_json(text)?,
    };
    Ok(AccountState {
        account: Account {
            id: row.get(0)?,
            name: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
            plan: row.get(2)?,
            arr: row.get(3)?,
            mrr: row.get(4)?,
            industry: row.get(5)?,
            owner: row.get(6)?,
            timezone: row.get(7)?,
            goals: json(row, 8, Vec::new())?,
            status: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
            contract_start: time(10)?,
            contract_end: time(11)?,
            created_at: time(12)?,
            last_login_at: time(13)?,
            attributes: json(row, 14, Default::default())?,
        },
        metrics,
        scores: numbers(row, 16)?,
        unknown_scores: json(row, 17, BTreeMap::new())?,
        tier: row.get(18)?,
        tier_rule: row.get(19)?,
        data_version: row.get(20)?,
        evaluated_version: row.get(21)?,
        metrics_latest_at: row.get(22)?,
        recheck_at: row.get(23)?,
        next_change_at: None,
        contacts: Vec::new(),
    })
}
