//! How the sample customers behave while `touchline demo` runs, so that the report it writes
//! tells a story rather than a flat line: onboarding mails get accounts set up, the
//! win-back mail brings users back, the utilization nudge changes nothing (its advice does
//! not help — the ineffective step the report should find), usage keeps declining where it
//! was declining, and accounts whose usage has collapsed churn far more often than the
//! rest (so utilization predicts churn). Deterministic for a seed; a held-out subject
//! receives no mail and so gets none of the mail's effect.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::to_millis;
use crate::model::{AccountState, Event, MetricValue};
use crate::store::{DeliveryStatus, Import, Payload, Store, StoreError};

/// The event a churning sample account sends (the bundled `report.churn_event`).
pub const CHURN_EVENT: &str = "account_churned";

/// Mails that help an account finish its setup.
const ONBOARDING: &[&str] = &[
    "welcome_cost_reduction",
    "welcome_safe_driving",
    "welcome_compliance",
    "connect_vehicles",
    "driver_scoring_setup",
    "eld_setup",
    "idling_alerts",
    "coaching_workflows",
    "fuel_report_tips",
];

/// The sample customers, day by day.
#[derive(Debug)]
pub struct CustomerModel {
    rng: StdRng,
}

impl CustomerModel {
    /// A model with this seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// What the customers do in the day before `now`: the metrics that changed, logins,
    /// and who left.
    pub async fn day<S: Store>(
        &mut self,
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<Import, StoreError> {
        let mails = recent_mails(store, now - Duration::days(3)).await?;
        let mut import = Import::default();
        let mut after = String::new();
        loop {
            let ids = store.account_ids(&after, 1000).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for state in store.load_accounts(&ids, false).await? {
                let got = mails.get(&state.account.id).map_or(&[][..], Vec::as_slice);
                self.account_day(&state, got, now, &mut import);
            }
            after = last;
        }
        Ok(import)
    }

    fn account_day(
        &mut self,
        state: &AccountState,
        mails: &[String],
        now: DateTime<Utc>,
        import: &mut Import,
    ) {
        let account = &state.account;
        if account.status == "churned" {
            return;
        }
        let m = |name: &str| state.metrics.get(name).copied().unwrap_or(0.0);
        let mut next: Vec<(&str, f64)> = Vec::new();
        let got = |template: &str| mails.iter().any(|t| t == template);
        // Setup: a recent onboarding mail gets most accounts a step further; without one,
        // few move on their own.
        let helped = mails.iter().any(|t| ONBOARDING.contains(&t.as_str()));
        if self.rng.random_bool(if helped { 0.7 } else { 0.05 })
            && m("setup_steps_done") < m("setup_steps_total")
        {
            next.push(("setup_steps_done", m("setup_steps_done") + 1.0));
            next.push(("admins_registered", (m("admins_registered") + 1.0).min(3.0)));
            next.push((
                "training_sessions_attended",
                (m("training_sessions_attended") + 1.0).min(2.0),
            ));
            next.push(("fuel_reports_viewed", m("fuel_reports_viewed") + 1.0));
            next.push(("coaching_sessions_30d", m("coaching_sessions_30d") + 1.0));
            next.push(("log_coverage", (m("log_coverage") + 0.2).min(1.0)));
            let fleet = account
                .attributes
                .get("fleet_size")
                .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
                .unwrap_or(10.0);
            next.push((
                "drivers_scored",
                (m("drivers_scored") + (fleet * 0.3).ceil()).min(fleet),
            ));
        }
        // Usage: the win-back mail brings users back; declining accounts keep losing them;
        // the utilization nudge does nothing at all.
        let licensed = m("licensed_users").max(1.0);
        let active_share = m("active_users_30d") / licensed;
        let mut logged_in = false;
        if got("churn_save") && self.rng.random_bool(0.6) {
            next.push((
                "active_users_30d",
                (m("active_users_30d") + licensed * 0.3)
                    .min(licensed)
                    .round(),
            ));
            next.push(("logins_30d", (m("logins_30d") + licensed * 1.5).round()));
            next.push(("key_feature_rate", (m("key_feature_rate") + 0.15).min(1.0)));
            logged_in = true;
        } else if active_share < 0.45 && self.rng.random_bool(0.5) {
            next.push(("active_users_30d", (m("active_users_30d") * 0.9).floor()));
            next.push(("logins_30d", (m("logins_30d") * 0.85).floor()));
        } else if active_share >= 0.45 {
            logged_in = self.rng.random_bool(0.5);
        }
        let at = now - Duration::hours(1);
        for (name, value) in next {
            if (value - m(name)).abs() > f64::EPSILON {
                import.metrics.push(MetricValue {
                    account_id: account.id.clone(),
                    name: name.into(),
                    value,
                    at,
                });
            }
        }
        if logged_in {
            import.events.push(event(&account.id, "login", at));
        }
        // Churn: accounts whose usage collapsed leave ten times as often.
        let hazard = if active_share < 0.3 { 0.012 } else { 0.0012 };
        if self.rng.random_bool(hazard) {
            import.events.push(event(&account.id, CHURN_EVENT, at));
            let mut gone = account.clone();
            gone.status = "churned".into();
            import.accounts.push(gone);
        }
    }
}

fn event(account_id: &str, name: &str, at: DateTime<Utc>) -> Event {
    Event {
        key: format!("demo-{account_id}-{name}-{}", to_millis(at)),
        account_id: account_id.into(),
        contact_id: None,
        name: name.into(),
        at,
        properties: Default::default(),
    }
}

/// The templates of the step mails each account received since `since`.
async fn recent_mails<S: Store>(
    store: &S,
    since: DateTime<Utc>,
) -> Result<HashMap<String, Vec<String>>, StoreError> {
    let since = to_millis(since);
    let mut mails: HashMap<String, Vec<String>> = HashMap::new();
    for row in store.deliveries(&[DeliveryStatus::Sent], i64::MAX).await? {
        if let (Payload::Email(mail), Some(at)) = (&row.record.payload, row.delivered_at)
            && at >= since
            && let Some(template) = &mail.template
        {
            mails
                .entry(row.record.account_id.clone())
                .or_default()
                .push(template.clone());
        }
    }
    Ok(mails)
}
