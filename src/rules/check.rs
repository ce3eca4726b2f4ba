//! Static checks on compiled rules: every `account.x`, `account.scores.x` and `contact.x` a
//! rule reads must exist, so a typo is reported at validation time, positioned on the name.

use rhai::{AST, ASTNode, Expr, Position};

use crate::model::{account_fields, contact_fields};
use crate::suggest;

/// A name a rule reads that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What is wrong.
    pub message: String,
    /// Did-you-mean.
    pub help: Option<String>,
    /// Where, inside the rule text.
    pub position: Position,
    /// Length of the name.
    pub len: usize,
}

/// Finds property reads on `account` / `contact` that name no field or score.
pub fn unknown_names(ast: &AST, scores: Option<&[&str]>) -> Vec<UnknownName> {
    let mut problems = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Dot(dot, ..))) = path.last()
            && let Expr::Variable(var, ..) = &dot.lhs
        {
            let segments = chain(&dot.rhs);
            check_chain(var.1.as_str(), &segments, scores, &mut problems);
        }
        true
    });
    problems
}

fn check_chain(
    variable: &str,
    segments: &[(String, Position)],
    scores: Option<&[&str]>,
    out: &mut Vec<UnknownName>,
) {
    let fields: Vec<&str> = match variable {
        "account" => account_fields().collect(),
        "contact" => contact_fields().collect(),
        _ => return,
    };
    let Some((first, position)) = segments.first() else {
        return;
    };
    if !fields.contains(&first.as_str()) {
        out.push(UnknownName {
            message: format!("`{variable}` has no field `{first}`"),
            help: suggest::hint(first, fields.iter().copied()),
            position: *position,
            len: first.chars().count(),
        });
        return;
    }
    if variable == "account"
        && first == "scores"
        && let Some(scores) = scores
        && let Some((score, position)) = segments.get(1)
        && !scores.contains(&score.as_str())
    {
        out.push(UnknownName {
            message: format!("unknown score `{score}`"),
            help: suggest::hint(score, scores.iter().copied()),
            position: *position,
            len: score.chars().count(),
        });
    }
}

/// The property names of a dotted chain, in order, stopping at the first index or call.
fn chain(expr: &Expr) -> Vec<(String, Position)> {
    match expr {
        Expr::Property(property, position) => vec![(property.2.to_string(), *position)],
        Expr::Dot(dot, ..) => {
            let mut names = chain(&dot.lhs);
            if names.len() == 1 || matches!(dot.lhs, Expr::Dot(..)) {
                names.extend(chain(&dot.rhs));
            }
            names
        }
        Expr::Index(index, ..) => chain(&index.lhs),
        _ => Vec::new(),
    }
}

/// Whether a rule reads `now` or calls a helper that does.
pub fn reads_time(ast: &AST) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::Variable(var, ..))) if var.1.as_str() == "now" => found = true,
            Some(ASTNode::Expr(Expr::FnCall(call, ..)))
                if matches!(call.name.as_str(), "days_since" | "days_until") =>
            {
                found = true
            }
            _ => {}
        }
        !found
    });
    found
}

/// The account and contact fields a rule reads, as dotted paths (`metrics.logins_30d`,
/// `contact.role`), following `let m = account.metrics;` aliases. For `explain`.
pub fn reads(ast: &AST) -> Vec<String> {
    let mut aliases: Vec<(String, String)> = vec![
        ("account".into(), String::new()),
        ("contact".into(), "contact".into()),
    ];
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(rhai::Stmt::Var(var, ..))) = path.last()
            && let Expr::Dot(dot, ..) = &var.1
            && let Expr::Variable(source, ..) = &dot.lhs
            && let Some((_, base)) = aliases.iter().find(|(name, _)| name == source.1.as_str())
        {
            let segments: Vec<String> = chain(&dot.rhs).into_iter().map(|(name, _)| name).collect();
            let full = join(base, &segments);
            aliases.push((var.0.name.to_string(), full));
        }
        true
    });
    let mut reads = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Dot(dot, ..))) = path.last()
            && let Expr::Variable(var, ..) = &dot.lhs
            && let Some((_, base)) = aliases.iter().find(|(name, _)| name == var.1.as_str())
        {
            let segments: Vec<String> = chain(&dot.rhs).into_iter().map(|(name, _)| name).collect();
            let full = join(base, &segments);
            if !full.is_empty() && !reads.contains(&full) {
                reads.push(full);
            }
        }
        true
    });
    reads
}

fn join(base: &str, segments: &[String]) -> String {
    let tail = segments.join(".");
    match (base.is_empty(), tail.is_empty()) {
        (true, _) => tail,
        (false, true) => base.to_string(),
        (false, false) => format!("{base}.{tail}"),
    }
}

/// The account fields a rule reads (`arr`, `metrics.logins_30d`, `metrics`, …), when every
/// use of `account` is a chain of property reads off it; `None` when the rule uses `account`
/// in any other way (passes it to a function, indexes it, copies it into a variable), so
/// it may read anything. Conservative: what the engine loads for rules relies on it.
pub fn account_reads(ast: &AST) -> Option<Vec<String>> {
    let mut reads: Vec<String> = Vec::new();
    let mut whole = false;
    ast.walk(&mut |path: &[ASTNode]| {
        let Some(ASTNode::Expr(Expr::Variable(var, ..))) = path.last() else {
            return true;
        };
        if var.1.as_str() != "account" {
            return true;
        }
        let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
        let read = match parent {
            Some(ASTNode::Expr(Expr::Dot(dot, ..)))
                if matches!(&dot.lhs, Expr::Variable(lhs, ..) if lhs.1.as_str() == "account") =>
            {
                let segments: Vec<String> =
                    chain(&dot.rhs).into_iter().map(|(name, _)| name).collect();
                (!segments.is_empty()).then(|| segments.join("."))
            }
            _ => None,
        };
        match read {
            Some(read) => {
                if !reads.contains(&read) {
                    reads.push(read);
                }
                true
            }
            None => {
                whole = true;
                false
            }
        }
    });
    (!whole).then_some(reads)
}

#[cfg(test)]
mod tests {
    use crate::rules::{Form, RuleEngine, Variables};

    fn reads(source: &str, form: Form) -> Option<Vec<String>> {
        RuleEngine::new()
            .compile("test", source, form, Variables::Account, None)
            .expect("compiles")
            .account_reads()
    }

    #[test]
    fn account_reads_are_known_only_through_property_chains() {
        let expression = |source| reads(source, Form::Expression);
        assert_eq!(
            expression("account.arr >= 1000.0 && account.metrics.logins_30d > 2"),
            Some(vec!["arr".to_string(), "metrics.logins_30d".to_string()])
        );
        assert_eq!(
            expression("get_or(account.metrics, \"x\", 0) > 1"),
            Some(vec!["metrics".to_string()])
        );
        assert_eq!(
            expression("account.metrics[\"x\"] > 1"),
            Some(vec!["metrics".to_string()])
        );
        assert_eq!(expression("has_goal(account, \"fleet\")"), None);
        assert_eq!(expression("account[\"arr\"] > 1"), None);
        assert_eq!(reads("let a = account; a.arr > 1", Form::Script), None);
        assert_eq!(
            reads("let m = account.metrics; m.x > 1", Form::Script),
            Some(vec!["metrics".to_string()])
        );
        assert_eq!(expression("now == now"), Some(vec![]));
    }
}
