//! Rules: Rhai conditions and score formulas, compiled once and evaluated many times.
//!
//! Every rule runs in the same sandbox ([`sandbox`]). A rule is compiled when definitions
//! load, against placeholder variables for its context (`account`, `contact` in contact
//! journeys, `now`), and checked for reads of fields and scores that do not exist. Rules in
//! the common subset of Rhai are also compiled to Rust closures (module `native`) and run
//! without the interpreter, with the same results.

pub mod check;
pub mod helpers;
mod native;
pub mod sandbox;

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};

pub use helpers::Timestamp;

/// What a rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variables {
    /// `account` and `now`.
    Account,
    /// `account`, `contact` and `now`.
    AccountAndContact,
}

impl Variables {
    fn names(self) -> &'static [&'static str] {
        match self {
            Variables::Account => &["account", "now"],
            Variables::AccountAndContact => &["account", "contact", "now"],
        }
    }
}

/// The form a rule is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A single expression (a `when:` condition or an inline formula).
    Expression,
    /// A script file: statements, functions and loops allowed, the last value is the result.
    Script,
}

/// A problem in a rule's text, positioned inside the rule (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    /// What is wrong.
    pub message: String,
    /// A did-you-mean.
    pub help: Option<String>,
    /// 1-based line inside the rule text.
    pub line: usize,
    /// 1-based column inside the rule text.
    pub column: usize,
    /// Length of the offending text.
    pub len: usize,
}

impl RuleProblem {
    fn at(message: String, help: Option<String>, position: Position, len: usize) -> Self {
        Self {
            message,
            help,
            line: position.line().unwrap_or(1),
            column: position.position().unwrap_or(1),
            len,
        }
    }
}

/// A rule that stopped with an error while it ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule {rule} failed: {reason}")]
pub struct EvalError {
    /// The rule's name (where it is defined).
    pub rule: String,
    /// Why it failed.
    pub reason: String,
}

/// A compiled rule with the name errors refer to it by.
#[derive(Clone)]
pub struct Rule {
    /// Where the rule is defined, e.g. `journeys/churn-risk.yaml:9:9 (segment.when)`.
    pub name: String,
    /// The rule's text.
    pub source: String,
    ast: AST,
    /// The rule compiled to closures, when it is in the subset they cover.
    native: Option<Arc<native::Native>>,
}

impl Rule {
    /// Whether the rule reads the time (`now`, `days_since`, `days_until`), so its answer can
    /// change while no data does.
    pub fn reads_time(&self) -> bool {
        check::reads_time(&self.ast)
    }

    /// The account and contact fields the rule reads (`arr`, `metrics.logins_30d`, …).
    pub fn reads(&self) -> Vec<String> {
        check::reads(&self.ast)
    }

    /// The account fields the rule reads, when it reads `account` only through property
    /// chains (`None`: it may read anything of the account). See [`check::account_reads`].
    pub fn account_reads(&self) -> Option<Vec<String>> {
        check::account_reads(&self.ast)
    }

    /// Whether the rule runs as compiled closures (Rhai only when they cannot decide).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("source", &self.source)
            .field("native", &self.is_native())
            .finish()
    }
}

/// The data a rule evaluates against.
#[derive(Debug, Clone)]
pub struct Context {
    /// The account, as a Rhai map.
    pub account: Dynamic,
    /// The contact, for contact journeys.
    pub contact: Option<Dynamic>,
    /// The injected clock's time.
    pub now: DateTime<Utc>,
}

impl Context {
    /// A context from JSON values (numbers, strings, lists and objects), for tests and
    /// previews; dates stay strings.
    pub fn from_json(
        account: serde_json::Value,
        contact: Option<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let convert =
            |value: serde_json::Value| rhai::serde::to_dynamic(value).map_err(|e| e.to_string());
        Ok(Self {
            account: convert(account)?,
            contact: contact.map(convert).transpose()?,
            now,
        })
    }
}

/// The rule engine: one sandboxed Rhai engine shared by every rule.
pub struct RuleEngine {
    engine: Engine,
}

impl fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RuleEngine")
    }
}

impl Default for RuleEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl RuleEngine {
    /// A new sandboxed engine.
    pub fn new() -> Self {
        Self {
            engine: sandbox::engine(),
        }
    }

    /// Compiles a rule and checks the names it reads. `scores` are the declared score names
    /// (`None` when they are not known, which skips the score check).
    pub fn compile(
        &self,
        name: impl Into<String>,
        source: &str,
        form: Form,
        variables: Variables,
        scores: Option<&[&str]>,
    ) -> Result<Rule, Vec<RuleProblem>> {
        let mut scope = Scope::new();
        for variable in variables.names() {
            scope.push_dynamic(*variable, Dynamic::UNIT);
        }
        let compiled = match form {
            Form::Expression => self.engine.compile_expression_with_scope(&scope, source),
            Form::Script => self.engine.compile_with_scope(&scope, source),
        };
        let ast = compiled.map_err(|error| {
            let message = describe_parse_error(&error.0, variables);
            vec![RuleProblem::at(message, None, error.1, 1)]
        })?;
        let unknown = check::unknown_names(&ast, scores);
        if !unknown.is_empty() {
            return Err(unknown
                .into_iter()
                .map(|u| RuleProblem::at(u.message, u.help, u.position, u.len))
                .collect());
        }
        let native = native::compile(&ast).map(Arc::new);
        Ok(Rule {
            name: name.into(),
            source: source.to_string(),
            ast,
            native,
        })
    }

    /// Evaluates a rule to a value.
    pub fn eval(&self, rule: &Rule, context: &Context) -> Result<Dynamic, EvalError> {
        let mut bindings = Bindings::new(context.account.clone(), context.now);
        if let Some(contact) = &context.contact {
            bindings.set_contact(contact.clone());
        }
        self.run(rule, &mut bindings)
    }

    /// Evaluates a rule against prepared bindings (the way the engine runs many rules over
    /// one account without rebuilding its data): natively when the rule is compiled and the
    /// closures decide, else through Rhai (which also gives every error).
    pub fn run(&self, rule: &Rule, bindings: &mut Bindings) -> Result<Dynamic, EvalError> {
        if let Some(native) = &rule.native
            && let Ok(value) = native.run(&self.engine, &bindings.scope, bindings.now)
        {
            return Ok(value);
        }
        self.run_rhai(rule, bindings)
    }

    /// Evaluates a rule through Rhai even when it has a native form (to compare the two).
    pub fn run_rhai(&self, rule: &Rule, bindings: &mut Bindings) -> Result<Dynamic, EvalError> {
        helpers::set_now(bindings.now);
        sandbox::start_budget();
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut bindings.scope, &rule.ast);
        // Scripts may declare variables; drop them so the next rule starts clean.
        bindings.scope.rewind(bindings.base);
        result.map_err(|error| EvalError {
            rule: rule.name.clone(),
            reason: unknown_score_read(rule, bindings)
                .unwrap_or_else(|| describe_eval_error(&error)),
        })
    }

    /// Evaluates a condition against prepared bindings.
    pub fn run_bool(&self, rule: &Rule, bindings: &mut Bindings) -> Result<bool, EvalError> {
        let value = self.run(rule, bindings)?;
        as_bool(rule, value)
    }

    /// Evaluates a formula against prepared bindings.
    pub fn run_number(&self, rule: &Rule, bindings: &mut Bindings) -> Result<f64, EvalError> {
        let value = self.run(rule, bindings)?;
        as_number(rule, value)
    }

    /// Evaluates a condition; anything but `true` or `false` is an error.
    pub fn eval_bool(&self, rule: &Rule, context: &Context) -> Result<bool, EvalError> {
        as_bool(rule, self.eval(rule, context)?)
    }

    /// Evaluates a formula to a number.
    pub fn eval_number(&self, rule: &Rule, context: &Context) -> Result<f64, EvalError> {
        as_number(rule, self.eval(rule, context)?)
    }
}

fn as_bool(rule: &Rule, value: Dynamic) -> Result<bool, EvalError> {
    value.as_bool().map_err(|type_name| EvalError {
        rule: rule.name.clone(),
        reason: format!(
            "a condition must be true or false, but this one gave a {type_name} (`{value}`)"
        ),
    })
}

fn as_number(rule: &Rule, value: Dynamic) -> Result<f64, EvalError> {
    if let Ok(f) = value.as_float() {
        return Ok(f);
    }
    value
        .as_int()
        .map(|i| i as f64)
        .map_err(|type_name| EvalError {
            rule: rule.name.clone(),
            reason: format!(
                "a formula must give a number, but this one gave a {type_name} (`{value}`)"
            ),
        })
}

/// The variables rules read, built once per account and reused for every rule.
pub struct Bindings {
    scope: Scope<'static>,
    base: usize,
    now: DateTime<Utc>,
    /// Scores unknown for this account, with why, so a rule that reads one says so.
    unknown: std::collections::BTreeMap<String, String>,
}

impl fmt::Debug for Bindings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bindings")
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Bindings {
    /// Bindings for `account` (a Rhai map) at time `now`; `contact` is unit until set.
    pub fn new(account: Dynamic, now: DateTime<Utc>) -> Self {
        let mut scope = Scope::new();
        scope.push_dynamic("account", account);
        scope.push_dynamic("contact", Dynamic::UNIT);
        scope.push("now", Timestamp(now));
        let base = scope.len();
        Self {
            scope,
            base,
            now,
            unknown: Default::default(),
        }
    }

    /// The account map, to change in place (`None` when `account` is not a map).
    pub fn account_mut(&mut self) -> Option<impl std::ops::DerefMut<Target = rhai::Map> + '_> {
        self.scope.get_mut("account")?.write_lock::<rhai::Map>()
    }

    /// Forgets the unknown scores and the contact: the bindings are about to hold another
    /// account.
    pub fn clear_account_marks(&mut self) {
        self.unknown.clear();
        self.scope.set_value("contact", Dynamic::UNIT);
    }

    /// Sets the contact rules see.
    pub fn set_contact(&mut self, contact: Dynamic) {
        self.scope.set_value("contact", contact);
    }

    /// Marks a score unknown: rules no longer see it, and one that reads it says why.
    pub fn set_unknown_score(&mut self, name: &str, why: &str) {
        if let Some(account) = self.scope.get_mut("account")
            && let Some(mut account) = account.write_lock::<rhai::Map>()
            && let Some(scores) = account.get_mut("scores")
            && let Some(mut scores) = scores.write_lock::<rhai::Map>()
        {
            scores.remove(name);
        }
        self.unknown.insert(name.to_string(), why.to_string());
    }

    /// Sets `account.scores.<name>`: the score is known.
    pub fn set_score(&mut self, name: &str, value: f64) {
        self.unknown.remove(name);
        if let Some(mut account) = self.account_mut()
            && let Some(scores) = account.get_mut("scores")
            && let Some(mut scores) = scores.write_lock::<rhai::Map>()
        {
            put(&mut scores, name, Dynamic::from_float(value));
        }
    }

    /// Sets `account.tier` (as it is being decided), keeping the value there when it is that
    /// tier already: most accounts keep their tier.
    pub fn set_tier(&mut self, tier: &str) {
        if let Some(mut account) = self.account_mut() {
            put_text(&mut account, "tier", tier);
        }
    }
}

/// Sets `map.<key>`, reusing the key where it is there already: a new key is a new string.
pub fn put(map: &mut rhai::Map, key: &str, value: Dynamic) {
    match map.get_mut(key) {
        Some(slot) => *slot = value,
        None => {
            map.insert(key.into(), value);
        }
    }
}

/// Sets `map.<key>` to a text, unless it holds that text already.
pub fn put_text(map: &mut rhai::Map, key: &str, value: &str) {
    let same = map
        .get(key)
        .and_then(|v| {
            v.read_lock::<rhai::ImmutableString>()
                .map(|s| s.as_str() == value)
        })
        .unwrap_or(false);
    if !same {
        put(map, key, Dynamic::from(rhai::ImmutableString::from(value)));
    }
}

fn describe_parse_error(error: &rhai::ParseErrorType, variables: Variables) -> String {
    use rhai::ParseErrorType as E;
    match error {
        E::VariableUndefined(name) if name == "contact" => {
            "`contact` is only available in journeys with `audience: contacts`".to_string()
        }
        E::VariableUndefined(name) => format!(
            "unknown variable `{name}`; rules can read {}",
            crate::suggest::backticked(variables.names())
        ),
        E::UnexpectedEOF => {
            "the rule ends too early: is a bracket not closed, or an operand missing?".to_string()
        }
        E::ExprTooDeep => format!(
            "expression is nested too deeply (more than {} levels)",
            sandbox::MAX_EXPR_DEPTH.0
        ),
        other => format!("rule syntax error: {other}"),
    }
}

/// Why a failed rule failed, when it read a score that is unknown for the account.
fn unknown_score_read(rule: &Rule, bindings: &Bindings) -> Option<String> {
    if bindings.unknown.is_empty() {
        return None;
    }
    rule.reads().iter().find_map(|path| {
        let name = path.strip_prefix("scores.")?;
        let why = bindings.unknown.get(name)?;
        Some(format!("score `{name}` is unknown for this account: {why}"))
    })
}

fn describe_eval_error(error: &EvalAltResult) -> String {
    // Limits hit inside a function surface wrapped in the call's error; report the cause.
    let mut error = error;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) = error {
        error = inner;
    }
    match error {
        EvalAltResult::ErrorTerminated(..) => format!(
            "stopped after its time budget of {} ms",
            sandbox::TIME_BUDGET.as_millis()
        ),
        EvalAltResult::ErrorTooManyOperations(..) => format!(
            "stopped after {} operations (does it loop forever?)",
            sandbox::MAX_OPERATIONS
        ),
        EvalAltResult::ErrorStackOverflow(..) => format!(
            "stopped at {} nested function calls (does it recurse forever?)",
            sandbox::MAX_CALL_LEVELS
        ),
        EvalAltResult::ErrorDataTooLarge(what, ..) => format!(
            "stopped: {what} grew past the limit ({} characters for strings, {} items for arrays and maps)",
            sandbox::MAX_STRING_SIZE,
            sandbox::MAX_COLLECTION_SIZE
        ),
        other => {
            let position = other.position();
            match (position.line(), position.position()) {
                (Some(line), Some(column)) => format!("{other} (at {line}:{column} in the rule)"),
                _ => other.to_string(),
            }
        }
    }
}
