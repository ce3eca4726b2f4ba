//! What a pass at time T may see: metric values and logins dated at or before T. Values
//! dated later (a backfill, a replay with `--now`, a clock ahead of ours) wait for their time,
//! and the account is evaluated again when it comes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::clock::{from_millis, to_millis};
use crate::model::AccountState;
use crate::store::{Store, StoreError};

/// Loads accounts as they were at `now` (see [`see_as_of`]).
pub async fn load_accounts<S: Store>(
    store: &S,
    ids: &[String],
    with_contacts: bool,
    now: DateTime<Utc>,
) -> Result<Vec<AccountState>, StoreError> {
    let mut states = store.load_accounts(ids, with_contacts).await?;
    see_as_of(store, &mut states, now).await?;
    Ok(states)
}

/// Replaces, in the few states that hold data dated after `now`, the metrics and the last
/// login with the values they had at `now`, and notes when the next later value comes due
/// (`next_change_at`). Accounts whose data is all in the past cost nothing.
pub async fn see_as_of<S: Store>(
    store: &S,
    states: &mut [AccountState],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let at = to_millis(now);
    let ahead = |pick: &dyn Fn(&AccountState) -> bool| -> Vec<String> {
        states
            .iter()
            .filter(|s| pick(s))
            .map(|s| s.account.id.clone())
            .collect()
    };
    let metrics_ahead = ahead(&|s| s.metrics_latest_at > at);
    let logins_ahead = ahead(&|s| s.account.last_login_at.is_some_and(|t| t > now));
    if metrics_ahead.is_empty() && logins_ahead.is_empty() {
        return Ok(());
    }
    let index: HashMap<String, usize> = states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.account.id.clone(), i))
        .collect();
    let mut next: HashMap<usize, i64> = HashMap::new();
    if !metrics_ahead.is_empty() {
        let seen = store.metrics_as_of(&metrics_ahead, at).await?;
        for id in &metrics_ahead {
            states[index[id]].metrics.clear();
        }
        for value in seen.values {
            if let Some(&i) = index.get(&value.account_id) {
                states[i].metrics.insert(value.name, value.value);
            }
        }
        for (id, next_at) in seen.next_at {
            if let Some(&i) = index.get(&id) {
                next.entry(i)
                    .and_modify(|t| *t = (*t).min(next_at))
                    .or_insert(next_at);
            }
        }
    }
    if !logins_ahead.is_empty() {
        for id in &logins_ahead {
            // A last login dated later than the pass, with no login event before it, is unknown.
            states[index[id]].account.last_login_at = None;
        }
        for logins in store.logins_as_of(&logins_ahead, at).await? {
            let Some(&i) = index.get(&logins.account_id) else {
                continue;
            };
            states[i].account.last_login_at = logins.latest.map(from_millis);
            if let Some(next_at) = logins.next {
                next.entry(i)
                    .and_modify(|t| *t = (*t).min(next_at))
                    .or_insert(next_at);
            }
        }
    }
    for (i, next_at) in next {
        states[i].next_change_at = Some(next_at);
    }
    Ok(())
}
