//! Finding and reading definitions files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Definitions;
use super::compile::{Compiler, TemplateFile};
use super::config::Config;
use super::journey::{JourneyFile, Step};
use super::template_check;
use crate::diagnostic::{self, Diagnostic, SourceMap};
use crate::rules::RuleEngine;
use crate::yaml::{self, Node, NodeSpan, Spanned, Value};

/// The settings file every project has at its root.
pub const CONFIG_FILE: &str = "touchline.yaml";

/// The result of loading: the definitions if there were no errors, every diagnostic, and the
/// text of every file read (to quote lines in messages).
#[derive(Debug)]
pub struct Loaded {
    /// The definitions, when no errors were found.
    pub definitions: Option<Definitions>,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The text of every file read.
    pub sources: SourceMap,
}

impl Loaded {
    /// Number of errors.
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    /// Number of warnings.
    pub fn warning_count(&self) -> usize {
        self.diagnostics.len() - self.error_count()
    }
}

/// Finds the project root: the nearest folder at or above `start` holding `touchline.yaml`.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(CONFIG_FILE).is_file())
        .map(Path::to_path_buf)
}

/// A journey file parsed as far as its structure allowed.
#[derive(Debug)]
pub struct ParsedJourney {
    /// Journey id (the file name without extension).
    pub id: String,
    /// Path as shown to the user.
    pub path: PathBuf,
    /// The journey without its steps (`None` if its structure was broken).
    pub file: Option<JourneyFile>,
    /// Each step (`None` if its structure was broken), where it was written, and its `id`
    /// as written (read even from a broken step, so duplicate ids are still found).
    pub steps: Vec<(Option<Step>, NodeSpan, Option<Spanned<String>>)>,
    /// When the journey's structure is broken: its rules, found by position, so their
    /// errors are still reported (what they are, the text).
    pub loose_rules: Vec<(&'static str, Spanned<String>)>,
    /// Whether the file has a `steps` key at all.
    pub has_steps: bool,
    /// The file's text, for the version hash.
    pub text: String,
}

/// Loads the project whose `touchline.yaml` is at `config_path`. Paths in diagnostics are
/// shown relative to `display_root` (how the user reaches the project folder).
pub fn load(config_path: &Path, display_root: &Path) -> Loaded {
    load_with(config_path, display_root, None)
}

/// Checks one file against the project it belongs to: the project is loaded as a whole
/// (with `file` added as a journey if it lies outside `journeys/`), and only the diagnostics
/// for `file` are kept.
pub fn load_file(config_path: &Path, display_root: &Path, file: &Path) -> Loaded {
    let wanted = std::fs::canonicalize(file).ok();
    let is_config = wanted.as_deref() == std::fs::canonicalize(config_path).ok().as_deref();
    let extra = (!is_config).then_some(file);
    let mut loaded = load_with(config_path, display_root, extra);
    loaded
        .diagnostics
        .retain(|d| std::fs::canonicalize(&d.path).ok() == wanted);
    loaded.definitions = None;
    loaded
}

fn load_with(config_path: &Path, display_root: &Path, extra_journey: Option<&Path>) -> Loaded {
    let root = config_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut reader = Reader {
        root: root.clone(),
        display_root: display_root.to_path_buf(),
        sources: SourceMap::default(),
        diagnostics: Vec::new(),
    };

    let config_display = reader.display(Path::new(CONFIG_FILE));
    let config = reader
        .read(config_path, &config_display)
        .and_then(|text| reader.parse_config(&config_display, &text));
    let mut files = reader.journey_files();
    if let Some(extra) = extra_journey {
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        if !files.iter().any(|f| canonical(f) == canonical(extra)) {
            files.push(extra.to_path_buf());
        }
    }
    let journeys = files
        .into_iter()
        .filter_map(|path| reader.parse_journey(&path))
        .collect::<Vec<_>>();
    let (templates, template_files) = reader.templates(config.as_ref());

    let engine = Arc::new(RuleEngine::new());
    let mut compiler = Compiler::new(
        &engine,
        config.as_ref(),
        &templates,
        &reader.sources,
        &reader.display_root,
        &root,
    );
    let compiled = compiler.compile(journeys);
    reader.diagnostics.extend(compiler.diagnostics);
    reader.sources = compiler.sources;
    diagnostic::sort(&mut reader.diagnostics);

    let has_errors = reader.diagnostics.iter().any(Diagnostic::is_error);
    let definitions = match (config, compiled) {
        (Some(config), Some(compiled)) if !has_errors => Some(Definitions {
            root,
            scores: compiled.scores,
            tiers: compiled.tiers,
            journeys: compiled.journeys,
            templates,
            template_files,
            engine,
            watched: reader.watched(&config),
            config,
            fingerprint: reader.sources.fingerprint(),
        }),
        _ => None,
    };
    Loaded {
        definitions,
        diagnostics: reader.diagnostics,
        sources: reader.sources,
    }
}

struct Reader {
    root: PathBuf,
    display_root: PathBuf,
    sources: SourceMap,
    diagnostics: Vec<Diagnostic>,
}

impl Reader {
    fn display(&self, relative: &Path) -> PathBuf {
        self.display_root.join(relative)
    }

    /// The files read (their shown paths are under the display root) and the folders new
    /// journeys and templates appear in.
    fn watched(&self, config: &Config) -> Vec<PathBuf> {
        let templates = config.email.templates.as_deref().unwrap_or("templates");
        let mut paths: Vec<PathBuf> = self
            .sources
            .paths()
            .map(|shown| {
                let relative = shown.strip_prefix(&self.display_root).unwrap_or(shown);
                self.root.join(relative)
            })
            .chain([self.root.join("journeys"), self.root.join(templates)])
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    fn read(&mut self, path: &Path, shown: &Path) -> Option<String> {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() > yaml::MAX_FILE_BYTES as u64 => {
                self.diagnostics.push(Diagnostic::error(
                    shown,
                    None,
                    format!(
                        "file is too large ({} bytes; definitions files may be at most {} bytes)",
                        meta.len(),
                        yaml::MAX_FILE_BYTES
                    ),
                ));
                return None;
            }
            _ => {}
        }
        match std::fs::read_to_string(path) {
            Ok(text) => {
                self.sources.insert(shown, text.clone());
                Some(text)
            }
            Err(error) => {
                self.diagnostics.push(Diagnostic::error(
                    shown,
                    None,
                    format!("cannot read file: {error}"),
                ));
                None
            }
        }
    }

    fn report(&mut self, shown: &Path, errors: Vec<yaml::Error>) {
        for error in errors {
            self.diagnostics.push(
                Diagnostic::error(shown, error.location, error.message).with_help(error.help),
            );
        }
    }

    fn parse_config(&mut self, shown: &Path, text: &str) -> Option<Config> {
        let (config, errors) = yaml::from_str::<Config>(text);
        let ok = errors.is_empty();
        self.report(shown, errors);
        config.filter(|_| ok)
    }

    fn journey_files(&mut self) -> Vec<PathBuf> {
        let dir = self.root.join("journeys");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            })
            .collect();
        files.sort();
        files
    }

    fn parse_journey(&mut self, path: &Path) -> Option<ParsedJourney> {
        let shown = match path.strip_prefix(&self.root) {
            Ok(relative) => self.display(relative),
            Err(_) => path.to_path_buf(),
        };
        let id = path.file_stem()?.to_string_lossy().into_owned();
        let text = self.read(path, &shown)?;
        let (parsed, errors) = parse_journey_text(id, shown.clone(), text);
        self.report(&shown, errors);
        Some(parsed)
    }

    fn templates(
        &mut self,
        config: Option<&Config>,
    ) -> (BTreeSet<String>, BTreeMap<String, TemplateFile>) {
        let folder = config
            .and_then(|c| c.email.templates.clone())
            .unwrap_or_else(|| "templates".into());
        let Ok(entries) = std::fs::read_dir(self.root.join(&folder)) else {
            return (BTreeSet::new(), BTreeMap::new());
        };
        let scores: BTreeSet<String> = config
            .map(|c| c.scores.keys().cloned().collect())
            .unwrap_or_default();
        let mut names = BTreeSet::new();
        let mut files = BTreeMap::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            ) {
                continue;
            }
            let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
                continue;
            };
            let relative = path.strip_prefix(&self.root).unwrap_or(&path).to_path_buf();
            let shown = self.display(&relative);
            if let Some(text) = self.read(&path, &shown) {
                let (template, errors) = yaml::from_str::<TemplateFile>(&text);
                if let (Some(template), true) = (template, errors.is_empty()) {
                    let parts = [
                        Some(&template.subject),
                        Some(&template.text),
                        template.html.as_ref(),
                    ];
                    for part in parts.into_iter().flatten() {
                        self.diagnostics
                            .extend(template_check::check(&shown, &text, part, &scores));
                    }
                    files.insert(stem.clone(), template);
                }
                self.report(&shown, errors);
            }
            names.insert(stem);
        }
        (names, files)
    }
}

/// Parses a journey's text; the errors are positioned in it.
pub(crate) fn parse_journey_text(
    id: String,
    path: PathBuf,
    text: String,
) -> (ParsedJourney, Vec<yaml::Error>) {
    let node = match yaml::parse(&text) {
        Ok(node) => node,
        Err(error) => {
            let parsed = ParsedJourney {
                id,
                path,
                file: None,
                steps: Vec::new(),
                loose_rules: Vec::new(),
                has_steps: true,
                text,
            };
            return (parsed, vec![error]);
        }
    };
    // Steps are read one by one, so a broken step does not hide problems in the others.
    let (header, step_nodes) = split_steps(node);
    let (file, mut errors) = yaml::from_node::<JourneyFile>(&header);
    let has_steps = step_nodes.is_some();
    let mut steps = Vec::new();
    match step_nodes.map(|n| (n.value, n.span)) {
        Some((Value::Seq(items), _)) => {
            for item in items {
                let (step, step_errors) = yaml::from_node::<Step>(&item);
                let ok = step_errors.is_empty();
                errors.extend(step_errors);
                steps.push((
                    step.filter(|_| ok),
                    item.span,
                    yaml::find_string(&item, &["id"]),
                ));
            }
        }
        Some((_, span)) => {
            errors.push(yaml::Error::new("`steps` must be a list of steps").at(span.location()))
        }
        None => {}
    }
    let ok = errors.is_empty();
    let loose_rules = if ok { Vec::new() } else { loose_rules(&header) };
    let parsed = ParsedJourney {
        id,
        path,
        file: file.filter(|_| ok),
        steps,
        loose_rules,
        has_steps,
        text,
    };
    (parsed, errors)
}

/// The journey-level rules of a journey file, read straight from its nodes.
fn loose_rules(header: &Node) -> Vec<(&'static str, Spanned<String>)> {
    const RULES: [(&str, &[&str]); 4] = [
        ("segment.when", &["segment", "when"]),
        ("entry.condition", &["entry", "condition"]),
        ("goal.when", &["goal", "when"]),
        ("exit.when", &["exit", "when"]),
    ];
    RULES
        .iter()
        .filter_map(|(what, path)| yaml::find_string(header, path).map(|text| (*what, text)))
        .collect()
}

/// Splits the `steps` entry off a journey's root mapping.
fn split_steps(mut node: Node) -> (Node, Option<Node>) {
    let mut steps = None;
    if let Value::Map(entries) = &mut node.value
        && let Some(index) = entries
            .iter()
            .position(|(k, _)| matches!(&k.value, Value::Scalar(s) if s == "steps"))
    {
        steps = Some(entries.remove(index).1);
    }
    (node, steps)
}
