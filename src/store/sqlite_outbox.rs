//! Claims of outbox records on an SQLite file, and the marks of how their deliveries ended,
//! on a connection of touchline's own.
//!
//! A claim takes up to a couple of hundred records in one statement and reads every one
//! back. Through sqlx, each returned row crosses from the connection's thread to the async
//! side value by value. Here the whole claim runs on one blocking thread with rusqlite and
//! comes back as one batch: the delivery benchmark's webhooks went from 60% to 67–69% of
//! the bare client (CPU per call 46 → 41.5 µs, the sink's included). Marks run here too:
//! through sqlx, each batch crossed to the pool connection's own thread and back, a wake-up
//! on either side, while a mail waited for its mark (the crash test's SQLite mail repeats
//! fell from 0.76 to 0.53 per kill over five runs each; mails now wait for a line in the
//! journal of accepted mails instead, `accepted_journal`).
//!
//! The statements are the ones `sql.rs` sends through sqlx for PostgreSQL and in-memory
//! stores, and the delivery benchmark's SQLite floor runs them too; keep them in step. The
//! caller holds the store's write gate, so this process never has two writers waiting on
//! SQLite's lock.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::accepted_journal::AcceptedJournal;
use super::{DeliveryOutcome, OutboxItem, OutboxRecord, Payload, Result, StoreError};

/// One read-write connection to an SQLite file, opened on first use.
#[derive(Debug)]
pub(super) struct OutboxConnection {
    path: PathBuf,
    connection: Mutex<Option<Connection>>,
    /// Mails the server accepted whose marks are not stored yet (`accepted_journal`).
    journal: AcceptedJournal,
    /// Whether this process read back the journals beside the file yet (on its first claim,
    /// so a crashed run's are cleared).
    replayed: AtomicBool,
}

impl OutboxConnection {
    /// Claims and marks on the SQLite file at `path` (which sqlx has opened and migrated).
    pub(super) fn new(path: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            journal: AcceptedJournal::new(&path),
            path,
            connection: Mutex::new(None),
            replayed: AtomicBool::new(false),
        })
    }

    /// [`super::Store::claim_outbox`] for `kinds` (not empty).
    pub(super) async fn claim(
        self: &Arc<Self>,
        kinds: &[&str],
        now: i64,
        owner: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let kinds: Vec<String> = kinds.iter().map(|kind| kind.to_string()).collect();
        let owner = owner.to_string();
        let outbox = Arc::clone(self);
        self.run(move |connection| {
            // Accepted mails are marked before their leases can be taken over.
            let first = !outbox.replayed.swap(true, Ordering::Relaxed);
            if first || lease_ran_out(connection, now)? {
                outbox.journal.replay(connection, now)?;
            }
            claim(connection, &kinds, now, &owner, lease_ms, limit)
        })
        .await
    }

    /// Notes that the server accepted the mail of record `id`, claimed by `owner` (its mark
    /// follows).
    pub(super) fn note_accepted(&self, id: i64, owner: &str, at: i64, result: &str) -> Result<()> {
        self.journal.note(id, owner, at, result)
    }

    /// [`super::Store::finish_outbox_held`]: marks how deliveries ended, in one transaction;
    /// how many records this owner still held.
    pub(super) async fn finish(
        self: &Arc<Self>,
        owner: &str,
        now: i64,
        outcomes: &[(i64, DeliveryOutcome)],
    ) -> Result<u64> {
        let owner = owner.to_string();
        let outcomes = outcomes.to_vec();
        let outbox = Arc::clone(self);
        self.run(move |connection| {
            let finished = finish(connection, &owner, now, &outcomes)?;
            outbox.journal.forget(outcomes.iter().map(|(id, _)| *id))?;
            Ok(finished)
        })
        .await
    }

    /// Runs `work` on the connection, on a blocking thread.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let outbox = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut guard = outbox
                .connection
                .lock()
                .map_err(|_| StoreError::Writer("the outbox connection was poisoned".into()))?;
            let connection = match &mut *guard {
                Some(connection) => connection,
                None => guard.insert(outbox.open()?),
            };
            work(connection)
        })
        .await
        .map_err(|e| StoreError::Writer(e.to_string()))?
    }

    fn open(&self) -> Result<Connection> {
        let connection = Connection::open(&self.path)?;
        // As sqlx's connections to the file are set up (`store::open`).
        connection.busy_timeout(Duration::from_secs(30))?;
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(connection)
    }
}

/// Whether some claimed record's lease ran out by `now`.
fn lease_ran_out(connection: &Connection, now: i64) -> Result<bool> {
    Ok(connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE status = 'sending' AND lease_until < ?1)",
        )?
        .query_row([now], |row| row.get(0))?)
}

/// Frees records whose lease ran out, then claims the next `limit` due ones, in due order;
/// returned in id order.
fn claim(
    connection: &Connection,
    kinds: &[String],
    now: i64,
    owner: &str,
    lease_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxItem>> {
    // A worker that died mid-delivery lets its lease run out; the record is claimable again.
    connection
        .prepare_cached(
            "UPDATE outbox SET status = 'pending', claimed_by = NULL \
             WHERE status = 'sending' AND lease_until < ?1",
        )?
        .execute([now])?;
    // Numbered after the four parameters above.
    let kind_list = (5..5 + kinds.len())
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE outbox SET status = 'sending', claimed_by = ?1, lease_until = ?2, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?3 \
         AND kind IN ({kind_list}) ORDER BY next_attempt_at, id LIMIT ?4) \
         RETURNING id, idempotency_key, enrollment_id, journey_id, step_id, kind, account_id, \
         contact_id, attempts"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let lease_until = now + lease_ms;
    let mut params: Vec<&dyn rusqlite::ToSql> = vec![&owner, &lease_until, &now, &limit];
    params.extend(kinds.iter().map(|kind| kind as &dyn rusqlite::ToSql));
    let mut rows = statement.query(params.as_slice())?;
    let mut claimed = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    while let Some(row) = rows.next()? {
        claimed.push(Claimed::read(row)?);
    }
    drop(rows);
    // Payloads are written once with their records and never change: read after the claim.
    let mut payload =
        connection.prepare_cached("SELECT payload FROM outbox_payloads WHERE id = ?1")?;
    let mut items = Vec::with_capacity(claimed.len());
    // Every record is read before a corrupt one fails the claim, as through sqlx: the claim
    // is stored either way, and those records' leases run out like any other's.
    let mut corrupt = None;
    for record in claimed {
        let text: Option<String> = payload
            .query_row([record.id], |row| row.get(0))
            .optional()?;
        match record.with_payload(text) {
            Ok(item) => items.push(item),
            Err(error) => corrupt = Some(error),
        }
    }
    if let Some(error) = corrupt {
        return Err(error);
    }
    items.sort_by_key(|item: &OutboxItem| item.id);
    Ok(items)
}

/// Marks each record's outcome, if `owner` still holds it; all in one transaction.
fn finish(
    connection: &mut Connection,
    owner: &str,
    now: i64,
    outcomes: &[(i64, DeliveryOutcome)],
) -> Result<u64> {
    // Takes the write lock at once, as every write transaction on SQLite does (`sql.rs`).
    let tx = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut finished = 0;
    for (id, outcome) in outcomes {
        finished += finish_one(&tx, *id, owner, now, outcome)? as u64;
    }
    tx.commit()?;
    Ok(finished)
}

/// Marks how one claimed delivery ended: 1 if `owner` still held it, else 0.
fn finish_one(
    connection: &Connection,
    id: i64,
    owner: &str,
    now: i64,
    outcome: &DeliveryOutcome,
) -> Result<usize> {
    let (status, next, error, result) = match outcome {
        DeliveryOutcome::Sent(result) => {
            return Ok(connection
                .prepare_cached(
                    "UPDATE outbox SET status = 'sent', result = ?3, held_reason = NULL, delivered_at = ?4, \
                     claimed_by = NULL, lease_until = NULL \
                     WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending'",
                )?
                .execute(rusqlite::params![id, owner, result, now])?);
        }
        DeliveryOutcome::Defer { until, why } => {
            return Ok(connection
                .prepare_cached(
                    "UPDATE outbox SET status = 'pending', next_attempt_at = ?3, held_reason = ?4, attempts = attempts - 1, \
                     claimed_by = NULL, lease_until = NULL WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending'",
                )?
                .execute(rusqlite::params![id, owner, until, why])?);
        }
        DeliveryOutcome::Retry { at, error } => ("pending", Some(*at), Some(error), None),
        DeliveryOutcome::Failed(error) => ("failed", None, Some(error), None),
        DeliveryOutcome::Dead(error) => ("dead", None, Some(error), None),
        DeliveryOutcome::Skipped(why) => ("skipped", None, Some(why), None::<&String>),
    };
    Ok(connection
        .prepare_cached(
            "UPDATE outbox SET status = ?3, next_attempt_at = COALESCE(?4, next_attempt_at), \
             last_error = COALESCE(?5, last_error), result = ?6, held_reason = NULL, \
             delivered_at = CASE WHEN ?3 = 'sent' THEN ?7 ELSE delivered_at END, \
             claimed_by = NULL, lease_until = NULL \
             WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending'",
        )?
        .execute(rusqlite::params![
            id, owner, status, next, error, result, now
        ])?)
}

/// A claimed record whose payload is still to read.
struct Claimed {
    id: i64,
    attempts: i64,
    kind: String,
    idempotency_key: String,
    enrollment_id: i64,
    journey_id: String,
    step_id: String,
    account_id: String,
    contact_id: String,
}

impl Claimed {
    fn read(row: &rusqlite::Row<'_>) -> Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            idempotency_key: row.get(1)?,
            enrollment_id: row.get(2)?,
            journey_id: row.get(3)?,
            step_id: row.get(4)?,
            kind: row.get(5)?,
            account_id: row.get(6)?,
            contact_id: row.get(7)?,
            attempts: row.get(8)?,
        })
    }

    /// The record with its stored payload (`None`: none was found).
    fn with_payload(self, text: Option<String>) -> Result<OutboxItem> {
        let id = self.id;
        let text =
            text.ok_or_else(|| StoreError::Corrupt(format!("outbox record {id} has no payload")))?;
        let payload = Payload::from_stored(&self.kind, &text)
            .map_err(|e| StoreError::Corrupt(format!("{e}: {text}")))?;
        Ok(OutboxItem {
            id,
            attempts: self.attempts,
            record: OutboxRecord {
                idempotency_key: self.idempotency_key,
                enrollment_id: self.enrollment_id,
                journey_id: self.journey_id,
                step_id: self.step_id,
                account_id: self.account_id,
                contact_id: self.contact_id,
                payload,
                // Held-out records are never claimed.
                held_out: false,
            },
        })
    }
}
