//! `journeys/<id>.yaml`: who a journey is for, what starts it, its goal and its steps.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};

use super::values::{CronSpec, DurationSpec, HoldoutShare, SendWindow, Tier};
use crate::yaml::Spanned;

/// A rule's text with its position in the file.
pub type RuleText = Spanned<String>;

/// A journey file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "touchline journey")]
pub struct JourneyFile {
    /// The journey's id; must equal the file name without `.yaml` (optional).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Human name, shown in reports.
    pub name: String,
    /// What the journey is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether each matching account or each matching contact is enrolled.
    pub audience: Audience,
    /// Which accounts (or contacts) the journey is for.
    #[serde(default)]
    pub segment: Segment,
    /// What starts an enrollment.
    pub entry: Entry,
    /// Reaching this ends the enrollment as a success.
    #[serde(default)]
    pub goal: Option<Condition>,
    /// Reaching this ends the enrollment early.
    #[serde(default)]
    pub exit: Option<Condition>,
    /// Whether an account or contact may enter again after leaving.
    #[serde(default)]
    pub reentry: Reentry,
    /// When this journey's mail may go out (narrows the global window).
    #[serde(default)]
    pub send_window: Option<SendWindow>,
    /// This journey's own blast-radius guard settings.
    #[serde(default)]
    pub guard: Option<crate::definitions::config::GuardSettings>,
    /// A stable share of entrants that walks the journey but gets none of its mail or
    /// tasks, so the report can tell whether a step moves the scores: `10%`, or
    /// `{ share: 10%, scores: [utilization], window: 14d }`.
    #[serde(default)]
    pub holdout: Option<Holdout>,
    /// The steps, run in order unless a branch jumps.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// A journey's holdout group.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Holdout {
    /// Just the share: `holdout: 10%`.
    Share(HoldoutShare),
    /// The share and what to compare.
    Detailed(HoldoutSettings),
}

/// A holdout with what the report compares.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldoutSettings {
    /// The share of entrants held out, e.g. `10%` (0% to 50%).
    pub share: HoldoutShare,
    /// The scores whose movement shows a step works (default: those the goal reads).
    #[serde(default)]
    pub scores: Option<Vec<Spanned<String>>>,
    /// How long after a step its effect is measured (default 14d).
    #[serde(default)]
    pub window: Option<DurationSpec>,
}

impl Holdout {
    /// How long after a step its effect is measured, unless the journey says otherwise.
    pub const WINDOW: std::time::Duration = std::time::Duration::from_secs(14 * 86_400);

    /// The share held out.
    pub fn share(&self) -> HoldoutShare {
        match self {
            Self::Share(share) => *share,
            Self::Detailed(settings) => settings.share,
        }
    }

    /// The scores named to compare, if any.
    pub fn scores(&self) -> Option<&[Spanned<String>]> {
        match self {
            Self::Share(_) => None,
            Self::Detailed(settings) => settings.scores.as_deref(),
        }
    }

    /// How long after a step its effect is measured.
    pub fn window(&self) -> std::time::Duration {
        match self {
            Self::Detailed(HoldoutSettings {
                window: Some(window),
                ..
            }) => window.0,
            _ => Self::WINDOW,
        }
    }
}

impl<'de> Deserialize<'de> for Holdout {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HoldoutVisitor;

        impl<'de> Visitor<'de> for HoldoutVisitor {
            type Value = Holdout;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a share like `10%`, or `{ share: 10%, scores: [...], window: 14d }`")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Holdout, E> {
                text.parse().map(Holdout::Share).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Holdout, E> {
                Err(E::custom(format!("a holdout is a share: write `{n}%`")))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Holdout, E> {
                Err(E::custom(format!("a holdout is a share: write `{n}%`")))
            }

            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Holdout, E> {
                Err(E::custom(format!(
                    "a holdout is a share in percent: write `{}%`",
                    n * 100.0
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Holdout, A::Error> {
                HoldoutSettings::deserialize(MapAccessDeserializer::new(map)).map(Holdout::Detailed)
            }
        }

        deserializer.deserialize_any(HoldoutVisitor)
    }
}

/// Who is enrolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Each matching account.
    Accounts,
    /// Each matching contact at a matching account.
    Contacts,
}

/// Which accounts or contacts a journey is for.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// Only accounts holding this adoption goal.
    #[serde(default)]
    pub adoption_goal: Option<Spanned<String>>,
    /// Only accounts in these tiers.
    #[serde(default)]
    pub tiers: Option<Vec<Spanned<Tier>>>,
    /// Only where this Rhai condition holds.
    #[serde(default)]
    pub when: Option<RuleText>,
}

/// What starts an enrollment: exactly one of these.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    /// A usage or lifecycle event with this name arrives.
    Event(Spanned<String>),
    /// This Rhai condition becomes true (checked on data changes; fires on the edge).
    Condition(RuleText),
    /// On this cron schedule, in the configured time zone.
    Schedule(Box<Spanned<CronSpec>>),
}

/// A Rhai condition.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Rhai expression.
    pub when: RuleText,
}

/// Whether an account or contact may enter again.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reentry {
    /// Once only.
    #[default]
    Never,
    /// Again, once this long has passed since the last enrollment ended.
    After(DurationSpec),
}

/// One step. Besides `id` and `tiers`, a step has exactly one kind: `email`, `webhook`,
/// `task`, `wait`, `branch` or `exit`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Step id, used by `goto` and in reports (default: `step-N`).
    #[serde(default)]
    pub id: Option<Spanned<String>>,
    /// Only run for accounts in these tiers (others skip the step, and the skip is recorded).
    #[serde(default)]
    pub tiers: Option<Vec<Spanned<Tier>>>,
    /// Send a step email.
    #[serde(default)]
    pub email: Option<EmailStep>,
    /// Call a webhook.
    #[serde(default)]
    pub webhook: Option<WebhookStep>,
    /// Create a CSM task.
    #[serde(default)]
    pub task: Option<TaskStep>,
    /// Wait for a duration (`3d`) or until a condition, with a timeout.
    #[serde(default)]
    pub wait: Option<Wait>,
    /// Jump to the first arm whose condition holds.
    #[serde(default)]
    pub branch: Option<Vec<BranchArm>>,
    /// End the enrollment here, with this reason.
    #[serde(default)]
    pub exit: Option<String>,
}

/// The step kinds, as written.
pub const STEP_KINDS: &[&str] = &["email", "webhook", "task", "wait", "branch", "exit"];

/// An email step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailStep {
    /// Template name (a file `templates/<name>.yaml`).
    pub template: Spanned<String>,
    /// For account journeys: the contact roles to mail.
    #[serde(default)]
    pub to: Option<Vec<Spanned<String>>>,
}

/// A webhook step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookStep {
    /// Endpoint name from `touchline.yaml`.
    pub endpoint: Spanned<String>,
    /// JSON body; string values are templates.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
}

/// A CSM task step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskStep {
    /// Title template.
    pub title: String,
    /// Description template.
    #[serde(default)]
    pub description: Option<String>,
    /// Who gets the task.
    pub assign: Assign,
    /// Due after this many working days or hours, e.g. `2d`.
    #[serde(default)]
    pub due: Option<Spanned<DurationSpec>>,
    /// Priority.
    #[serde(default)]
    pub priority: Priority,
    /// Dedupe key (a template): an open task of the account with the same key is updated
    /// instead of a new one created, across steps and journeys. Default: journey and step.
    #[serde(default)]
    pub key: Option<String>,
}

/// Who a task goes to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Assign {
    /// The account's owner CSM.
    Owner,
    /// Each CSM of the pool in turn.
    RoundRobin(Spanned<String>),
    /// The CSM of the pool with the fewest open tasks.
    LeastLoaded(Spanned<String>),
}

pub use crate::model::Priority;

/// A wait step: a duration (`wait: 3d`) or a condition with a timeout.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Wait {
    /// Wait this long.
    For(DurationSpec),
    /// Wait until a condition holds, at most `timeout`.
    Until(WaitUntil),
}

/// Wait until a condition holds, at most `timeout`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitUntil {
    /// Rhai condition that ends the wait.
    pub until: RuleText,
    /// Longest wait; then the journey moves on.
    pub timeout: Spanned<DurationSpec>,
}

impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WaitVisitor;

        impl<'de> Visitor<'de> for WaitVisitor {
            type Value = Wait;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a duration like `3d`, or `{ until: <condition>, timeout: <duration> }`",
                )
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Wait, E> {
                text.parse().map(Wait::For).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Wait, E> {
                Err(E::custom(format!(
                    "a wait needs a unit: write `{n}d`, `{n}h` or `{n}m`"
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Wait, A::Error> {
                WaitUntil::deserialize(MapAccessDeserializer::new(map)).map(Wait::Until)
            }
        }

        deserializer.deserialize_any(WaitVisitor)
    }
}

/// One arm of a branch.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchArm {
    /// Rhai condition; omit it for the fallback arm.
    #[serde(default)]
    pub when: Option<RuleText>,
    /// The step to continue at.
    pub goto: Spanned<String>,
}
