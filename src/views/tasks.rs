//! CSM tasks, grouped by CSM: what `touchline tasks` and `GET /v1/tasks` show.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::definitions::Config;
use crate::store::{Store, StoreError, Task, TaskStatus};

/// One task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    /// The task's number.
    pub id: i64,
    /// `open` or `done`.
    pub status: String,
    /// The CSM's id (`null`: nobody could take it).
    pub assignee: Option<String>,
    /// The CSM's name.
    pub assignee_name: Option<String>,
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
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Why touchline closed it (e.g. `goal reached`).
    pub closed_reason: Option<String>,
    /// Why it was made: journey, step, tier, scores.
    pub reason: serde_json::Value,
}

impl TaskView {
    /// The view of a stored task whose assignee is called `assignee_name`.
    pub fn new(task: Task, assignee_name: Option<String>) -> Self {
        Self {
            id: task.id,
            status: task.status.as_str().to_string(),
            assignee: task.task.assignee,
            assignee_name,
            account_id: task.task.account_id,
            journey_id: task.task.journey_id,
            step_id: task.task.step_id,
            title: task.task.title,
            description: task.task.description,
            priority: task.task.priority,
            due_at: task.task.due_at.map(super::time),
            created_at: super::time(task.created_at),
            closed_reason: task.closed_reason,
            reason: task.task.reason,
        }
    }
}

/// Tasks of one CSM (`csm: None`: everyone's) with `status` (`None`: any), grouped by CSM
/// (unassigned last), oldest first within each.
pub async fn build<S: Store>(
    store: &S,
    config: &Config,
    csm: Option<&str>,
    status: Option<TaskStatus>,
) -> Result<Vec<TaskView>, StoreError> {
    let mut tasks = store.tasks(csm, status).await?;
    tasks.sort_by(|a, b| {
        (a.task.assignee.is_none(), &a.task.assignee, a.id).cmp(&(
            b.task.assignee.is_none(),
            &b.task.assignee,
            b.id,
        ))
    });
    Ok(tasks
        .into_iter()
        .map(|t| {
            let name = t.task.assignee.as_deref().and_then(|id| config.csm(id));
            let name = name.map(|c| c.name.clone());
            TaskView::new(t, name)
        })
        .collect())
}

/// The tasks as text, under a heading per CSM.
pub fn text(tasks: &[TaskView]) -> String {
    let mut out = String::new();
    let mut current: Option<&Option<String>> = None;
    for task in tasks {
        if current != Some(&task.assignee) {
            let heading = match (&task.assignee, &task.assignee_name) {
                (Some(id), Some(name)) => format!("{name} ({id})"),
                (Some(id), None) => id.clone(),
                (None, _) => "Unassigned".to_string(),
            };
            let _ = writeln!(out, "{heading}");
            current = Some(&task.assignee);
        }
        let due = task
            .due_at
            .map_or(String::new(), |d| format!(", due {}", d.format("%Y-%m-%d")));
        let _ = writeln!(
            out,
            "  #{:<5} [{}{}] {} — {} ({}{due})",
            task.id,
            task.priority,
            if task.status == "done" { ", done" } else { "" },
            task.title,
            task.account_id,
            task.journey_id
        );
    }
    if tasks.is_empty() {
        out.push_str("no tasks\n");
    }
    out
}
