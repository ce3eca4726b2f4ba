//! A CSM's inbox: their open tasks (or their pools'), most urgent first — due date, then
//! priority — with overdue marked, snoozed ones set aside, filters and counts, and the
//! colleagues a task can be handed to.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{from_millis, to_millis};
use crate::definitions::Definitions;
use crate::store::{Store, StoreError, Task, TaskStatus};

/// Who is looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// A CSM, signed in through a link.
    Csm(String),
    /// The API token: sees everyone's tasks.
    Admin,
}

impl Viewer {
    /// The CSMs whose tasks this viewer may see and act on: their own and their pools'
    /// (`None`: everyone's).
    pub fn reach(&self, definitions: &Definitions) -> Option<BTreeSet<String>> {
        let Viewer::Csm(me) = self else { return None };
        let mut reach = BTreeSet::from([me.clone()]);
        for members in definitions.config.pools.values() {
            if members.iter().any(|m| &m.value == me) {
                reach.extend(members.iter().map(|m| m.value.clone()));
            }
        }
        Some(reach)
    }

    /// Whether this viewer may act on `task`.
    pub fn may_act_on(&self, definitions: &Definitions, task: &Task) -> bool {
        self.reach(definitions).is_none_or(|reach| {
            task.task
                .assignee
                .as_ref()
                .is_some_and(|a| reach.contains(a))
        })
    }
}

/// What the inbox shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default)]
pub struct InboxFilter {
    /// Only this journey's tasks.
    pub journey: Option<String>,
    /// Only this priority.
    pub priority: Option<String>,
    /// Only overdue tasks.
    pub overdue: bool,
    /// The pool view: the tasks of everyone in the viewer's pools.
    pub pool: bool,
    /// Snoozed tasks instead of the others.
    pub snoozed: bool,
}

/// The inbox.
#[derive(Debug, Clone, Serialize)]
pub struct InboxView {
    /// Whose inbox (a CSM's name, or "All CSMs").
    pub title: String,
    /// The signed-in CSM (`null`: admin).
    pub csm: Option<String>,
    /// The filters in force.
    pub filter: InboxFilter,
    /// The tasks, most urgent first.
    pub tasks: Vec<InboxTask>,
    /// Open tasks in view before the journey, priority and overdue filters.
    pub open: usize,
    /// Of those, overdue.
    pub overdue: usize,
    /// Snoozed, set aside.
    pub snoozed: usize,
    /// The journeys of the tasks in view, for the filter.
    pub journeys: Vec<String>,
    /// Whom a task can be handed to.
    pub colleagues: Vec<Colleague>,
    /// When the page was made.
    pub now: DateTime<Utc>,
}

/// One task in the inbox.
#[derive(Debug, Clone, Serialize)]
pub struct InboxTask {
    /// Its number.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// The account.
    pub account_id: String,
    /// The account's name.
    pub account_name: String,
    /// The journey and step that made it.
    pub journey_id: String,
    /// The step.
    pub step_id: String,
    /// `low`, `normal`, `high`, `urgent`.
    pub priority: String,
    /// Due.
    pub due_at: Option<DateTime<Utc>>,
    /// Past due.
    pub overdue: bool,
    /// The CSM it is assigned to.
    pub assignee: Option<String>,
    /// Their name.
    pub assignee_name: String,
    /// Snoozed until.
    pub snoozed_until: Option<DateTime<Utc>>,
}

/// A CSM a task can go to.
#[derive(Debug, Clone, Serialize)]
pub struct Colleague {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Open tasks.
    pub open: usize,
    /// Capacity, if set.
    pub capacity: Option<u32>,
    /// No room left.
    pub full: bool,
}

/// Priorities, most urgent first.
const PRIORITIES: [&str; 4] = ["urgent", "high", "normal", "low"];

/// Builds the inbox of `viewer` at `now`.
pub async fn build<S: Store>(
    store: &S,
    definitions: &Definitions,
    viewer: &Viewer,
    filter: InboxFilter,
    now: DateTime<Utc>,
) -> Result<InboxView, StoreError> {
    let config = &definitions.config;
    let all_open = store.tasks(None, Some(TaskStatus::Open)).await?;
    let reach = match (viewer, filter.pool) {
        (Viewer::Csm(me), false) => Some(BTreeSet::from([me.clone()])),
        _ => viewer.reach(definitions),
    };
    let now_ms = to_millis(now);
    let in_view: Vec<&Task> = all_open
        .iter()
        .filter(|t| {
            reach
                .as_ref()
                .is_none_or(|reach| t.task.assignee.as_ref().is_some_and(|a| reach.contains(a)))
        })
        .collect();
    let snoozed = |t: &&Task| t.snoozed_until.is_some_and(|until| until > now_ms);
    let overdue = |t: &Task| t.task.due_at.is_some_and(|due| due < now_ms);
    let journeys: BTreeSet<String> = in_view.iter().map(|t| t.task.journey_id.clone()).collect();
    let mut shown: Vec<&Task> = in_view
        .iter()
        .copied()
        .filter(|t| snoozed(t) == filter.snoozed)
        .filter(|t| {
            filter
                .journey
                .as_ref()
                .is_none_or(|j| &t.task.journey_id == j)
        })
        .filter(|t| {
            filter
                .priority
                .as_ref()
                .is_none_or(|p| &t.task.priority == p)
        })
        .filter(|t| !filter.overdue || overdue(t))
        .collect();
    let rank = |p: &str| {
        PRIORITIES
            .iter()
            .position(|x| *x == p)
            .unwrap_or(PRIORITIES.len())
    };
    shown.sort_by_key(|t| {
        (
            t.task.due_at.unwrap_or(i64::MAX),
            rank(&t.task.priority),
            t.id,
        )
    });
    let ids: Vec<String> = shown.iter().map(|t| t.task.account_id.clone()).collect();
    let names: BTreeMap<String, String> = store
        .load_accounts(&ids, false)
        .await?
        .into_iter()
        .map(|s| (s.account.id, s.account.name))
        .collect();
    let name_of = |csm: &Option<String>| {
        csm.as_deref()
            .and_then(|id| config.csm(id))
            .map_or_else(|| "nobody".to_string(), |c| c.name.clone())
    };
    let tasks = shown
        .iter()
        .map(|t| InboxTask {
            id: t.id,
            title: t.task.title.clone(),
            description: t.task.description.clone(),
            account_name: names
                .get(&t.task.account_id)
                .cloned()
                .unwrap_or_else(|| t.task.account_id.clone()),
            account_id: t.task.account_id.clone(),
            journey_id: t.task.journey_id.clone(),
            step_id: t.task.step_id.clone(),
            priority: t.task.priority.clone(),
            due_at: t.task.due_at.map(from_millis),
            overdue: overdue(t),
            assignee_name: name_of(&t.task.assignee),
            assignee: t.task.assignee.clone(),
            snoozed_until: t.snoozed_until.filter(|u| *u > now_ms).map(from_millis),
        })
        .collect();
    let colleagues = config
        .csms
        .iter()
        .map(|csm| {
            let open = all_open
                .iter()
                .filter(|t| t.task.assignee.as_deref() == Some(csm.id.value.as_str()))
                .count();
            Colleague {
                id: csm.id.value.clone(),
                name: csm.name.clone(),
                open,
                capacity: csm.capacity,
                full: csm.capacity.is_some_and(|c| open >= c as usize),
            }
        })
        .collect();
    let (title, csm) = match viewer {
        Viewer::Csm(me) => (name_of(&Some(me.clone())), Some(me.clone())),
        Viewer::Admin => ("All CSMs".to_string(), None),
    };
    Ok(InboxView {
        title,
        csm,
        open: in_view.iter().filter(|t| !snoozed(t)).count(),
        overdue: in_view.iter().filter(|t| !snoozed(t) && overdue(t)).count(),
        snoozed: in_view.iter().filter(|t| snoozed(t)).count(),
        filter,
        tasks,
        journeys: journeys.into_iter().collect(),
        colleagues,
        now,
    })
}
