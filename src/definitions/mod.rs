//! Definitions: `touchline.yaml`, the journeys in `journeys/`, the score scripts in
//! `scripts/` and the mail templates in `templates/`, loaded and compiled together.
//!
//! Loading is a compile pass: every file is read and checked, and every problem in every
//! file is collected (errors and warnings apart) before anything is reported. The result,
//! when there are no errors, is a [`Definitions`] whose rules are compiled once.

pub mod compile;
pub mod config;
pub mod journey;
pub mod load;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

pub use compile::{Action, Journey, Score, StepDef, TierRuleDef};
pub use config::Config;
pub use journey::JourneyFile;
pub use load::{CONFIG_FILE, Loaded, find_root, load, load_file};
pub use values::Tier;

use crate::rules::RuleEngine;

/// Everything a project defines, compiled and checked.
#[derive(Debug, Clone)]
pub struct Definitions {
    /// Folder holding `touchline.yaml`.
    pub root: PathBuf,
    /// Engine settings.
    pub config: Config,
    /// Health scores in the order they are computed.
    pub scores: Vec<Score>,
    /// Tier rules in order; the first match wins.
    pub tiers: Vec<TierRuleDef>,
    /// Journeys by id.
    pub journeys: BTreeMap<String, Journey>,
    /// Names of the mail templates.
    pub templates: BTreeSet<String>,
    /// The engine the rules were compiled for.
    pub engine: Arc<RuleEngine>,
}
