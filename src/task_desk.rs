//! What a CSM does with a task: mark it done (with a note), snooze it, hand it to a
//! colleague. One set of rules for the inbox pages, the HTTP API and `touchline tasks`:
//! the new assignee must exist and have room and hears about the task; a task that is done
//! stays done; a change that is already so (a form sent twice) changes nothing; every
//! change is recorded with who made it.

use chrono::{DateTime, Utc};

use crate::clock::to_millis;
use crate::definitions::Definitions;
use crate::store::{NewTask, OutboxRecord, Store, StoreError, Task, TaskChange, TaskChangeOutcome};

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    /// No such task.
    #[error("no task {0}")]
    NoSuchTask(i64),
    /// Done tasks stay done.
    #[error("task {0} is done; it cannot be snoozed or reassigned")]
    Closed(i64),
    /// Not a CSM of the project.
    #[error("{0}")]
    UnknownCsm(String),
    /// The CSM has no room.
    #[error("{name} has no room: {open} open tasks of a capacity of {capacity}")]
    Full {
        /// The CSM's name.
        name: String,
        /// Open tasks.
        open: i64,
        /// Capacity.
        capacity: i64,
    },
    /// A snooze into the past.
    #[error("snooze until a time after now")]
    PastSnooze,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a change did, for the person who made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// Whether anything changed (false: it already was so).
    pub changed: bool,
    /// What happened, in a sentence.
    pub message: String,
}

/// Marks task `id` done.
pub async fn done<S: Store>(
    store: &S,
    id: i64,
    note: Option<String>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Done, DeskError> {
    let note = note.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let change = TaskChange::Done { note };
    let outcome = store
        .change_task(id, &change, actor, to_millis(now), &[])
        .await?;
    describe(id, outcome, "marked done", "was already done")
}

/// Snoozes task `id` until `until`.
pub async fn snooze<S: Store>(
    store: &S,
    id: i64,
    until: DateTime<Utc>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Done, DeskError> {
    if until <= now {
        return Err(DeskError::PastSnooze);
    }
    let change = TaskChange::Snooze {
        until: to_millis(until),
    };
    let when = until.format("%Y-%m-%d %H:%M UTC");
    let outcome = store
        .change_task(id, &change, actor, to_millis(now), &[])
        .await?;
    describe(
        id,
        outcome,
        &format!("snoozed until {when}"),
        &format!("was already snoozed until {when}"),
    )
}

/// Gives task `id` to CSM `to`, who gets the task's notices.
pub async fn reassign<S: Store>(
    store: &S,
    definitions: &Definitions,
    id: i64,
    to: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Done, DeskError> {
    let config = &definitions.config;
    let Some(csm) = config.csm(to) else {
        return Err(DeskError::UnknownCsm(
            crate::definitions::config::no_such_csm(to, &config.csm_ids()),
        ));
    };
    let task = store.task(id).await?.ok_or(DeskError::NoSuchTask(id))?;
    let capacity = csm.capacity.map(i64::from);
    let key = crate::delivery::unsubscribe::UnsubscribeKey::load(config, store).await?;
    let keys = crate::delivery::signin::PageKeys::new(&key);
    let notices = reassignment_notices(definitions, &task, to, &keys, now);
    let change = TaskChange::Reassign {
        to: to.to_string(),
        capacity,
    };
    let outcome = store
        .change_task(id, &change, actor, to_millis(now), &notices)
        .await?;
    if outcome == TaskChangeOutcome::AssigneeFull {
        let open = store
            .tasks(Some(to), Some(crate::store::TaskStatus::Open))
            .await?
            .len() as i64;
        return Err(DeskError::Full {
            name: csm.name.clone(),
            open,
            capacity: capacity.unwrap_or(open),
        });
    }
    describe(
        id,
        outcome,
        &format!("given to {}", csm.name),
        &format!("was already {}'s", csm.name),
    )
}

/// What an outcome means for the person: `changed` or `unchanged` said of the task.
fn describe(
    id: i64,
    outcome: TaskChangeOutcome,
    changed: &str,
    unchanged: &str,
) -> Result<Done, DeskError> {
    let done = |changed: bool, what: &str| Done {
        changed,
        message: format!("Task {id} {what}."),
    };
    match outcome {
        TaskChangeOutcome::Changed => Ok(done(true, changed)),
        TaskChangeOutcome::Unchanged => Ok(done(false, unchanged)),
        TaskChangeOutcome::NotFound => Err(DeskError::NoSuchTask(id)),
        TaskChangeOutcome::Closed | TaskChangeOutcome::AssigneeFull => Err(DeskError::Closed(id)),
    }
}

/// The new assignee's notices (mail, and Slack where the CSM has a `notify_webhook`), as
/// for a new task; keyed by the moment, so each reassignment is announced once.
fn reassignment_notices(
    definitions: &Definitions,
    task: &Task,
    to: &str,
    keys: &crate::delivery::signin::PageKeys,
    now: DateTime<Utc>,
) -> Vec<OutboxRecord> {
    let handed = NewTask {
        assignee: Some(to.to_string()),
        ..task.task.clone()
    };
    let key = format!("task-{}:reassigned:{to}:{}", task.id, to_millis(now));
    crate::delivery::notices::for_task(definitions, &key, 0, &handed, keys, to_millis(now))
}
