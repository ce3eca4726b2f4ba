//! Checks of template texts (mail parts, task titles and descriptions, webhook bodies): they
//! must compile, and every field they read must exist — `account.nmae` is a typo caught at
//! validation, not a blank in a customer's inbox. Fields that exist but are empty for some
//! customer are caught by `touchline preview`, which renders strictly.

use std::collections::BTreeSet;
use std::path::Path;

use crate::diagnostic::{Diagnostic, Location};
use crate::model::{account_fields, contact_fields};
use crate::suggest;

/// The fields templates see under `owner` (the account's CSM).
pub const OWNER_FIELDS: &[&str] = &["id", "name", "email"];
/// The links templates see under `links` (pages of `touchline run`).
pub const LINK_FIELDS: &[&str] = &["account", "inbox"];
/// Top-level names: the data, plus minijinja's global functions.
const ROOTS: &[&str] = &["account", "contact", "owner", "links", "now", "today"];
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "loop", "self"];

/// Problems with one template text found in `file_text` (for positions).
pub fn check(
    path: &Path,
    file_text: &str,
    source: &str,
    scores: &BTreeSet<String>,
) -> Vec<Diagnostic> {
    let env = minijinja::Environment::new();
    let template = match env.template_from_str(source) {
        Ok(template) => template,
        Err(error) => {
            let line = error.line().unwrap_or(1);
            let location = locate_line(file_text, source, line);
            let detail = error.detail().unwrap_or("syntax error");
            return vec![Diagnostic::error(
                path,
                location,
                format!("template does not compile: {detail}"),
            )];
        }
    };
    let mut fields: Vec<String> = template.undeclared_variables(true).into_iter().collect();
    fields.sort();
    fields
        .into_iter()
        .filter_map(|field| {
            let (message, help) = unknown_field(&field, scores)?;
            Some(Diagnostic::error(path, locate(file_text, &field), message).with_help(help))
        })
        .collect()
}

/// Why `field` (dotted) is not something templates can read, with a did-you-mean.
fn unknown_field(field: &str, scores: &BTreeSet<String>) -> Option<(String, Option<String>)> {
    let parts: Vec<&str> = field.split('.').collect();
    let root = parts[0];
    if GLOBALS.contains(&root) {
        return None;
    }
    if !ROOTS.contains(&root) {
        return Some((
            format!("unknown template variable `{root}`"),
            suggest::hint(root, ROOTS.iter().copied())
                .or_else(|| Some(format!("templates see {}", suggest::backticked(ROOTS)))),
        ));
    }
    // Templates see what rules see (see `model::ACCOUNT_FACTS`).
    let known: Vec<&str> = match root {
        "account" => account_fields().collect(),
        "contact" => contact_fields().collect(),
        "links" => LINK_FIELDS.to_vec(),
        "now" | "today" => return None,
        _ => OWNER_FIELDS.to_vec(),
    };
    let name = parts.get(1)?;
    if !known.contains(name) {
        return Some((
            format!("unknown field `{root}.{name}`"),
            suggest::hint(name, known.iter().copied()),
        ));
    }
    if (root, *name) == ("account", "scores")
        && let Some(score) = parts.get(2)
        && !scores.contains(*score)
    {
        return Some((
            format!("unknown score `account.scores.{score}`"),
            suggest::hint(score, scores.iter().map(String::as_str)),
        ));
    }
    None
}

/// Where `needle` first appears in `text`.
fn locate(text: &str, needle: &str) -> Option<Location> {
    let at = text.find(needle)?;
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Some(Location::new(line, column, needle.chars().count()))
}

/// The file position of line `line` of a template whose text appears in `text`.
fn locate_line(text: &str, source: &str, line: usize) -> Option<Location> {
    let wanted = source.lines().nth(line.saturating_sub(1))?.trim();
    if wanted.is_empty() {
        return None;
    }
    let found = locate(text, wanted)?;
    Some(Location::new(
        found.line,
        found.column,
        wanted.chars().count(),
    ))
}
