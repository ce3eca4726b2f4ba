//! How the sample customers behave while `touchline demo` runs, so that the report it writes
//! tells a story rather than a flat line: onboarding mails get accounts set up, the
//! win-back mail and the rescue journey's CSM call bring users back, the utilization nudge
//! changes nothing (its advice does not help — the ineffective step the report should
//! find), usage keeps declining where it
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

/// What a step does for the account that gets it, in the demo's world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Another admin signs up (welcome mails).
    Admins,
    /// Vehicles, drivers or logs get connected (setup mails).
    Setup,
    /// Someone attends training and uses the goal's feature (feature mails).
    Training,
    /// Users come back.
    Reengage,
}

/// The steps that have an effect, by mail template or `journey/step` for tasks. Every
/// other step — the utilization nudge among them — changes nothing.
const EFFECTS: &[(&str, Effect)] = &[
    ("welcome_cost_reduction", Effect::Admins),
    ("welcome_safe_driving", Effect::Admins),
    ("welcome_compliance", Effect::Admins),
    ("connect_vehicles", Effect::Setup),
    ("driver_scoring_setup", Effect::Setup),
    ("eld_setup", Effect::Setup),
    ("idling_alerts", Effect::Training),
    ("coaching_workflows", Effect::Training),
    ("fuel_report_tips", Effect::Training),
    ("hos_audit_ready", Effect::Training),
    ("first_safety_report", Effect::Training),
    ("churn_save", Effect::Reengage),
    ("utilization-rescue/csm-call", Effect::Reengage),
];

/// The sample customers, day by day.
#[derive(Debug)]
pub struct CustomerModel {
    rng: StdRng,
    /// Each account's share of active users when the model first saw it: how far gone it
    /// was when the programme started decides how likely it is to leave.
    first_active_share: HashMap<String, f64>,
}

impl CustomerModel {
    /// A model with this seed.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            first_active_share: HashMap::new(),
        }
    }

    /// What the customers do in the day before `now`: the metrics that changed, logins,
    /// and who left.
    pub async fn day<S: Store>(
        &mut self,
        store: &S,
        now: DateTime<Utc>,
    ) -> Result<Import, StoreError> {
        let effects = effects_since(store, now - Duration::days(1)).await?;
        let mut import = Import::default();
        let mut after = String::new();
        loop {
            let ids = store.account_ids(&after, 1000).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            for state in store.load_accounts(&ids, false).await? {
                let got = effects
                    .get(&state.account.id)
                    .map_or(&[][..], Vec::as_slice);
                self.account_day(&state, got, now, &mut import);
            }
            after = last;
        }
        Ok(import)
    }

    fn account_day(
        &mut self,
        state: &AccountState,
        effects: &[Effect],
        now: DateTime<Utc>,
        import: &mut Import,
    ) {
        let account = &state.account;
        if account.status == "churned" {
            return;
        }
        let m = |name: &str| state.metrics.get(name).copied().unwrap_or(0.0);
        let licensed = m("licensed_users").max(1.0);
        let active_share = m("active_users_30d") / licensed;
        let first_share = *self
            .first_active_share
            .entry(account.id.clone())
            .or_insert(active_share);
        // The day's new values, by metric (a metric moved twice keeps the last value).
        let mut next: std::collections::BTreeMap<&str, f64> = std::collections::BTreeMap::new();
        // Onboarding: each helpful mail moves most accounts on in its own area; without
        // mail, few move on their own.
        let fleet = account
            .attributes
            .get("fleet_size")
            .and_then(|v| v.as_f64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(10.0);
        let mut areas: Vec<Effect> = effects
            .iter()
            .copied()
            .filter(|e| *e != Effect::Reengage && self.rng.random_bool(0.8))
            .collect();
        if effects.is_empty() && self.rng.random_bool(0.05) {
            areas.push(
                [Effect::Admins, Effect::Setup, Effect::Training][self.rng.random_range(0..3)],
            );
        }
        for area in areas {
            match area {
                Effect::Admins => {
                    next.insert("admins_registered", (m("admins_registered") + 1.0).min(3.0));
                }
                Effect::Setup => {
                    let total = m("setup_steps_total");
                    next.insert("setup_steps_done", (m("setup_steps_done") + 2.0).min(total));
                    next.insert("log_coverage", (m("log_coverage") + 0.4).min(1.0));
                    next.insert(
                        "drivers_scored",
                        (m("drivers_scored") + (fleet * 0.5).ceil()).min(fleet),
                    );
                }
                Effect::Training => {
                    next.insert(
                        "training_sessions_attended",
                        (m("training_sessions_attended") + 1.0).min(2.0),
                    );
                    next.insert("fuel_reports_viewed", m("fuel_reports_viewed") + 1.0);
                    next.insert("coaching_sessions_30d", m("coaching_sessions_30d") + 2.0);
                }
                Effect::Reengage => {}
            }
        }
        // Usage: re-engagement brings users back; declining accounts keep losing them.
        let mut logged_in = false;
        if effects.contains(&Effect::Reengage) && self.rng.random_bool(0.7) {
            next.insert(
                "active_users_30d",
                (m("active_users_30d") + licensed * 0.3)
                    .min(licensed)
                    .round(),
            );
            next.insert("logins_30d", (m("logins_30d") + licensed * 1.5).round());
            next.insert("key_feature_rate", (m("key_feature_rate") + 0.15).min(1.0));
            logged_in = true;
        } else if active_share < 0.45 && self.rng.random_bool(0.5) {
            next.insert("active_users_30d", (m("active_users_30d") * 0.9).floor());
            next.insert("logins_30d", (m("logins_30d") * 0.85).floor());
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
        // Churn: accounts whose usage had collapsed when the programme started leave ten
        // times as often as the rest.
        let hazard = if first_share < 0.3 { 0.02 } else { 0.0005 };
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

/// The effects of what reached each account since `since`: step mails by template, CSM
/// tasks by journey and step.
async fn effects_since<S: Store>(
    store: &S,
    since: DateTime<Utc>,
) -> Result<HashMap<String, Vec<Effect>>, StoreError> {
    let since = to_millis(since);
    let mut effects: HashMap<String, Vec<Effect>> = HashMap::new();
    for row in store.deliveries(&[DeliveryStatus::Sent], i64::MAX).await? {
        if row.delivered_at.is_none_or(|at| at < since) {
            continue;
        }
        let record = &row.record;
        let touch = match &record.payload {
            Payload::Email(mail) => mail.template.clone(),
            Payload::Task(_) => Some(format!("{}/{}", record.journey_id, record.step_id)),
            Payload::Webhook(_) => None,
        };
        if let Some((_, effect)) = touch.and_then(|t| EFFECTS.iter().find(|(name, _)| *name == t)) {
            effects
                .entry(record.account_id.clone())
                .or_default()
                .push(*effect);
        }
    }
    Ok(effects)
}
