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
pub mod template_check;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use compile::{Action, Journey, Score, StepDef, TierRuleDef};
pub use config::Config;
pub use journey::JourneyFile;
pub use load::{CONFIG_FILE, Loaded, find_root, load, load_file};
pub use values::Tier;

use crate::diagnostic::{self, Diagnostic};
use crate::rules::RuleEngine;

impl Definitions {
    /// Compiles another version of a journey (a stored one that enrollments are pinned to)
    /// against the current settings.
    pub fn compile_version(&self, id: &str, text: &str) -> Result<Journey, Vec<Diagnostic>> {
        let path = PathBuf::from(format!("journeys/{id}.yaml@version"));
        let (parsed, errors) =
            load::parse_journey_text(id.to_string(), path.clone(), text.to_string());
        let mut diagnostics: Vec<Diagnostic> = errors
            .into_iter()
            .map(|e| Diagnostic::error(&path, e.location, e.message).with_help(e.help))
            .collect();
        let sources = diagnostic::SourceMap::default();
        let mut compiler = compile::Compiler::new(
            &self.engine,
            Some(&self.config),
            &self.templates,
            &sources,
            Path::new(""),
            &self.root,
        );
        let journey = compiler.compile_journey(parsed);
        diagnostics.extend(
            compiler
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error),
        );
        match journey {
            Some(journey) if diagnostics.is_empty() => Ok(journey),
            _ => Err(diagnostics),
        }
    }
}

impl Definitions {
    /// These definitions with every journey's holdout off: journey tests check what a
    /// journey does, and must not depend on which side of a holdout a test's ids hash to.
    pub fn without_holdouts(&self) -> Self {
        let mut definitions = self.clone();
        for journey in definitions.journeys.values_mut() {
            journey.file.holdout = None;
        }
        definitions
    }

    /// Every compiled rule: score formulas, tier rules, and each journey's conditions.
    pub fn rules(&self) -> impl Iterator<Item = &crate::rules::Rule> {
        let scores = self.scores.iter().map(|s| &s.rule);
        let tiers = self.tiers.iter().filter_map(|t| t.rule.as_ref());
        let journeys = self.journeys.values().flat_map(Journey::rules);
        scores.chain(tiers).chain(journeys)
    }
}

impl Journey {
    /// The journey's conditions: segment, entry, goal, exit, waits and branches.
    pub fn rules(&self) -> impl Iterator<Item = &crate::rules::Rule> {
        let own = [
            &self.segment_rule,
            &self.entry_rule,
            &self.goal_rule,
            &self.exit_rule,
        ];
        let steps = self.steps.iter().flat_map(|step| match &step.action {
            Action::WaitUntil { rule, .. } => vec![rule],
            Action::Branch(arms) => arms.iter().filter_map(|(rule, _)| rule.as_ref()).collect(),
            _ => Vec::new(),
        });
        own.into_iter().flatten().chain(steps)
    }
}

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
    /// The mail templates that parsed.
    pub template_files: BTreeMap<String, compile::TemplateFile>,
    /// The engine the rules were compiled for.
    pub engine: Arc<RuleEngine>,
    /// A hash of every definitions file: when it changes, every account is re-evaluated.
    pub fingerprint: String,
    /// Every file the definitions were read from, and the folders whose new files would
    /// join them (journeys, templates): what `touchline run` watches for edits.
    pub watched: Vec<PathBuf>,
}
