//! CSM tasks: who gets one, and when it is due.
//!
//! `owner` gives the task to the account's CSM; `round_robin` to each CSM of the pool in
//! turn; `least_loaded` to the pool's CSM with the fewest open tasks. A CSM at capacity is
//! passed over. Due dates count working days (Monday to Friday) in the assignee's time zone.

use chrono::{DateTime, Datelike, Duration, Utc, Weekday};

use crate::definitions::Definitions;
use crate::definitions::config::Csm;
use crate::store::{Assignment, NewTask, OutboxRecord, Store, StoreError, Strategy, TaskPayload};

/// Open tasks per CSM as a delivery worker counted them: read once per delivery round and
/// kept up to date with the tasks the worker writes, so assigning a task does not count
/// every open task again. Other engines' tasks are not in it; the store's own capacity
/// check, in the transaction that writes a task, stays the judge of a free slot (a task
/// refused for a full CSM makes the worker count again).
#[derive(Debug, Default)]
pub struct OpenTasks(Option<std::collections::BTreeMap<String, i64>>);

impl OpenTasks {
    /// Forgets the counts (a new round, or a slot that was not free after all).
    pub fn forget(&mut self) {
        self.0 = None;
    }

    /// Counts one more open task for `csm`.
    pub fn add(&mut self, csm: Option<&str>) {
        if let (Some(counts), Some(csm)) = (&mut self.0, csm) {
            *counts.entry(csm.to_string()).or_default() += 1;
        }
    }

    async fn load<S: Store>(
        &mut self,
        store: &S,
    ) -> Result<&std::collections::BTreeMap<String, i64>, StoreError> {
        if self.0.is_none() {
            let counts = store.open_task_counts().await?;
            self.0 = Some(counts.into_iter().map(|c| (c.label, c.count)).collect());
        }
        Ok(self.0.get_or_insert_default())
    }
}

/// Turns a task outbox record into the task to write: text, assignee, due date.
pub async fn plan<S: Store>(
    definitions: &Definitions,
    store: &S,
    open: &mut OpenTasks,
    record: &OutboxRecord,
    task: &TaskPayload,
    now: DateTime<Utc>,
) -> Result<NewTask, StoreError> {
    let (assignee, capacity) = assign(definitions, store, open, &task.assign).await?;
    let csm = assignee
        .as_deref()
        .and_then(|id| definitions.config.csm(id));
    let due_at = task
        .due_seconds
        .map(|seconds| working_due(now, seconds, zone(definitions, csm)));
    Ok(NewTask {
        dedupe_key: match &task.key {
            Some(key) => format!("{}/{key}", record.account_id),
            None => format!(
                "{}/{}/{}",
                record.account_id, record.journey_id, record.step_id
            ),
        },
        account_id: record.account_id.clone(),
        journey_id: record.journey_id.clone(),
        step_id: record.step_id.clone(),
        title: task.title.clone(),
        description: task.description.clone().unwrap_or_default(),
        assignee,
        priority: task.priority.to_string(),
        due_at: due_at.map(|t| t.timestamp_millis()),
        reason: task.reason.clone(),
        capacity,
    })
}

fn zone(definitions: &Definitions, csm: Option<&Csm>) -> chrono_tz::Tz {
    csm.and_then(|c| c.timezone.as_ref())
        .map_or(definitions.config.timezone.value.0, |tz| tz.value.0)
}

async fn assign<S: Store>(
    definitions: &Definitions,
    store: &S,
    open: &mut OpenTasks,
    assign: &Assignment,
) -> Result<(Option<String>, Option<i64>), StoreError> {
    let config = &definitions.config;
    let roster = |id: &str| config.csm(id);
    let pool: Vec<&Csm> = assign
        .pool
        .as_deref()
        .and_then(|pool| config.pools.get(pool))
        .map(|members| members.iter().filter_map(|m| roster(&m.value)).collect())
        .unwrap_or_default();
    // The owner: capacity does not enter into it, so nothing needs counting.
    if matches!(assign.strategy, Strategy::Owner) {
        let owner = assign.owner.as_deref().and_then(roster);
        return Ok((owner.map(|c| c.id.value.clone()), None));
    }
    if pool.is_empty() {
        return Ok((None, None));
    }
    let open = open.load(store).await?;
    let load = |csm: &Csm| open.get(&csm.id.value).copied().unwrap_or(0);
    let has_room = |csm: &Csm| csm.capacity.is_none_or(|cap| load(csm) < i64::from(cap));
    // The chosen CSM, and their capacity if the choice counted on one of their free slots.
    let chosen = |csm: Option<&&Csm>| {
        let csm = csm.copied();
        let capacity = csm
            .filter(|c| has_room(c))
            .and_then(|c| c.capacity)
            .map(i64::from);
        (csm.map(|c| c.id.value.clone()), capacity)
    };
    match assign.strategy {
        Strategy::RoundRobin => {
            let pool_name = assign.pool.as_deref().unwrap_or_default();
            // The turn is taken before the task is written: a crash in between passes one
            // CSM over once (the rotation stays fair within one task); the task itself is
            // still written exactly once, when the record is delivered again.
            let turn = store
                .next_counter(&format!("round_robin:{pool_name}"))
                .await?;
            let start = (turn - 1).rem_euclid(pool.len() as i64) as usize;
            let order = pool.iter().cycle().skip(start).take(pool.len());
            let pick = order
                .clone()
                .find(|c| has_room(c))
                .or_else(|| pool.get(start));
            Ok(chosen(pick))
        }
        Strategy::LeastLoaded => {
            let with_room: Vec<&&Csm> = pool.iter().filter(|c| has_room(c)).collect();
            let candidates = if with_room.is_empty() {
                pool.iter().collect()
            } else {
                with_room
            };
            Ok(chosen(candidates.into_iter().min_by_key(|c| load(c))))
        }
        _ => Ok((None, None)),
    }
}

/// `now` plus a due period: whole days count as working days in `zone`, shorter periods
/// as hours.
pub fn working_due(now: DateTime<Utc>, seconds: u64, zone: chrono_tz::Tz) -> DateTime<Utc> {
    let days = seconds / 86_400;
    if days == 0 {
        return now + Duration::seconds(seconds as i64);
    }
    let mut local = now.with_timezone(&zone);
    let mut left = days;
    while left > 0 {
        local += Duration::days(1);
        if !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) {
            left -= 1;
        }
    }
    local.with_timezone(&Utc) + Duration::seconds((seconds % 86_400) as i64)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn due_dates_skip_weekends() {
        let friday = Utc
            .with_ymd_and_hms(2026, 11, 20, 15, 0, 0)
            .single()
            .expect("time");
        let due = working_due(friday, 2 * 86_400, chrono_tz::America::Chicago);
        assert_eq!(
            due,
            Utc.with_ymd_and_hms(2026, 11, 24, 15, 0, 0)
                .single()
                .expect("time"),
            "Friday + 2 working days = Tuesday"
        );
        assert_eq!(
            working_due(friday, 3600, chrono_tz::UTC),
            friday + Duration::hours(1)
        );
    }
}
