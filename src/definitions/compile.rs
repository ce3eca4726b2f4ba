//! The compile pass: checks references between files, compiles every rule once, and turns
//! journey files into step graphs. Every problem is collected; nothing stops at the first.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use super::config::Config;
use super::journey::{
    Assign, Audience, BranchArm, EmailStep, Entry, JourneyFile, STEP_KINDS, Step, TaskStep, Wait,
    WebhookStep,
};
use super::load::ParsedJourney;
use super::values::{DurationSpec, Tier};
use crate::diagnostic::{Diagnostic, Location, SourceMap};
use crate::rules::{Form, Rule, RuleEngine, Variables};
use crate::suggest;
use crate::yaml::{NodeSpan, Span, Spanned};

/// A mail template file, `templates/<name>.yaml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    /// Subject line template.
    pub subject: String,
    /// Plain-text body template.
    pub text: String,
    /// HTML body template (optional).
    #[serde(default)]
    pub html: Option<String>,
}

/// A compiled health score.
#[derive(Debug, Clone)]
pub struct Score {
    /// Score name, e.g. `utilization`.
    pub name: String,
    /// The formula.
    pub rule: Rule,
    /// The value to use when the formula fails for an account (`None`: the score is
    /// unknown for that account, and rules that read it decide nothing).
    pub default: Option<f64>,
}

/// A compiled tier rule.
#[derive(Debug, Clone)]
pub struct TierRuleDef {
    /// The tier it assigns.
    pub tier: Tier,
    /// Its condition; `None` matches every account.
    pub rule: Option<Rule>,
    /// Why it exists.
    pub description: Option<String>,
    /// How an account's tier history names this rule when it decides the tier, written once
    /// here rather than for every account of every pass.
    pub decided_by: String,
}

/// A compiled journey.
#[derive(Debug, Clone)]
pub struct Journey {
    /// Journey id (file name).
    pub id: String,
    /// Where it is defined.
    pub path: PathBuf,
    /// The file as written.
    pub file: JourneyFile,
    /// The file's text.
    pub text: String,
    /// The version: a hash of the text. Enrollments stay on the version they entered.
    pub hash: String,
    /// Segment condition.
    pub segment_rule: Option<Rule>,
    /// Entry condition, for `entry: { condition: … }`.
    pub entry_rule: Option<Rule>,
    /// Goal condition.
    pub goal_rule: Option<Rule>,
    /// Exit condition.
    pub exit_rule: Option<Rule>,
    /// Steps in order.
    pub steps: Vec<StepDef>,
}

impl Journey {
    /// Whether an account is in the journey's holdout: a hash of journey and account, so it
    /// stays in or out across passes, restarts and engine processes, and journeys hold out
    /// different accounts. Every contact of a held-out account is held out with it: the
    /// scores a holdout is measured by are the account's.
    pub fn holds_out(&self, account_id: &str) -> bool {
        use sha2::{Digest, Sha256};
        let Some(holdout) = &self.file.holdout else {
            return false;
        };
        let share = holdout.share().basis_points;
        if share == 0 {
            return false;
        }
        let digest = Sha256::new()
            .chain_update(self.id.as_bytes())
            .chain_update([0])
            .chain_update(account_id.as_bytes())
            .finalize();
        let bucket = u64::from_be_bytes(digest[..8].try_into().unwrap_or_default()) % 10_000;
        bucket < u64::from(share)
    }

    /// The scores whose movement after a step shows whether it works: the holdout's
    /// `scores`, else those the goal reads.
    pub fn measured_scores(&self) -> Vec<String> {
        if let Some(scores) = self.file.holdout.as_ref().and_then(|h| h.scores()) {
            return scores.iter().map(|s| s.value.clone()).collect();
        }
        self.goal_rule.as_ref().map(scores_read).unwrap_or_default()
    }
}

/// The scores a rule reads (`account.scores.x`).
fn scores_read(rule: &Rule) -> Vec<String> {
    rule.reads()
        .into_iter()
        .filter_map(|path| path.strip_prefix("scores.").map(str::to_string))
        .collect()
}

/// A compiled step.
#[derive(Debug, Clone)]
pub struct StepDef {
    /// Step id (written, or `step-N`).
    pub id: String,
    /// Tiers the step runs for (`None`: all).
    pub tiers: Option<Vec<Tier>>,
    /// What it does.
    pub action: Action,
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a step email.
    Email(EmailStep),
    /// Call a webhook.
    Webhook(WebhookStep),
    /// Create a CSM task.
    Task(TaskStep),
    /// Wait this long.
    Wait(DurationSpec),
    /// Wait until the rule holds, at most `timeout`.
    WaitUntil {
        /// Condition that ends the wait.
        rule: Rule,
        /// Longest wait.
        timeout: DurationSpec,
    },
    /// Jump to the step index of the first arm whose rule holds (no rule: always).
    Branch(Vec<(Option<Rule>, usize)>),
    /// End the enrollment with this reason.
    Exit(String),
}

pub(crate) struct Compiled {
    pub scores: Vec<Score>,
    pub tiers: Vec<TierRuleDef>,
    pub journeys: BTreeMap<String, Journey>,
}

/// Compiles definitions and collects diagnostics.
pub(crate) struct Compiler<'a> {
    engine: &'a RuleEngine,
    config: Option<&'a Config>,
    templates: &'a BTreeSet<String>,
    display_root: &'a Path,
    root: &'a Path,
    score_names: Vec<String>,
    pub sources: SourceMap,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Compiler<'a> {
    pub fn new(
        engine: &'a RuleEngine,
        config: Option<&'a Config>,
        templates: &'a BTreeSet<String>,
        sources: &SourceMap,
        display_root: &'a Path,
        root: &'a Path,
    ) -> Self {
        let score_names = config
            .map(|c| c.scores.keys().cloned().collect())
            .unwrap_or_default();
        Self {
            engine,
            config,
            templates,
            display_root,
            root,
            score_names,
            sources: sources.clone(),
            diagnostics: Vec::new(),
        }
    }

    pub fn compile(&mut self, journeys: Vec<ParsedJourney>) -> Option<Compiled> {
        let (scores, tiers) = match self.config {
            Some(config) => {
                self.check_roster(config);
                (self.compile_scores(config), self.compile_tiers(config))
            }
            None => (Vec::new(), Vec::new()),
        };
        let mut compiled = BTreeMap::new();
        for parsed in journeys {
            if let Some(journey) = self.compile_journey(parsed) {
                compiled.insert(journey.id.clone(), journey);
            }
        }
        Some(Compiled {
            scores,
            tiers,
            journeys: compiled,
        })
    }

    fn config_path(&self) -> PathBuf {
        self.display_root.join(super::CONFIG_FILE)
    }

    fn error(
        &mut self,
        path: &Path,
        location: Option<Location>,
        message: String,
        help: Option<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::error(path, location, message).with_help(help));
    }

    fn known_scores(&self) -> Option<Vec<&str>> {
        self.config
            .map(|_| self.score_names.iter().map(String::as_str).collect())
    }

    /// Compiles a rule written inside a YAML string; problems point inside the string.
    fn rule(
        &mut self,
        path: &Path,
        text: &Spanned<String>,
        what: &str,
        variables: Variables,
    ) -> Option<Rule> {
        let name = format!(
            "{}:{}:{} ({what})",
            path.display(),
            text.span.line,
            text.span.column
        );
        let scores = self.known_scores();
        let result = self.engine.compile(
            name,
            &text.value,
            Form::Expression,
            variables,
            scores.as_deref(),
        );
        match result {
            Ok(rule) => Some(rule),
            Err(problems) => {
                let source_line = self.sources.line(path, text.span.line).map(str::to_string);
                for problem in problems {
                    let location = locate(
                        text.span,
                        problem.line,
                        problem.column,
                        problem.len,
                        source_line.as_deref(),
                    );
                    self.error(path, Some(location), problem.message, problem.help);
                }
                None
            }
        }
    }

    fn check_roster(&mut self, config: &Config) {
        let path = self.config_path();
        let mut ids = HashMap::new();
        for csm in &config.csms {
            if let Some(first) = ids.insert(csm.id.value.clone(), csm.id.span.line) {
                self.error(
                    &path,
                    Some(csm.id.span.location()),
                    format!(
                        "duplicate CSM id `{}` (first on line {first})",
                        csm.id.value
                    ),
                    None,
                );
            }
            if let Some(endpoint) = &csm.notify_webhook {
                self.check_endpoint(&path, endpoint);
            }
        }
        let csm_ids: Vec<&str> = config.csms.iter().map(|c| c.id.value.as_str()).collect();
        for (pool, members) in &config.pools {
            if members.is_empty() {
                self.diagnostics.push(Diagnostic::warning(
                    &path,
                    None,
                    format!("CSM pool `{pool}` has no members"),
                ));
            }
            for member in members {
                if !csm_ids.contains(&member.value.as_str()) {
                    let help = suggest::hint(&member.value, csm_ids.iter().copied());
                    self.error(
                        &path,
                        Some(member.span.location()),
                        format!("unknown CSM `{}` in pool `{pool}`", member.value),
                        help,
                    );
                }
            }
        }
    }

    fn compile_scores(&mut self, config: &Config) -> Vec<Score> {
        let path = self.config_path();
        let mut scores = Vec::new();
        for (name, formula) in &config.scores {
            let what = format!("score {name}");
            let rule = match (&formula.formula, &formula.script) {
                (Some(text), None) => self.rule(&path, text, &what, Variables::Account),
                (None, Some(script)) => self.script(&path, script, &what),
                _ => {
                    self.error(
                        &path,
                        None,
                        format!("score `{name}` needs exactly one of `formula` or `script`"),
                        None,
                    );
                    None
                }
            };
            if let Some(rule) = rule {
                scores.push(Score {
                    name: name.clone(),
                    rule,
                    default: formula.default,
                });
            }
        }
        scores
    }

    /// Compiles a score script file; problems point into the script.
    fn script(&mut self, config_path: &Path, script: &Spanned<String>, what: &str) -> Option<Rule> {
        let file = self.root.join(&script.value);
        let shown = self.display_root.join(&script.value);
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) => {
                self.error(
                    config_path,
                    Some(script.span.location()),
                    format!("cannot read script `{}`: {error}", script.value),
                    None,
                );
                return None;
            }
        };
        self.sources.insert(&shown, text.clone());
        let scores: Vec<&str> = self.score_names.iter().map(String::as_str).collect();
        let name = format!("{} ({what})", shown.display());
        match self
            .engine
            .compile(name, &text, Form::Script, Variables::Account, Some(&scores))
        {
            Ok(rule) => Some(rule),
            Err(problems) => {
                for p in problems {
                    self.diagnostics.push(
                        Diagnostic::error(
                            &shown,
                            Some(Location::new(p.line, p.column, p.len)),
                            p.message,
                        )
                        .with_help(p.help),
                    );
                }
                None
            }
        }
    }

    fn compile_tiers(&mut self, config: &Config) -> Vec<TierRuleDef> {
        let path = self.config_path();
        let mut tiers = Vec::new();
        for (index, tier_rule) in config.tiers.iter().enumerate() {
            let what = format!("tier rule {} → {}", index + 1, tier_rule.tier.value);
            let rule = match &tier_rule.when {
                Some(text) => match self.rule(&path, text, &what, Variables::Account) {
                    Some(rule) => Some(rule),
                    None => continue,
                },
                None => {
                    if index + 1 < config.tiers.len() {
                        self.diagnostics.push(Diagnostic::warning(
                            &path,
                            Some(tier_rule.tier.span.location()),
                            "tier rule without `when` matches every account, so the rules after it never apply",
                        ));
                    }
                    None
                }
            };
            let position = tiers.len() + 1;
            let tier = tier_rule.tier.value;
            let decided_by = match &rule {
                Some(condition) => {
                    format!("tier rule {position} ({tier}): {}", condition.source.trim())
                }
                None => format!("tier rule {position} ({tier}): everyone else"),
            };
            tiers.push(TierRuleDef {
                tier,
                rule,
                description: tier_rule.description.clone(),
                decided_by,
            });
        }
        if config.tiers.last().is_some_and(|t| t.when.is_some()) {
            self.diagnostics.push(Diagnostic::warning(
                &path,
                config.tiers.last().map(|t| t.tier.span.location()),
                "the last tier rule has a condition, so accounts matching no rule get no tier; end with a rule without `when`",
            ));
        }
        if config.tiers.is_empty() {
            self.error(
                &path,
                None,
                "no tier rules: add at least one under `tiers`".to_string(),
                None,
            );
        }
        tiers
    }

    fn check_endpoint(&mut self, path: &Path, endpoint: &Spanned<String>) {
        let Some(config) = self.config else { return };
        if !config.webhooks.contains_key(&endpoint.value) {
            let help = suggest::hint(&endpoint.value, config.webhooks.keys().map(String::as_str));
            self.error(
                path,
                Some(endpoint.span.location()),
                format!("unknown webhook endpoint `{}`", endpoint.value),
                help,
            );
        }
    }

    fn check_pool(&mut self, path: &Path, pool: &Spanned<String>) {
        let Some(config) = self.config else { return };
        if !config.pools.contains_key(&pool.value) {
            let help = suggest::hint(&pool.value, config.pools.keys().map(String::as_str));
            self.error(
                path,
                Some(pool.span.location()),
                format!("unknown CSM pool `{}`", pool.value),
                help,
            );
        }
    }

    /// A holdout's scores must exist; one with nothing to compare (no goal, no scores) says so.
    fn check_holdout(&mut self, path: &Path, file: &JourneyFile, goal: Option<&Rule>) {
        let Some(holdout) = &file.holdout else { return };
        let known: Vec<String> = self.score_names.clone();
        for score in holdout.scores().unwrap_or_default() {
            if self.config.is_some() && !known.contains(&score.value) {
                let help = suggest::hint(&score.value, known.iter().map(String::as_str));
                self.error(
                    path,
                    Some(score.span.location()),
                    format!("unknown score `{}`", score.value),
                    help,
                );
            }
        }
        if holdout.scores().is_none() && goal.is_none_or(|rule| scores_read(rule).is_empty()) {
            self.diagnostics.push(
                Diagnostic::warning(
                    path,
                    None,
                    "the holdout has nothing to compare: the goal reads no score".to_string(),
                )
                .with_help(Some(
                    "name them: `holdout: { share: 10%, scores: [utilization] }`".to_string(),
                )),
            );
        }
    }

    pub(crate) fn compile_journey(&mut self, parsed: ParsedJourney) -> Option<Journey> {
        let path = parsed.path.clone();
        let variables = match parsed.file.as_ref().map(|f| f.audience) {
            Some(Audience::Contacts) => Variables::AccountAndContact,
            _ => Variables::Account,
        };
        let steps = self.compile_steps(&path, &parsed, variables);
        for (what, text) in &parsed.loose_rules {
            self.rule(&path, text, what, Variables::AccountAndContact);
        }
        let file = parsed.file?;
        if let Some(id) = &file.id
            && id.value != parsed.id
        {
            self.error(
                &path,
                Some(id.span.location()),
                format!(
                    "journey id `{}` does not match its file name `{}`",
                    id.value, parsed.id
                ),
                Some(format!(
                    "rename the file to `{}.yaml` or set `id: {}`",
                    id.value, parsed.id
                )),
            );
        }
        if !parsed.has_steps {
            self.error(&path, None, "journey has no `steps`".to_string(), None);
        }
        if let (Some(goal), Some(config)) = (&file.segment.adoption_goal, self.config)
            && !config.adoption_goals.contains_key(&goal.value)
        {
            let help = suggest::hint(
                &goal.value,
                config.adoption_goals.keys().map(String::as_str),
            );
            self.error(
                &path,
                Some(goal.span.location()),
                format!("unknown adoption goal `{}`", goal.value),
                help,
            );
        }
        let segment_rule = file
            .segment
            .when
            .as_ref()
            .and_then(|w| self.rule(&path, w, "segment.when", variables));
        let entry_rule = match &file.entry {
            Entry::Condition(text) => self.rule(&path, text, "entry.condition", variables),
            Entry::Event(_) | Entry::Schedule(_) => None,
        };
        let goal_rule = file
            .goal
            .as_ref()
            .and_then(|g| self.rule(&path, &g.when, "goal.when", variables));
        let exit_rule = file
            .exit
            .as_ref()
            .and_then(|e| self.rule(&path, &e.when, "exit.when", variables));
        self.check_holdout(&path, &file, goal_rule.as_ref());
        Some(Journey {
            id: parsed.id,
            path,
            file,
            hash: content_hash(&parsed.text),
            text: parsed.text,
            segment_rule,
            entry_rule,
            goal_rule,
            exit_rule,
            steps: steps?,
        })
    }

    /// Compiles the steps and checks the graph they form. `None` if any step is broken.
    fn compile_steps(
        &mut self,
        path: &Path,
        parsed: &ParsedJourney,
        variables: Variables,
    ) -> Option<Vec<StepDef>> {
        // Ids first, so gotos can be resolved whatever their order.
        let mut ids: Vec<String> = Vec::new();
        let mut first_use: HashMap<String, usize> = HashMap::new();
        for (index, (_, span, id)) in parsed.steps.iter().enumerate() {
            let id = id.as_ref();
            let name = id.map_or_else(|| format!("step-{}", index + 1), |id| id.value.clone());
            if let Some(first) = first_use.insert(name.clone(), span.line) {
                let location = id.map_or(span.location(), |id| id.span.location());
                self.error(
                    path,
                    Some(location),
                    format!("duplicate step id `{name}` (first used on line {first})"),
                    None,
                );
            }
            ids.push(name);
        }
        let audience = parsed.file.as_ref().map(|f| f.audience);
        let mut steps = Vec::new();
        let mut gotos: Vec<Vec<(usize, Span)>> = Vec::new();
        let mut broken = false;
        for (index, (step, span, _)) in parsed.steps.iter().enumerate() {
            let Some(step) = step else {
                broken = true;
                gotos.push(Vec::new());
                continue;
            };
            let (action, targets) =
                match self.compile_action(path, step, *span, &ids, audience, variables) {
                    Some(compiled) => compiled,
                    None => {
                        broken = true;
                        gotos.push(Vec::new());
                        continue;
                    }
                };
            gotos.push(targets);
            steps.push(StepDef {
                id: ids[index].clone(),
                tiers: step
                    .tiers
                    .as_ref()
                    .map(|t| t.iter().map(|t| t.value).collect()),
                action,
            });
        }
        if broken {
            return None;
        }
        self.check_graph(path, parsed, &steps, &gotos);
        Some(steps)
    }

    /// Checks template texts of a step (task texts, webhook body strings).
    fn check_templates(&mut self, path: &Path, texts: &[&str]) {
        let scores: BTreeSet<String> = self
            .config
            .map(|c| c.scores.keys().cloned().collect())
            .unwrap_or_default();
        let file_text = self.sources.get(path).unwrap_or_default().to_string();
        for text in texts {
            self.diagnostics.extend(super::template_check::check(
                path, &file_text, text, &scores,
            ));
        }
    }

    fn compile_action(
        &mut self,
        path: &Path,
        step: &Step,
        span: NodeSpan,
        ids: &[String],
        audience: Option<Audience>,
        variables: Variables,
    ) -> Option<(Action, Vec<(usize, Span)>)> {
        let kinds = [
            step.email.is_some(),
            step.webhook.is_some(),
            step.task.is_some(),
            step.wait.is_some(),
            step.branch.is_some(),
            step.exit.is_some(),
        ];
        let present: Vec<&str> = STEP_KINDS
            .iter()
            .zip(kinds)
            .filter(|(_, p)| *p)
            .map(|(k, _)| *k)
            .collect();
        if present.len() != 1 {
            let message = if present.is_empty() {
                "step has no kind".to_string()
            } else {
                format!(
                    "step has {} kinds ({}); a step does exactly one thing",
                    present.len(),
                    suggest::backticked(&present)
                )
            };
            self.error(
                path,
                Some(span.location()),
                message,
                Some(format!(
                    "expected one of {}",
                    suggest::backticked(STEP_KINDS)
                )),
            );
            return None;
        }
        let mut targets = Vec::new();
        let action = if let Some(email) = &step.email {
            self.check_email(path, email, audience);
            Action::Email(email.clone())
        } else if let Some(webhook) = &step.webhook {
            self.check_endpoint(path, &webhook.endpoint);
            let mut texts = Vec::new();
            if let Some(body) = &webhook.body {
                json_strings(body, &mut texts);
            }
            self.check_templates(path, &texts);
            Action::Webhook(webhook.clone())
        } else if let Some(task) = &step.task {
            let texts: Vec<&str> = std::iter::once(task.title.as_str())
                .chain(task.description.as_deref())
                .chain(task.key.as_deref())
                .collect();
            self.check_templates(path, &texts);
            match &task.assign {
                Assign::Owner => {}
                Assign::RoundRobin(pool) | Assign::LeastLoaded(pool) => self.check_pool(path, pool),
            }
            Action::Task(task.clone())
        } else if let Some(wait) = &step.wait {
            match wait {
                Wait::For(duration) => Action::Wait(*duration),
                Wait::Until(until) => {
                    let rule = self.rule(path, &until.until, "wait.until", variables)?;
                    Action::WaitUntil {
                        rule,
                        timeout: until.timeout.value,
                    }
                }
            }
        } else if let Some(arms) = &step.branch {
            Action::Branch(self.compile_branch(path, arms, ids, variables, &mut targets)?)
        } else {
            Action::Exit(step.exit.clone().unwrap_or_default())
        };
        Some((action, targets))
    }

    fn check_email(&mut self, path: &Path, email: &EmailStep, audience: Option<Audience>) {
        if !self.templates.contains(&email.template.value) {
            let help = suggest::hint(
                &email.template.value,
                self.templates.iter().map(String::as_str),
            );
            self.error(
                path,
                Some(email.template.span.location()),
                format!(
                    "unknown template `{}` (no file `templates/{}.yaml`)",
                    email.template.value, email.template.value
                ),
                help,
            );
        }
        match (&email.to, audience) {
            (None, Some(Audience::Accounts)) => self.error(
                path,
                Some(email.template.span.location()),
                "email step in an account journey needs `to:` with the contact roles to mail"
                    .to_string(),
                None,
            ),
            (Some(roles), _) => {
                let known = self
                    .config
                    .map(|c| c.contact_roles.clone())
                    .unwrap_or_default();
                for role in roles {
                    if self.config.is_some() && !known.contains(&role.value) {
                        let help = suggest::hint(&role.value, known.iter().map(String::as_str));
                        self.error(
                            path,
                            Some(role.span.location()),
                            format!("unknown contact role `{}`", role.value),
                            help,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn compile_branch(
        &mut self,
        path: &Path,
        arms: &[BranchArm],
        ids: &[String],
        variables: Variables,
        targets: &mut Vec<(usize, Span)>,
    ) -> Option<Vec<(Option<Rule>, usize)>> {
        let mut compiled = Vec::new();
        let mut ok = true;
        for arm in arms {
            let rule = arm
                .when
                .as_ref()
                .map(|text| self.rule(path, text, "branch.when", variables));
            let target = ids.iter().position(|id| *id == arm.goto.value);
            if target.is_none() {
                let help = suggest::hint(&arm.goto.value, ids.iter().map(String::as_str));
                self.error(
                    path,
                    Some(arm.goto.span.location()),
                    format!(
                        "`goto` names a step that does not exist: `{}`",
                        arm.goto.value
                    ),
                    help,
                );
            }
            match (rule, target) {
                (Some(None), _) | (_, None) => ok = false,
                (rule, Some(target)) => {
                    targets.push((target, arm.goto.span));
                    compiled.push((rule.flatten(), target));
                }
            }
        }
        if arms.is_empty() {
            self.error(path, None, "branch has no arms".to_string(), None);
            ok = false;
        }
        ok.then_some(compiled)
    }

    /// Warns about unreachable steps and rejects loops that never wait.
    fn check_graph(
        &mut self,
        path: &Path,
        parsed: &ParsedJourney,
        steps: &[StepDef],
        gotos: &[Vec<(usize, Span)>],
    ) {
        let successors: Vec<Vec<usize>> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| successors(i, s, steps.len()))
            .collect();
        let mut reachable = vec![false; steps.len()];
        let mut queue = vec![0];
        while let Some(i) = queue.pop() {
            if i < steps.len() && !reachable[i] {
                reachable[i] = true;
                queue.extend(&successors[i]);
            }
        }
        for (index, seen) in reachable.iter().enumerate() {
            if !seen {
                let (_, span, id) = &parsed.steps[index];
                let location = id.as_ref().map_or(span.location(), |id| id.span.location());
                self.diagnostics.push(Diagnostic::warning(
                    path,
                    Some(location),
                    format!("step `{}` is never reached", steps[index].id),
                ));
            }
        }
        for cycle in cycles_without_wait(steps, &successors) {
            let (from, to) = (cycle[cycle.len() - 1], cycle[0]);
            let location = gotos[from]
                .iter()
                .find(|(t, _)| *t == to)
                .map(|(_, span)| span.location())
                .unwrap_or(parsed.steps[from].1.location());
            let names: Vec<&str> = cycle
                .iter()
                .chain(std::iter::once(&to))
                .map(|&i| steps[i].id.as_str())
                .collect();
            self.error(
                path,
                Some(location),
                format!(
                    "this loop never waits and would run forever: {}",
                    names.join(" → ")
                ),
                Some("add a `wait` step inside the loop".to_string()),
            );
        }
    }
}

pub use crate::diagnostic::content_hash;

/// Maps a position inside a rule to the file (see [`Span::locate_inside`]).
fn locate(
    span: Span,
    line: usize,
    column: usize,
    len: usize,
    source_line: Option<&str>,
) -> Location {
    span.locate_inside(line, column, len, source_line)
}

/// The steps that may run after step `index`.
pub fn successors(index: usize, step: &StepDef, count: usize) -> Vec<usize> {
    let next = (index + 1 < count).then_some(index + 1);
    match &step.action {
        Action::Exit(_) => Vec::new(),
        Action::Branch(arms) => {
            let mut targets: Vec<usize> = arms.iter().map(|(_, t)| *t).collect();
            if arms.iter().all(|(rule, _)| rule.is_some()) {
                targets.extend(next);
            }
            targets
        }
        _ => next.into_iter().collect(),
    }
}

/// Loops made only of steps that do not wait, each as the list of steps around it.
fn cycles_without_wait(steps: &[StepDef], successors: &[Vec<usize>]) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let waits = |i: usize| matches!(steps[i].action, Action::Wait(_) | Action::WaitUntil { .. });
    let mut marks = vec![Mark::New; steps.len()];
    let mut cycles = Vec::new();
    for start in 0..steps.len() {
        if marks[start] != Mark::New || waits(start) {
            continue;
        }
        // Iterative depth-first search: (node, next successor to try).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&succ) = successors[node].get(*next) {
                *next += 1;
                if waits(succ) {
                    continue;
                }
                match marks[succ] {
                    Mark::New => {
                        marks[succ] = Mark::OnStack;
                        stack.push((succ, 0));
                    }
                    Mark::OnStack => {
                        let from = stack.iter().position(|(n, _)| *n == succ).unwrap_or(0);
                        cycles.push(stack[from..].iter().map(|(n, _)| *n).collect());
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

/// Every string inside a JSON value (the template texts of a webhook body).
fn json_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}
