//! Rules compiled to Rust closures, so the common ones run without Rhai's interpreter.
//!
//! Most rules are a handful of field reads, comparisons and helper calls
//! (`account.scores.usage >= 70 && account.arr > 50000.0`) evaluated for every account on
//! every pass. Interpreting them costs far more than the work they describe, so when a rule
//! loads, its AST is also compiled into nested closures that read the bindings' values
//! directly.
//!
//! The closures follow Rhai's semantics exactly for everything they compute: INT stays INT
//! and a mix of INT and FLOAT gives FLOAT, float comparisons use Rhai's relative epsilon,
//! values of different types compare unequal, `&&` and `||` short-circuit. What they cannot
//! decide that way makes them give up with [`Fallback`] and the rule runs through Rhai:
//! every error (an overflow, a missing property, an operand of the wrong type), so error
//! messages stay Rhai's own, and the type mixes Rhai hands to its registered functions
//! (`"a" + 1`, comparing two arrays). Rules have no side effects, so running one again
//! through Rhai is always safe, and a result never depends on which path produced it.
//!
//! Compiled: literals (no characters), variables, property reads through maps, `+ - * / %`,
//! unary `-`, `+` and `!`, comparisons, `&&`, `||`, `??`, `if`/`else`, blocks, `let`, and
//! calls of `days_since`, `days_until`, `has_goal`, `ratio`, `clamp`, `get_or`, `abs`, `min`
//! and `max`. Anything else (loops, assignments, method calls, indexing, interpolated
//! strings, array and map literals, `const`, script-defined functions) leaves the rule to
//! Rhai alone.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rhai::{
    AST, ASTFlags, Dynamic, Engine, Expr, FLOAT, FnCallExpr, INT, ImmutableString, Map, Scope,
    Stmt, Token,
};

use super::helpers::{self, Timestamp};
use super::sandbox;

/// Most AST nodes a compiled rule may have. Rhai counts about one operation per node, so a
/// rule this small can never reach the sandbox's operation limit: the native path never
/// succeeds where Rhai would stop.
const MAX_NODES: usize = 4096;

/// Most `let` statements a compiled rule may have: far below the sandbox's limit on
/// variables, which Rhai would enforce.
const MAX_LETS: usize = 128;

/// The native path cannot decide the result exactly as Rhai would: run the rule in Rhai.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fallback;

type Outcome<T> = Result<T, Fallback>;

/// A compiled expression or statement.
type Eval = Box<dyn Fn(&mut Frame<'_>) -> Outcome<Value> + Send + Sync>;

/// A rule compiled to closures.
pub(super) struct Native {
    eval: Eval,
    /// How many `let` values the rule holds.
    slots: usize,
}

impl fmt::Debug for Native {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Native")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl Native {
    /// Evaluates the rule against the bindings' variables; `now` is the time `days_since` and
    /// `days_until` measure from, `engine` the one the rule was compiled for (its data size
    /// limits apply as they would in Rhai).
    pub(super) fn run(
        &self,
        engine: &Engine,
        scope: &Scope<'static>,
        now: DateTime<Utc>,
    ) -> Outcome<Dynamic> {
        let mut frame = Frame {
            engine,
            scope,
            now,
            slots: vec![Value::Unit; self.slots],
        };
        (self.eval)(&mut frame).map(Value::into_dynamic)
    }
}

/// Compiles a rule's AST, or `None` when it uses anything outside the compiled subset.
pub(super) fn compile(ast: &AST) -> Option<Native> {
    // A script function could shadow a helper or operator.
    if ast.has_functions() {
        return None;
    }
    let mut compiler = Compiler::default();
    let eval = compiler.block(ast.statements())?;
    (compiler.nodes <= MAX_NODES && compiler.lets <= MAX_LETS).then_some(Native {
        eval,
        slots: compiler.slots,
    })
}

/// A value while a native rule runs: Rhai's value kinds that operators treat apart.
#[derive(Debug, Clone)]
enum Value {
    Unit,
    Bool(bool),
    Int(INT),
    Float(FLOAT),
    Str(ImmutableString),
    Time(Timestamp),
    Array(Dynamic),
    Map(Dynamic),
    /// Anything else (characters, blobs, …): only passed through.
    Other(Dynamic),
}

impl Value {
    /// The value of a Rhai value. Shared values (never in rule data) are left to Rhai.
    /// Each kind is tested before it is read: a failed `as_*` would name the type, which
    /// costs more than the read.
    fn of(value: &Dynamic) -> Outcome<Self> {
        if value.is_shared() {
            return Err(Fallback);
        }
        Ok(if value.is_float() {
            Value::Float(value.as_float().map_err(|_| Fallback)?)
        } else if value.is_int() {
            Value::Int(value.as_int().map_err(|_| Fallback)?)
        } else if value.is_bool() {
            Value::Bool(value.as_bool().map_err(|_| Fallback)?)
        } else if value.is_unit() {
            Value::Unit
        } else if let Some(s) = value.read_lock::<ImmutableString>() {
            Value::Str(s.clone())
        } else if let Some(t) = value.read_lock::<Timestamp>() {
            Value::Time(*t)
        } else if value.is_array() {
            Value::Array(value.clone())
        } else if value.is_map() {
            Value::Map(value.clone())
        } else {
            Value::Other(value.clone())
        })
    }

    fn into_dynamic(self) -> Dynamic {
        match self {
            Value::Unit => Dynamic::UNIT,
            Value::Bool(b) => Dynamic::from_bool(b),
            Value::Int(i) => Dynamic::from_int(i),
            Value::Float(f) => Dynamic::from_float(f),
            Value::Str(s) => Dynamic::from(s),
            Value::Time(t) => Dynamic::from(t),
            Value::Array(d) | Value::Map(d) | Value::Other(d) => d,
        }
    }
}

/// What a running native rule reads and keeps.
struct Frame<'a> {
    engine: &'a Engine,
    /// The bindings' variables (`account`, `contact`, `now`).
    scope: &'a Scope<'static>,
    now: DateTime<Utc>,
    /// The values of the rule's `let` variables.
    slots: Vec<Value>,
}

/// A variable and the properties read through it (`account.scores.usage`): read in place,
/// without copying the maps on the way.
#[derive(Debug, Clone)]
struct Path {
    root: Root,
    props: Arc<[ImmutableString]>,
}

#[derive(Debug, Clone)]
enum Root {
    /// A variable of the bindings.
    Global(ImmutableString),
    /// A `let` variable.
    Slot(usize),
}

impl Path {
    /// Calls `f` with the value at the end of the path.
    fn read<R>(&self, frame: &Frame<'_>, f: impl FnOnce(&Dynamic) -> Outcome<R>) -> Outcome<R> {
        match &self.root {
            Root::Global(name) => walk(frame.scope.get(name).ok_or(Fallback)?, &self.props, f),
            Root::Slot(slot) => match frame.slots.get(*slot).ok_or(Fallback)? {
                Value::Array(d) | Value::Map(d) | Value::Other(d) => walk(d, &self.props, f),
                value if self.props.is_empty() => f(&value.clone().into_dynamic()),
                _ => Err(Fallback),
            },
        }
    }
}

/// Follows `props` through nested maps. A property missing, or read from anything but a
/// map (where Rhai would look for a getter), is left to Rhai.
fn walk<R>(
    value: &Dynamic,
    props: &[ImmutableString],
    f: impl FnOnce(&Dynamic) -> Outcome<R>,
) -> Outcome<R> {
    let Some((first, rest)) = props.split_first() else {
        return f(value);
    };
    if value.is_shared() {
        return Err(Fallback);
    }
    let map = value.read_lock::<Map>().ok_or(Fallback)?;
    walk(map.get(first.as_str()).ok_or(Fallback)?, rest, f)
}

/// A `let` variable as the compiler sees it.
enum Local {
    /// Holds a computed value.
    Slot(usize),
    /// Names a path (`let m = account.metrics;`). Compiled rules assign nothing, so reading
    /// through the path later gives what a copy taken at the `let` would.
    Alias(Path),
}

/// Turns AST nodes into closures; `None` for anything outside the subset.
#[derive(Default)]
struct Compiler {
    /// `let` variables in scope, innermost last.
    locals: Vec<(ImmutableString, Local)>,
    slots: usize,
    lets: usize,
    nodes: usize,
}

impl Compiler {
    /// Statements in order, the last one's value the result (unit when there are none);
    /// variables declared inside go out of scope at the end, as in Rhai.
    fn block(&mut self, statements: &[Stmt]) -> Option<Eval> {
        let mark = self.locals.len();
        let evals: Option<Vec<Eval>> = statements.iter().map(|s| self.stmt(s)).collect();
        self.locals.truncate(mark);
        Some(sequence(evals?))
    }

    fn stmt(&mut self, stmt: &Stmt) -> Option<Eval> {
        self.nodes += 1;
        match stmt {
            Stmt::Noop(..) => Some(constant(Value::Unit)),
            Stmt::Expr(expr) => self.expr(expr),
            Stmt::FnCall(call, ..) => self.call(call),
            Stmt::Block(block) => self.block(block.statements()),
            Stmt::If(flow, ..) => {
                self.branch(&flow.expr, flow.body.statements(), flow.branch.statements())
            }
            Stmt::Var(var, flags, ..)
                if !flags.intersects(ASTFlags::CONSTANT | ASTFlags::EXPORTED) =>
            {
                self.define(&var.0.name, &var.1)
            }
            _ => None,
        }
    }

    /// `let name = init;` (its value is unit).
    fn define(&mut self, name: &ImmutableString, init: &Expr) -> Option<Eval> {
        self.lets += 1;
        if let Some(path) = self.path(init) {
            self.nodes += path.props.len() + 1;
            let check = path.clone();
            self.locals.push((name.clone(), Local::Alias(path)));
            // Rhai reads the path here; a path that is not there is its error.
            return Some(Box::new(move |frame| {
                check.read(frame, |value| match value.is_shared() {
                    true => Err(Fallback),
                    false => Ok(Value::Unit),
                })
            }));
        }
        let init = self.expr(init)?;
        let slot = self.slots;
        self.slots += 1;
        self.locals.push((name.clone(), Local::Slot(slot)));
        Some(Box::new(move |frame| {
            let value = init(frame)?;
            *frame.slots.get_mut(slot).ok_or(Fallback)? = value;
            Ok(Value::Unit)
        }))
    }

    fn expr(&mut self, expr: &Expr) -> Option<Eval> {
        self.nodes += 1;
        match expr {
            Expr::Unit(..) => Some(constant(Value::Unit)),
            Expr::BoolConstant(b, ..) => Some(constant(Value::Bool(*b))),
            Expr::IntegerConstant(i, ..) => Some(constant(Value::Int(*i))),
            Expr::FloatConstant(f, ..) => Some(constant(Value::Float(**f))),
            Expr::StringConstant(s, ..) => Some(constant(Value::Str(s.clone()))),
            Expr::Variable(..) | Expr::Dot(..) => self.read(expr),
            Expr::FnCall(call, ..) => self.call(call),
            Expr::And(operands, ..) => self.logic(operands, false),
            Expr::Or(operands, ..) => self.logic(operands, true),
            Expr::Coalesce(operands, ..) => self.coalesce(operands),
            Expr::Stmt(block) => self.block(block.statements()),
            _ => None,
        }
    }

    /// A variable or a property read.
    fn read(&mut self, expr: &Expr) -> Option<Eval> {
        if let Some(path) = self.path(expr) {
            self.nodes += path.props.len();
            return Some(match path.root {
                Root::Slot(slot) if path.props.is_empty() => {
                    Box::new(move |frame| frame.slots.get(slot).cloned().ok_or(Fallback))
                }
                _ => Box::new(move |frame| path.read(frame, Value::of)),
            });
        }
        // `(expr).a.b`: properties of a computed value.
        let Expr::Dot(dot, flags, ..) = expr else {
            return None;
        };
        if flags.intersects(ASTFlags::NEGATED) {
            return None;
        }
        let props: Arc<[ImmutableString]> = properties(&dot.rhs)?.into();
        self.nodes += props.len();
        let object = self.expr(&dot.lhs)?;
        Some(Box::new(move |frame| match object(frame)? {
            Value::Map(map) => walk(&map, &props, Value::of),
            _ => Err(Fallback),
        }))
    }

    /// The path a variable or a dotted read on a variable names.
    fn path(&self, expr: &Expr) -> Option<Path> {
        match expr {
            Expr::Variable(var, ..) if var.2.is_empty() => Some(self.variable(&var.1)),
            Expr::Dot(dot, flags, ..) if !flags.intersects(ASTFlags::NEGATED) => {
                let Expr::Variable(var, ..) = &dot.lhs else {
                    return None;
                };
                if !var.2.is_empty() {
                    return None;
                }
                let base = self.variable(&var.1);
                let mut props = base.props.to_vec();
                props.extend(properties(&dot.rhs)?);
                Some(Path {
                    root: base.root,
                    props: props.into(),
                })
            }
            _ => None,
        }
    }

    /// A `let` variable in scope (the innermost of that name), else a variable of the
    /// bindings: the order Rhai searches its scope in.
    fn variable(&self, name: &ImmutableString) -> Path {
        let local = self.locals.iter().rev().find(|(n, _)| n == name);
        match local {
            Some((_, Local::Alias(path))) => path.clone(),
            Some((_, Local::Slot(slot))) => Path {
                root: Root::Slot(*slot),
                props: Arc::new([]),
            },
            None => Path {
                root: Root::Global(name.clone()),
                props: Arc::new([]),
            },
        }
    }

    /// `a && b && …` (`stop` false) or `a || b || …` (`stop` true): each operand must be a
    /// bool, and the first that equals `stop` decides.
    fn logic(&mut self, operands: &[Expr], stop: bool) -> Option<Eval> {
        let evals = self.exprs(operands)?;
        Some(Box::new(move |frame| {
            for eval in &evals {
                match eval(frame)? {
                    Value::Bool(b) if b == stop => return Ok(Value::Bool(stop)),
                    Value::Bool(_) => {}
                    _ => return Err(Fallback),
                }
            }
            Ok(Value::Bool(!stop))
        }))
    }

    /// `a ?? b ?? …`: the first operand that is not unit.
    fn coalesce(&mut self, operands: &[Expr]) -> Option<Eval> {
        let evals = self.exprs(operands)?;
        Some(Box::new(move |frame| {
            let mut value = Value::Unit;
            for eval in &evals {
                value = eval(frame)?;
                if !matches!(value, Value::Unit) {
                    break;
                }
            }
            Ok(value)
        }))
    }

    /// `if cond { body } else { otherwise }`; a missing `else` is an empty block (unit).
    fn branch(&mut self, cond: &Expr, body: &[Stmt], otherwise: &[Stmt]) -> Option<Eval> {
        let cond = self.expr(cond)?;
        let body = self.block(body)?;
        let otherwise = self.block(otherwise)?;
        Some(Box::new(move |frame| match cond(frame)? {
            Value::Bool(true) => body(frame),
            Value::Bool(false) => otherwise(frame),
            _ => Err(Fallback),
        }))
    }

    fn exprs(&mut self, exprs: &[Expr]) -> Option<Vec<Eval>> {
        exprs.iter().map(|e| self.expr(e)).collect()
    }

    /// An operator or a helper call.
    fn call(&mut self, call: &FnCallExpr) -> Option<Eval> {
        if !call.namespace.is_empty() || call.capture_parent_scope {
            return None;
        }
        match (&call.op_token, &call.args[..]) {
            (Some(token), [operand]) => self.unary(token, operand),
            (Some(token), [lhs, rhs]) => self.binary(token, lhs, rhs),
            (Some(_), _) => None,
            (None, args) => self.helper(call.name.as_str(), args),
        }
    }

    fn unary(&mut self, token: &Token, operand: &Expr) -> Option<Eval> {
        let op: fn(Value) -> Outcome<Value> = match token {
            Token::Minus | Token::UnaryMinus => negate,
            Token::Plus | Token::UnaryPlus => plus,
            Token::Bang => not,
            _ => return None,
        };
        let operand = self.expr(operand)?;
        Some(Box::new(move |frame| op(operand(frame)?)))
    }

    fn binary(&mut self, token: &Token, lhs: &Expr, rhs: &Expr) -> Option<Eval> {
        let op = Binary::of(token)?;
        let lhs = self.expr(lhs)?;
        let rhs = self.expr(rhs)?;
        Some(match op {
            Binary::Arith(op) => Box::new(move |frame| {
                let (x, y) = (lhs(frame)?, rhs(frame)?);
                arithmetic(op, x, y)
            }),
            Binary::Cmp(op) => Box::new(move |frame| {
                let (x, y) = (lhs(frame)?, rhs(frame)?);
                compare(op, &x, &y).map(Value::Bool)
            }),
        })
    }

    /// A call of a registered helper or of `abs`, `min` or `max`. The AST holds no script
    /// functions (see [`compile`]), so these names mean what the engine registered.
    fn helper(&mut self, name: &str, args: &[Expr]) -> Option<Eval> {
        match (name, args) {
            ("days_since", [t]) => self.days(t, helpers::days_between),
            ("days_until", [t]) => self.days(t, |t, now| helpers::days_between(now, t)),
            ("ratio", [a, b]) => self.function2(a, b, ratio),
            ("min", [a, b]) => self.function2(a, b, min),
            ("max", [a, b]) => self.function2(a, b, max),
            ("abs", [x]) => self.function1(x, abs),
            ("clamp", [x, lo, hi]) => self.clamp(x, lo, hi),
            ("has_goal", [account, goal]) => self.has_goal(account, goal),
            ("get_or", [map, key, default]) => self.get_or(map, key, default),
            _ => None,
        }
    }

    /// `days_since(t)` / `days_until(t)`: a time, or unit (infinitely far).
    fn days(&mut self, t: &Expr, days: fn(DateTime<Utc>, DateTime<Utc>) -> FLOAT) -> Option<Eval> {
        let t = self.expr(t)?;
        Some(Box::new(move |frame| match t(frame)? {
            Value::Time(t) => Ok(Value::Float(days(t.0, frame.now))),
            Value::Unit => Ok(Value::Float(FLOAT::INFINITY)),
            _ => Err(Fallback),
        }))
    }

    fn function1(&mut self, x: &Expr, f: fn(Value) -> Outcome<Value>) -> Option<Eval> {
        let x = self.expr(x)?;
        Some(Box::new(move |frame| f(x(frame)?)))
    }

    fn function2(
        &mut self,
        a: &Expr,
        b: &Expr,
        f: fn(Value, Value) -> Outcome<Value>,
    ) -> Option<Eval> {
        let a = self.expr(a)?;
        let b = self.expr(b)?;
        Some(Box::new(move |frame| {
            let (a, b) = (a(frame)?, b(frame)?);
            f(a, b)
        }))
    }

    /// `clamp(x, lo, hi)`: registered for three INTs and for three FLOATs only.
    fn clamp(&mut self, x: &Expr, lo: &Expr, hi: &Expr) -> Option<Eval> {
        let [x, lo, hi] = [self.expr(x)?, self.expr(lo)?, self.expr(hi)?];
        Some(Box::new(move |frame| {
            match (x(frame)?, lo(frame)?, hi(frame)?) {
                (Value::Int(x), Value::Int(lo), Value::Int(hi)) => {
                    Ok(Value::Int(helpers::clamp_int(x, lo, hi)))
                }
                (Value::Float(x), Value::Float(lo), Value::Float(hi)) => {
                    Ok(Value::Float(helpers::clamp_float(x, lo, hi)))
                }
                _ => Err(Fallback),
            }
        }))
    }

    fn has_goal(&mut self, account: &Expr, goal: &Expr) -> Option<Eval> {
        let account = self.map_arg(account)?;
        let goal = self.expr(goal)?;
        Some(Box::new(move |frame| {
            let Value::Str(goal) = goal(frame)? else {
                return Err(Fallback);
            };
            account.with(frame, |map| Ok(Value::Bool(helpers::has_goal(map, &goal))))
        }))
    }

    /// `get_or(map, key, default)`. Rhai checks the size of what a function returns.
    fn get_or(&mut self, map: &Expr, key: &Expr, default: &Expr) -> Option<Eval> {
        let map = self.map_arg(map)?;
        let key = self.expr(key)?;
        let default = self.expr(default)?;
        Some(Box::new(move |frame| {
            let Value::Str(key) = key(frame)? else {
                return Err(Fallback);
            };
            let default = default(frame)?;
            let value = map.with(frame, |map| match map.get(key.as_str()) {
                Some(value) => Value::of(value),
                None => Ok(default),
            })?;
            within_limits(frame.engine, value)
        }))
    }

    /// The map a helper takes by reference, read in place when it is a path.
    fn map_arg(&mut self, expr: &Expr) -> Option<MapArg> {
        let by_ref = matches!(expr, Expr::Variable(..));
        match self.path(expr) {
            Some(path) => {
                self.nodes += path.props.len() + 1;
                Some(MapArg::Path { path, by_ref })
            }
            None => self.expr(expr).map(MapArg::Value),
        }
    }
}

/// A helper's map argument (`has_goal(account, …)`, `get_or(account.attributes, …)`).
enum MapArg {
    Path {
        path: Path,
        /// Written as a variable: Rhai passes it by reference and, after the call, checks
        /// its size (all of it: `has_goal(account, …)` fails for an account whose strings
        /// add up to more than the string limit).
        by_ref: bool,
    },
    Value(Eval),
}

impl MapArg {
    fn with<R>(&self, frame: &mut Frame<'_>, f: impl FnOnce(&Map) -> Outcome<R>) -> Outcome<R> {
        match self {
            MapArg::Path { path, by_ref } => path.read(frame, |value| {
                let result = borrow_map(value, f)?;
                match *by_ref {
                    true => frame.engine.ensure_data_size_within_limits(value),
                    false => Ok(()),
                }
                .map_err(|_| Fallback)?;
                Ok(result)
            }),
            MapArg::Value(eval) => match eval(frame)? {
                Value::Map(map) => borrow_map(&map, f),
                _ => Err(Fallback),
            },
        }
    }
}

/// `value` if Rhai's data size limits allow a function to return it.
fn within_limits(engine: &Engine, value: Value) -> Outcome<Value> {
    let checked = match &value {
        Value::Str(s) => engine.ensure_data_size_within_limits(&Dynamic::from(s.clone())),
        Value::Array(d) | Value::Map(d) | Value::Other(d) => {
            engine.ensure_data_size_within_limits(d)
        }
        _ => Ok(()),
    };
    checked.map(|()| value).map_err(|_| Fallback)
}

/// The helpers take the map as `&mut Map`, which Rhai refuses for a constant: left to Rhai.
fn borrow_map<R>(value: &Dynamic, f: impl FnOnce(&Map) -> Outcome<R>) -> Outcome<R> {
    if value.is_shared() || value.is_read_only() {
        return Err(Fallback);
    }
    let map = value.read_lock::<Map>().ok_or(Fallback)?;
    f(&map)
}

fn constant(value: Value) -> Eval {
    Box::new(move |_| Ok(value.clone()))
}

fn sequence(mut evals: Vec<Eval>) -> Eval {
    match evals.len() {
        0 => constant(Value::Unit),
        1 => evals.remove(0),
        _ => Box::new(move |frame| {
            let mut last = Value::Unit;
            for eval in &evals {
                last = eval(frame)?;
            }
            Ok(last)
        }),
    }
}

/// A property chain `a.b.c` after a dot.
fn properties(expr: &Expr) -> Option<Vec<ImmutableString>> {
    match expr {
        Expr::Property(property, ..) => Some(vec![property.2.clone()]),
        Expr::Dot(dot, flags, ..) if !flags.intersects(ASTFlags::NEGATED) => {
            let Expr::Property(property, ..) = &dot.lhs else {
                return None;
            };
            let mut props = vec![property.2.clone()];
            props.extend(properties(&dot.rhs)?);
            Some(props)
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Cmp::Eq => ordering == Ordering::Equal,
            Cmp::Ne => ordering != Ordering::Equal,
            Cmp::Lt => ordering == Ordering::Less,
            Cmp::Le => ordering != Ordering::Greater,
            Cmp::Gt => ordering == Ordering::Greater,
            Cmp::Ge => ordering != Ordering::Less,
        }
    }
}

enum Binary {
    Arith(Arith),
    Cmp(Cmp),
}

impl Binary {
    fn of(token: &Token) -> Option<Self> {
        Some(match token {
            Token::Plus => Binary::Arith(Arith::Add),
            Token::Minus => Binary::Arith(Arith::Sub),
            Token::Multiply => Binary::Arith(Arith::Mul),
            Token::Divide => Binary::Arith(Arith::Div),
            Token::Modulo => Binary::Arith(Arith::Rem),
            Token::EqualsTo => Binary::Cmp(Cmp::Eq),
            Token::NotEqualsTo => Binary::Cmp(Cmp::Ne),
            Token::LessThan => Binary::Cmp(Cmp::Lt),
            Token::LessThanEqualsTo => Binary::Cmp(Cmp::Le),
            Token::GreaterThan => Binary::Cmp(Cmp::Gt),
            Token::GreaterThanEqualsTo => Binary::Cmp(Cmp::Ge),
            _ => return None,
        })
    }
}

/// Two numbers as Rhai's built-in operators take them: both INT, or both FLOAT (an INT
/// beside a FLOAT is converted with `as`).
enum Numbers {
    Ints(INT, INT),
    Floats(FLOAT, FLOAT),
}

fn numbers(x: &Value, y: &Value) -> Option<Numbers> {
    Some(match (x, y) {
        (Value::Int(a), Value::Int(b)) => Numbers::Ints(*a, *b),
        (Value::Float(a), Value::Float(b)) => Numbers::Floats(*a, *b),
        (Value::Int(a), Value::Float(b)) => Numbers::Floats(*a as FLOAT, *b),
        (Value::Float(a), Value::Int(b)) => Numbers::Floats(*a, *b as FLOAT),
        _ => return None,
    })
}

/// `+ - * / %` as Rhai's built-ins do them: checked INT arithmetic (an overflow or a division
/// by zero is Rhai's error), plain FLOAT arithmetic, string concatenation (within the
/// sandbox's string size) and removal, unit beside a string. Other mixes go to Rhai's
/// registered functions.
fn arithmetic(op: Arith, x: Value, y: Value) -> Outcome<Value> {
    if let Some(numbers) = numbers(&x, &y) {
        return match numbers {
            Numbers::Ints(a, b) => int_arithmetic(op, a, b).map(Value::Int),
            Numbers::Floats(a, b) => Ok(Value::Float(float_arithmetic(op, a, b))),
        };
    }
    match (op, x, y) {
        (Arith::Add, Value::Str(a), Value::Str(b)) => {
            if a.len() + b.len() > sandbox::MAX_STRING_SIZE {
                return Err(Fallback);
            }
            Ok(Value::Str(&a + &b))
        }
        (Arith::Sub, Value::Str(a), Value::Str(b)) => Ok(Value::Str(&a - &b)),
        (Arith::Add, Value::Unit, Value::Str(s)) | (Arith::Add, Value::Str(s), Value::Unit) => {
            Ok(Value::Str(s))
        }
        _ => Err(Fallback),
    }
}

fn int_arithmetic(op: Arith, a: INT, b: INT) -> Outcome<INT> {
    match op {
        Arith::Add => a.checked_add(b),
        Arith::Sub => a.checked_sub(b),
        Arith::Mul => a.checked_mul(b),
        Arith::Div => a.checked_div(b),
        Arith::Rem => a.checked_rem(b),
    }
    .ok_or(Fallback)
}

fn float_arithmetic(op: Arith, a: FLOAT, b: FLOAT) -> FLOAT {
    match op {
        Arith::Add => a + b,
        Arith::Sub => a - b,
        Arith::Mul => a * b,
        Arith::Div => a / b,
        Arith::Rem => a % b,
    }
}

/// Comparisons as Rhai's built-ins (and the registered `Timestamp` operators) do them.
/// Values of different types compare unequal; two arrays or two maps go to Rhai's registered
/// functions.
fn compare(op: Cmp, x: &Value, y: &Value) -> Outcome<bool> {
    if let Some(numbers) = numbers(x, y) {
        return Ok(match numbers {
            Numbers::Ints(a, b) => op.holds(a.cmp(&b)),
            Numbers::Floats(a, b) => float_compare(op, a, b),
        });
    }
    match (x, y) {
        (Value::Bool(a), Value::Bool(b)) => Ok(op.holds(a.cmp(b))),
        (Value::Str(a), Value::Str(b)) => Ok(op.holds(a.as_str().cmp(b.as_str()))),
        (Value::Time(a), Value::Time(b)) => Ok(op.holds(a.cmp(b))),
        // Rhai: `() == ()`, and nothing else, holds for two units.
        (Value::Unit, Value::Unit) => Ok(op == Cmp::Eq),
        (Value::Other(_), _)
        | (_, Value::Other(_))
        | (Value::Array(_), Value::Array(_))
        | (Value::Map(_), Value::Map(_)) => Err(Fallback),
        _ => Ok(op == Cmp::Ne),
    }
}

/// Rhai's float comparison (without the `unchecked` feature): relative to the larger
/// magnitude, values within `FLOAT::EPSILON` are equal. Written as Rhai writes it, so NaN and
/// underflow behave the same.
#[allow(clippy::float_cmp)]
fn float_compare(op: Cmp, x: FLOAT, y: FLOAT) -> bool {
    let max = if x * y == 0.0 {
        1.0
    } else {
        x.abs().max(y.abs())
    };
    if max == 0.0 {
        return matches!(op, Cmp::Eq | Cmp::Ge | Cmp::Le);
    }
    match op {
        Cmp::Eq => (x - y).abs() / max <= FLOAT::EPSILON,
        Cmp::Ne => (x - y).abs() / max > FLOAT::EPSILON,
        Cmp::Gt => (x - y) / max > FLOAT::EPSILON,
        Cmp::Ge => (x - y) / max > -FLOAT::EPSILON,
        Cmp::Lt => (y - x) / max > FLOAT::EPSILON,
        Cmp::Le => (y - x) / max > -FLOAT::EPSILON,
    }
}

/// Unary minus: Rhai negates INT (checked) and FLOAT itself.
fn negate(x: Value) -> Outcome<Value> {
    match x {
        Value::Int(i) => i.checked_neg().map(Value::Int).ok_or(Fallback),
        Value::Float(f) => Ok(Value::Float(-f)),
        _ => Err(Fallback),
    }
}

/// Unary plus: registered for numbers, which it returns unchanged.
fn plus(x: Value) -> Outcome<Value> {
    match x {
        Value::Int(_) | Value::Float(_) => Ok(x),
        _ => Err(Fallback),
    }
}

fn not(x: Value) -> Outcome<Value> {
    match x {
        Value::Bool(b) => Ok(Value::Bool(!b)),
        _ => Err(Fallback),
    }
}

/// `ratio(a, b)`: registered for every mix of INT and FLOAT; always a FLOAT.
fn ratio(a: Value, b: Value) -> Outcome<Value> {
    match numbers(&a, &b).ok_or(Fallback)? {
        Numbers::Ints(a, b) => Ok(Value::Float(helpers::ratio(a as FLOAT, b as FLOAT))),
        Numbers::Floats(a, b) => Ok(Value::Float(helpers::ratio(a, b))),
    }
}

/// Rhai's `max`: INT for two INTs, else FLOAT, as `if x >= y { x } else { y }` decides (NaN
/// included).
fn max(a: Value, b: Value) -> Outcome<Value> {
    Ok(match numbers(&a, &b).ok_or(Fallback)? {
        Numbers::Ints(a, b) => Value::Int(if a >= b { a } else { b }),
        Numbers::Floats(a, b) => Value::Float(if a >= b { a } else { b }),
    })
}

/// Rhai's `min`, as `if x <= y { x } else { y }` decides.
fn min(a: Value, b: Value) -> Outcome<Value> {
    Ok(match numbers(&a, &b).ok_or(Fallback)? {
        Numbers::Ints(a, b) => Value::Int(if a <= b { a } else { b }),
        Numbers::Floats(a, b) => Value::Float(if a <= b { a } else { b }),
    })
}

/// Rhai's `abs`: checked for INT (`abs(INT::MIN)` is its error).
fn abs(x: Value) -> Outcome<Value> {
    match x {
        Value::Int(i) => i.checked_abs().map(Value::Int).ok_or(Fallback),
        Value::Float(f) => Ok(Value::Float(f.abs())),
        _ => Err(Fallback),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path as FsPath;

    use chrono::{Duration, TimeZone};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rhai::Array;

    use super::*;
    use crate::definitions::Definitions;
    use crate::rules::{Bindings, EvalError, Form, Rule, RuleEngine, Variables};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 2, 9, 30, 0)
            .single()
            .expect("a valid time")
    }

    fn compile(engine: &RuleEngine, source: &str, form: Form) -> Rule {
        engine
            .compile("test", source, form, Variables::Account, None)
            .unwrap_or_else(|problems| panic!("`{source}` does not compile: {problems:?}"))
    }

    /// The native result (`None` when it falls back to Rhai) and Rhai's.
    fn both(
        engine: &RuleEngine,
        rule: &Rule,
        bindings: &mut Bindings,
    ) -> (Option<Dynamic>, Result<Dynamic, EvalError>) {
        let native = rule.native.as_ref().and_then(|native| {
            native
                .run(&engine.engine, &bindings.scope, bindings.now)
                .ok()
        });
        (native, engine.run_rhai(rule, bindings))
    }

    /// Same type and value; floats bit for bit, any NaN equal to any NaN.
    fn same(a: &Dynamic, b: &Dynamic) -> bool {
        if a.type_name() != b.type_name() {
            return false;
        }
        if let (Ok(x), Ok(y)) = (a.as_float(), b.as_float()) {
            return x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
        }
        if let (Some(x), Some(y)) = (a.read_lock::<Timestamp>(), b.read_lock::<Timestamp>()) {
            return *x == *y;
        }
        format!("{a:?}") == format!("{b:?}")
    }

    fn describe(value: &Dynamic) -> String {
        format!("{value}: {}", value.type_name())
    }

    fn map(entries: Vec<(&str, Dynamic)>) -> Dynamic {
        Dynamic::from_map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    fn time(days_before_now: i64) -> Dynamic {
        Dynamic::from(Timestamp(now() - Duration::days(days_before_now)))
    }

    fn sample_account() -> Dynamic {
        let goals: Array = vec!["safe_driving".into(), "compliance".into()];
        map(vec![
            ("arr", Dynamic::from_float(60_000.0)),
            ("plan", "enterprise".into()),
            ("goals", Dynamic::from_array(goals)),
            ("last_login_at", time(3)),
            ("contract_end", Dynamic::UNIT),
            ("scores", map(vec![("usage", Dynamic::from_float(72.5))])),
            (
                "attributes",
                map(vec![
                    ("seats", Dynamic::from_int(7)),
                    ("tenth", Dynamic::from_float(0.1)),
                    ("big", Dynamic::from_int(INT::MAX)),
                    ("least", Dynamic::from_int(INT::MIN)),
                    ("none", Dynamic::UNIT),
                ]),
            ),
        ])
    }

    /// The sample account with texts at and past Rhai's string limit (64 KiB: two halves
    /// make the longest string), and a map past its size limit.
    fn large_account() -> Dynamic {
        let mut account = sample_account();
        let many: Map = (0..=sandbox::MAX_COLLECTION_SIZE)
            .map(|i| (i.to_string().into(), Dynamic::from_int(1)))
            .collect();
        if let Some(mut account) = account.write_lock::<Map>()
            && let Some(attributes) = account.get_mut("attributes")
            && let Some(mut attributes) = attributes.write_lock::<Map>()
        {
            let half = "x".repeat(sandbox::MAX_STRING_SIZE / 2);
            let huge = "x".repeat(sandbox::MAX_STRING_SIZE + 1);
            attributes.insert("half".into(), half.into());
            attributes.insert("texts".into(), map(vec![("huge", huge.into())]));
            attributes.insert("many".into(), Dynamic::from_map(many));
        }
        account
    }

    /// What a rule (a script when it has a `;`) gives on `account`: the value and its type,
    /// or Rhai's error (`!` and the message); `native` says whether the closures decided.
    fn outcome(engine: &RuleEngine, source: &str, account: Dynamic) -> (String, bool) {
        let form = match source.contains(';') {
            true => Form::Script,
            false => Form::Expression,
        };
        let rule = compile(engine, source, form);
        assert!(rule.is_native(), "`{source}` is not compiled natively");
        let mut bindings = Bindings::new(account, now());
        let (native, rhai) = both(engine, &rule, &mut bindings);
        let via_run = engine.run(&rule, &mut bindings);
        assert_eq!(
            via_run.as_ref().map(describe),
            rhai.as_ref().map(describe),
            "`{source}`"
        );
        match (native, rhai) {
            (Some(native), Ok(rhai)) => {
                assert!(same(&native, &rhai), "`{source}`: {native:?} vs {rhai:?}");
                (describe(&native), true)
            }
            (Some(native), Err(error)) => panic!("`{source}`: native {native:?}, Rhai {error}"),
            (None, Ok(rhai)) => (describe(&rhai), false),
            (None, Err(error)) => (format!("! {}", error.reason), false),
        }
    }

    #[test]
    fn edge_cases_give_rhai_results() {
        let engine = RuleEngine::new();
        let decided = [
            (
                "account.scores.usage >= 70 && account.arr > 50000.0",
                "true: bool",
            ),
            ("account.arr + 1", "60001.0: f64"),
            ("account.attributes.seats / 2", "3: i64"),
            ("account.attributes.seats % -4", "3: i64"),
            ("account.attributes.seats * 1.5", "10.5: f64"),
            ("-account.attributes.seats", "-7: i64"),
            ("account.attributes.tenth + 0.2 == 0.3", "true: bool"),
            ("account.attributes.tenth * 3.0 > 0.3", "false: bool"),
            ("account.attributes.seats == 7.0", "true: bool"),
            ("account.attributes.seats == \"7\"", "false: bool"),
            ("account.attributes.seats < \"7\"", "false: bool"),
            ("account.attributes.seats != \"7\"", "true: bool"),
            ("account.attributes.none == 0", "false: bool"),
            ("account.attributes.none == ()", "true: bool"),
            ("account.attributes.none <= ()", "false: bool"),
            ("account.last_login_at < now", "true: bool"),
            ("account.last_login_at == 1", "false: bool"),
            ("account.goals == 1", "false: bool"),
            ("false && account.attributes.missing", "false: bool"),
            ("true || account.attributes.seats", "true: bool"),
            // Rhai's optimizer drops `&& true`: the AST, not the text, decides.
            ("account.attributes.seats && true", "7: i64"),
            ("if account.arr > 1.0 { 1 } else { 2.0 }", "1: i64"),
            ("if account.arr < 1.0 { 1 }", ": ()"),
            (
                "account.attributes.none ?? account.plan",
                "enterprise: string",
            ),
            ("days_since(account.last_login_at)", "3.0: f64"),
            ("days_until(account.last_login_at)", "-3.0: f64"),
            ("days_since(account.contract_end)", "inf: f64"),
            ("ratio(account.attributes.seats, 0)", "0.0: f64"),
            ("ratio(account.attributes.seats, 2)", "3.5: f64"),
            ("clamp(account.attributes.seats, 0, 5)", "5: i64"),
            ("clamp(account.arr, 0.0, 100.0)", "100.0: f64"),
            ("has_goal(account, \"safe_driving\")", "true: bool"),
            ("has_goal(account, \"cost_reduction\")", "false: bool"),
            ("get_or(account.attributes, \"nope\", 4)", "4: i64"),
            ("get_or(account.attributes, \"seats\", 4)", "7: i64"),
            ("max(1, account.attributes.seats)", "7: i64"),
            ("max(1, account.arr)", "60000.0: f64"),
            ("min(account.attributes.seats, 2.5)", "2.5: f64"),
            ("abs(-account.arr)", "60000.0: f64"),
            ("account.plan + \"!\"", "enterprise!: string"),
            ("account.plan - \"prise\"", "enter: string"),
            (
                "account.attributes.none + account.plan",
                "enterprise: string",
            ),
        ];
        for (source, expected) in decided {
            assert_eq!(
                outcome(&engine, source, sample_account()),
                (expected.to_string(), true),
                "`{source}`"
            );
        }
        // Errors, and type mixes left to Rhai's registered functions.
        let left_to_rhai = [
            ("account.attributes.big + 1", "! Addition overflow"),
            ("account.attributes.seats % 0", "! Modulo division by zero"),
            ("account.attributes.seats / 0", "! Division by zero"),
            ("-account.attributes.least", "! integer overflow"),
            ("abs(account.attributes.least)", "! Negation overflow"),
            ("account.attributes.missing", "! Property not found"),
            ("account.attributes.seats.x", "! Unknown property"),
            (
                "account.attributes.seats && account.arr > 1.0",
                "! Data type incorrect",
            ),
            ("!account.attributes.seats", "! Function not found"),
            ("if account.attributes.seats { 1 }", "! Data type incorrect"),
            (
                "clamp(account.attributes.seats, 0.0, 5.0)",
                "! Function not found",
            ),
            ("days_since(account.arr)", "! Function not found"),
            ("account.plan + 1", "enterprise1: string"),
            ("account.goals == account.goals", "true: bool"),
        ];
        for (source, expected) in left_to_rhai {
            let (got, native) = outcome(&engine, source, sample_account());
            assert!(!native, "`{source}` was decided natively: {got}");
            assert!(got.starts_with(expected), "`{source}`: {got}");
        }
    }

    /// Rhai checks the size of what a function returns, of a string it concatenates, and of
    /// a function's first argument when that is a variable (passed by reference): the whole
    /// account for `has_goal(account, …)`.
    #[test]
    fn data_size_limits_are_rhai_s() {
        let engine = RuleEngine::new();
        for (source, expected) in [
            (
                "account.attributes.half + account.attributes.half != \"\"",
                "true: bool",
            ),
            ("account.attributes.texts.huge != \"\"", "true: bool"),
            ("get_or(account.attributes, \"seats\", 0)", "7: i64"),
            ("has_goal(account.attributes, \"a\")", "false: bool"),
            (
                "let m = account.scores; get_or(m, \"usage\", 0)",
                "72.5: f64",
            ),
        ] {
            let got = outcome(&engine, source, large_account());
            assert_eq!(got, (expected.to_string(), true), "`{source}`");
        }
        for (source, expected) in [
            (
                "account.attributes.half + account.attributes.half + \"x\" != \"\"",
                "! stopped: Length of string",
            ),
            (
                "get_or(account.attributes.texts, \"huge\", \"\") != \"\"",
                "! stopped: Length of string",
            ),
            (
                "get_or(account.attributes, \"many\", 0) != 0",
                "! stopped: Size of object map",
            ),
            (
                "has_goal(account, \"safe_driving\")",
                "! stopped: Length of string",
            ),
            (
                "let a = account.attributes; get_or(a, \"seats\", 0)",
                "! stopped: Length of string",
            ),
        ] {
            let (got, native) = outcome(&engine, source, large_account());
            assert!(!native, "`{source}` was decided natively: {got}");
            assert!(got.starts_with(expected), "`{source}`: {got}");
        }
    }

    #[test]
    fn scripts_with_let_are_native() {
        let engine = RuleEngine::new();
        let source = "let m = account.attributes;\nlet x = m.seats * 2;\n\
                      if x > 10 { let y = x + 1; y } else { m.tenth }";
        let rule = compile(&engine, source, Form::Script);
        assert!(rule.is_native());
        let mut bindings = Bindings::new(sample_account(), now());
        let (native, rhai) = both(&engine, &rule, &mut bindings);
        let (native, rhai) = (
            native.expect("decided natively"),
            rhai.expect("Rhai result"),
        );
        assert!(same(&native, &rhai) && native.as_int() == Ok(15));

        // `let` of a missing property is Rhai's error even when the variable is never read.
        let rule = compile(
            &engine,
            "let m = account.attributes.missing; 1",
            Form::Script,
        );
        let (native, rhai) = both(&engine, &rule, &mut bindings);
        assert!(native.is_none() && rhai.is_err());

        for source in ["const c = 1; c", "let x = 1; x += 1; x", "fn f() { 1 } f()"] {
            assert!(
                !compile(&engine, source, Form::Script).is_native(),
                "{source}"
            );
        }
    }

    #[test]
    fn outside_the_subset_is_left_to_rhai() {
        let engine = RuleEngine::new();
        for source in [
            "account.goals.len()",
            "account.metrics[\"x\"]",
            "account.goals.contains(\"a\")",
            "`${account.plan}`",
            "'a' == account.plan",
            "[1, 2] == account.goals",
            "account.arr ** 2",
            "account?.arr",
            "\"a\" in account.goals",
        ] {
            assert!(
                !compile(&engine, source, Form::Expression).is_native(),
                "{source}"
            );
        }
    }

    /// Random rules over the compiled subset, written as source text: typed so that most
    /// evaluate, with a share of operands of any type so errors and mixes come up too.
    struct Gen {
        rng: StdRng,
        /// `let` variables in scope and their type (`Ty::Any` for an alias of a map).
        locals: Vec<(String, Ty)>,
        script: bool,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Ty {
        Num,
        Bool,
        Str,
        Time,
        Any,
    }

    const INTS: &[&str] = &[
        "0",
        "1",
        "2",
        "7",
        "-1",
        "70",
        "3037000500",
        "9223372036854775807",
        "-9223372036854775808",
    ];
    const FLOATS: &[&str] = &[
        "0.0", "-0.0", "0.1", "0.2", "0.3", "0.5", "1.0", "2.5", "70.0", "50000.0", "1e300",
    ];
    const STRINGS: &[&str] = &[
        "\"\"",
        "\"a\"",
        "\"ab\"",
        "\"b\"",
        "\"enterprise\"",
        "\"safe_driving\"",
    ];
    const NUM_FIELDS: &[&str] = &[
        "account.arr",
        "account.mrr",
        "account.scores.usage",
        "account.scores.health",
        "account.metrics.logins",
        "account.metrics.seats",
        "account.attributes.a",
        "account.attributes.nested.x",
    ];
    const MAPS: &[&str] = &[
        "account",
        "account.attributes",
        "account.metrics",
        "account.scores",
    ];
    const KEYS: &[&str] = &[
        "\"a\"",
        "\"b\"",
        "\"flag\"",
        "\"logins\"",
        "\"usage\"",
        "\"nested\"",
        "\"goals\"",
    ];

    impl Gen {
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.rng.random_range(0..items.len())]
        }

        fn chance(&mut self, p: f64) -> bool {
            self.rng.random_bool(p)
        }

        /// A rule: an expression, or a script with `let`s before one.
        fn rule(&mut self) -> (String, Form) {
            self.script = self.chance(0.25);
            if !self.script {
                let ty = self.pick(&[Ty::Num, Ty::Bool, Ty::Bool, Ty::Str, Ty::Any]);
                return (self.expr(ty, 4), Form::Expression);
            }
            let mut text = String::new();
            if self.chance(0.7) {
                let map = self.pick(&MAPS[1..]);
                text.push_str(&format!("let m = {map};\n"));
                self.locals.push(("m".into(), Ty::Any));
            }
            for (i, ty) in [Ty::Num, Ty::Bool, Ty::Str].into_iter().enumerate() {
                if self.chance(0.6) {
                    let init = self.expr(ty, 2);
                    text.push_str(&format!("let v{i} = {init};\n"));
                    self.locals.push((format!("v{i}"), ty));
                }
            }
            let ty = self.pick(&[Ty::Num, Ty::Bool, Ty::Any]);
            text.push_str(&self.expr(ty, 3));
            (text, Form::Script)
        }

        fn expr(&mut self, ty: Ty, depth: u32) -> String {
            if depth == 0 || self.chance(0.2) {
                return self.leaf(ty);
            }
            let ty = if self.chance(0.08) { Ty::Any } else { ty };
            let d = depth - 1;
            match ty {
                Ty::Num => self.number(d),
                Ty::Bool => self.boolean(d),
                Ty::Str => self.string(d),
                Ty::Time => self.time(d),
                Ty::Any => self.any(d),
            }
        }

        fn number(&mut self, d: u32) -> String {
            match self.rng.random_range(0..11) {
                0 | 1 => {
                    let op = self.pick(&["+", "-", "*", "/", "%"]);
                    format!("({} {op} {})", self.expr(Ty::Num, d), self.expr(Ty::Num, d))
                }
                2 => format!("-({})", self.expr(Ty::Num, d)),
                3 => format!("+({})", self.expr(Ty::Num, d)),
                4 => self.if_else(Ty::Num, d),
                5 => format!(
                    "ratio({}, {})",
                    self.expr(Ty::Num, d),
                    self.expr(Ty::Num, d)
                ),
                6 => format!(
                    "clamp({}, {}, {})",
                    self.expr(Ty::Num, d),
                    self.expr(Ty::Num, d),
                    self.expr(Ty::Num, d)
                ),
                7 => {
                    let f = self.pick(&["days_since", "days_until"]);
                    format!("{f}({})", self.expr(Ty::Time, d))
                }
                8 => {
                    let f = self.pick(&["max", "min"]);
                    format!("{f}({}, {})", self.expr(Ty::Num, d), self.expr(Ty::Num, d))
                }
                9 => format!("abs({})", self.expr(Ty::Num, d)),
                _ if self.script => {
                    let name = format!("z{}", self.locals.len());
                    let init = self.expr(Ty::Num, d);
                    self.locals.push((name.clone(), Ty::Num));
                    let body = self.expr(Ty::Num, d);
                    self.locals.pop();
                    format!("{{ let {name} = {init}; {body} }}")
                }
                _ => self.get_or(Ty::Num, d),
            }
        }

        fn boolean(&mut self, d: u32) -> String {
            match self.rng.random_range(0..10) {
                0..=3 => {
                    let ty = self.pick(&[Ty::Num, Ty::Num, Ty::Str, Ty::Time, Ty::Any]);
                    let op = self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                    format!("({} {op} {})", self.expr(ty, d), self.expr(ty, d))
                }
                4 | 5 => {
                    let op = self.pick(&[" && ", " || "]);
                    let n = self.rng.random_range(2..=3);
                    let operands: Vec<String> = (0..n).map(|_| self.expr(Ty::Bool, d)).collect();
                    format!("({})", operands.join(op))
                }
                6 => format!("!({})", self.expr(Ty::Bool, d)),
                7 => {
                    let map = self.map(&["account", "account.attributes"]);
                    format!("has_goal({map}, {})", self.expr(Ty::Str, d))
                }
                8 => self.if_else(Ty::Bool, d),
                _ => self.get_or(Ty::Bool, d),
            }
        }

        fn string(&mut self, d: u32) -> String {
            match self.rng.random_range(0..5) {
                0 | 1 => {
                    let op = self.pick(&["+", "-"]);
                    format!("({} {op} {})", self.expr(Ty::Str, d), self.expr(Ty::Str, d))
                }
                2 => self.if_else(Ty::Str, d),
                3 => format!("({} ?? {})", self.expr(Ty::Any, d), self.expr(Ty::Str, d)),
                _ => self.get_or(Ty::Str, d),
            }
        }

        fn time(&mut self, d: u32) -> String {
            match self.rng.random_range(0..2) {
                0 => self.if_else(Ty::Time, d),
                _ => format!("({} ?? {})", self.expr(Ty::Time, d), self.expr(Ty::Time, d)),
            }
        }

        fn any(&mut self, d: u32) -> String {
            let ty = self.pick(&[Ty::Num, Ty::Bool, Ty::Str, Ty::Time]);
            match self.rng.random_range(0..4) {
                0 => format!("({} ?? {})", self.expr(Ty::Any, d), self.expr(ty, d)),
                1 => format!("(if {} {{ {} }})", self.expr(Ty::Bool, d), self.expr(ty, d)),
                _ => self.expr(ty, d),
            }
        }

        fn if_else(&mut self, ty: Ty, d: u32) -> String {
            format!(
                "(if {} {{ {} }} else {{ {} }})",
                self.expr(Ty::Bool, d),
                self.expr(ty, d),
                self.expr(ty, d)
            )
        }

        /// One of `maps`, or the alias `m` when one is in scope.
        fn map(&mut self, maps: &[&'static str]) -> &'static str {
            let has_m = self.locals.iter().any(|(name, _)| name == "m");
            match has_m && self.chance(0.3) {
                true => "m",
                false => self.pick(maps),
            }
        }

        fn get_or(&mut self, ty: Ty, d: u32) -> String {
            let map = self.map(MAPS);
            let key = self.pick(KEYS);
            format!("get_or({map}, {key}, {})", self.expr(ty, d))
        }

        fn leaf(&mut self, ty: Ty) -> String {
            let locals: Vec<String> = self
                .locals
                .iter()
                .filter(|(_, t)| *t == ty || ty == Ty::Any)
                .map(|(name, _)| name.clone())
                .collect();
            if !locals.is_empty() && self.chance(0.3) {
                let i = self.rng.random_range(0..locals.len());
                return locals[i].clone();
            }
            let has_m = self.locals.iter().any(|(name, _)| name == "m");
            match ty {
                Ty::Num if has_m && self.chance(0.2) => {
                    self.pick(&["m.a", "m.logins", "m.usage"]).into()
                }
                Ty::Num => match self.rng.random_range(0..3) {
                    0 => self.pick(INTS).into(),
                    1 => self.pick(FLOATS).into(),
                    _ => self.pick(NUM_FIELDS).into(),
                },
                Ty::Bool => self
                    .pick(&["true", "false", "account.attributes.flag"])
                    .into(),
                Ty::Str => match self.rng.random_range(0..2) {
                    0 => self.pick(STRINGS).into(),
                    _ => self
                        .pick(&["account.plan", "account.status", "account.attributes.b"])
                        .into(),
                },
                Ty::Time => self
                    .pick(&["now", "account.contract_end", "account.last_login_at"])
                    .into(),
                Ty::Any => match self.rng.random_range(0..6) {
                    0 => self
                        .pick(&["()", "account.goals", "account.attributes.nested"])
                        .into(),
                    1 => self.leaf(Ty::Num),
                    2 => self.leaf(Ty::Bool),
                    3 => self.leaf(Ty::Str),
                    4 => self.leaf(Ty::Time),
                    _ => self
                        .pick(&["account.attributes.a", "account.attributes.b"])
                        .into(),
                },
            }
        }
    }

    /// Random data for the rules above: mostly the type a field usually has, sometimes any
    /// type, sometimes missing; numbers near the limits, zeros, NaN and infinities.
    fn random_value(rng: &mut StdRng, usual: Ty) -> Dynamic {
        let ty = if rng.random_bool(0.15) {
            [Ty::Num, Ty::Bool, Ty::Str, Ty::Time, Ty::Any][rng.random_range(0..5)]
        } else {
            usual
        };
        match ty {
            Ty::Num if rng.random_bool(0.3) => Dynamic::from_int(random_int(rng)),
            Ty::Num => Dynamic::from_float(random_float(rng)),
            Ty::Bool => Dynamic::from_bool(rng.random()),
            // Now and then a text near Rhai's string limit, which a concatenation, or a
            // helper given the whole account, takes past it.
            Ty::Str if rng.random_bool(0.02) => "x".repeat(40_000).into(),
            Ty::Str => {
                ["", "a", "ab", "b", "enterprise", "safe_driving"][rng.random_range(0..6)].into()
            }
            Ty::Time => match rng.random_bool(0.8) {
                true => Dynamic::from(Timestamp(
                    now() + Duration::seconds(rng.random_range(-40_000_000..40_000_000)),
                )),
                false => Dynamic::UNIT,
            },
            Ty::Any => match rng.random_range(0..3) {
                0 => Dynamic::UNIT,
                1 => random_goals(rng),
                _ => map(vec![("x", Dynamic::from_float(random_float(rng)))]),
            },
        }
    }

    fn random_int(rng: &mut StdRng) -> INT {
        match rng.random_range(0..4) {
            0 => [
                0,
                1,
                -1,
                7,
                70,
                INT::MAX,
                INT::MIN,
                INT::MAX - 1,
                3_037_000_500,
            ][rng.random_range(0..9)],
            1 => rng.random(),
            _ => rng.random_range(-100..100),
        }
    }

    fn random_float(rng: &mut StdRng) -> FLOAT {
        match rng.random_range(0..4) {
            0 => [
                0.0,
                -0.0,
                0.1,
                0.5,
                70.0,
                1e-300,
                1e300,
                FLOAT::MAX,
                FLOAT::INFINITY,
                FLOAT::NEG_INFINITY,
                FLOAT::NAN,
                9_007_199_254_740_993.0,
            ][rng.random_range(0..12)],
            1 => rng.random_range(-1e6..1e6),
            _ => rng.random_range(-100..100) as FLOAT / 2.0,
        }
    }

    fn random_goals(rng: &mut StdRng) -> Dynamic {
        let goals: Array = ["safe_driving", "compliance", "a", ""]
            .into_iter()
            .filter(|_| rng.random_bool(0.5))
            .map(Dynamic::from)
            .collect();
        Dynamic::from_array(goals)
    }

    fn random_map(rng: &mut StdRng, keys: &[(&str, Ty)]) -> Dynamic {
        let mut map = Map::new();
        for (key, ty) in keys {
            if rng.random_bool(0.9) {
                map.insert((*key).into(), random_value(rng, *ty));
            }
        }
        Dynamic::from_map(map)
    }

    fn random_account(rng: &mut StdRng) -> Dynamic {
        let mut account = random_map(
            rng,
            &[
                ("arr", Ty::Num),
                ("mrr", Ty::Num),
                ("plan", Ty::Str),
                ("status", Ty::Str),
                ("contract_end", Ty::Time),
                ("last_login_at", Ty::Time),
            ],
        );
        let nested = random_map(rng, &[("x", Ty::Num)]);
        let parts = [
            ("goals", random_goals(rng)),
            (
                "scores",
                random_map(rng, &[("usage", Ty::Num), ("health", Ty::Num)]),
            ),
            (
                "metrics",
                random_map(
                    rng,
                    &[("logins", Ty::Num), ("seats", Ty::Num), ("a", Ty::Num)],
                ),
            ),
            (
                "attributes",
                random_map(
                    rng,
                    &[
                        ("a", Ty::Num),
                        ("b", Ty::Str),
                        ("flag", Ty::Bool),
                        ("goals", Ty::Any),
                    ],
                ),
            ),
        ];
        if let Some(mut account) = account.write_lock::<Map>() {
            for (key, value) in parts {
                if rng.random_bool(0.95) {
                    account.insert(key.into(), value);
                }
            }
            if let Some(attributes) = account.get_mut("attributes")
                && let Some(mut attributes) = attributes.write_lock::<Map>()
            {
                attributes.insert("nested".into(), nested);
            }
        }
        account
    }

    #[derive(Debug, Default)]
    struct Tally {
        rejected: usize,
        native: usize,
        errors: usize,
        delegated: Vec<String>,
    }

    /// Native and Rhai agree on random rules and data: whenever the closures decide, the
    /// value is Rhai's (same type, same value, floats bit for bit); when they fall back,
    /// `run` gives exactly what Rhai gives. Set `NATIVE_RULES_SEED` to reproduce a run, and
    /// `NATIVE_RULES_CASES` for more cases.
    #[test]
    fn native_matches_rhai_on_random_rules() {
        let seed: u64 = std::env::var("NATIVE_RULES_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x5eed_7011);
        let cases: u64 = std::env::var("NATIVE_RULES_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4000);
        let engine = RuleEngine::new();
        let mut tally = Tally::default();
        for case in 0..cases {
            let case_seed = seed.wrapping_add(case);
            let mut rng = StdRng::seed_from_u64(case_seed);
            let account = random_account(&mut rng);
            let mut generator = Gen {
                rng,
                locals: Vec::new(),
                script: false,
            };
            let (source, form) = generator.rule();
            let context = format!(
                "NATIVE_RULES_SEED={case_seed} NATIVE_RULES_CASES=1\nrule:\n{source}\naccount: {account:?}"
            );
            check_case(&engine, &source, form, account, &context, &mut tally);
        }
        eprintln!(
            "{cases} random rules from seed {seed}: {} rejected by the parser, {} decided \
             natively, {} errors (Rhai's), {} left to Rhai's registered functions",
            tally.rejected,
            tally.native,
            tally.errors,
            tally.delegated.len()
        );
        for source in tally.delegated.iter().take(8) {
            eprintln!("  left to Rhai: {source}");
        }
        assert!(
            tally.rejected * 10 < cases as usize,
            "too many rejected: {tally:?}"
        );
        assert!(
            tally.native * 2 > cases as usize,
            "too few decided natively: {tally:?}"
        );
        assert!(
            tally.delegated.len() * 20 < cases as usize,
            "too many left to Rhai: {tally:?}"
        );
    }

    fn check_case(
        engine: &RuleEngine,
        source: &str,
        form: Form,
        account: Dynamic,
        context: &str,
        tally: &mut Tally,
    ) {
        // The parser itself rejects some operands of the wrong type (`true && 0.0`).
        let Ok(rule) = engine.compile("random", source, form, Variables::Account, None) else {
            tally.rejected += 1;
            return;
        };
        assert!(rule.is_native(), "not compiled natively\n{context}");
        let mut bindings = Bindings::new(account, now());
        let (native, rhai) = both(engine, &rule, &mut bindings);
        match (&native, &rhai) {
            (Some(native), Ok(rhai)) => {
                assert!(
                    same(native, rhai),
                    "native {native:?} ({}), Rhai {rhai:?} ({})\n{context}",
                    native.type_name(),
                    rhai.type_name()
                );
                tally.native += 1;
            }
            (Some(native), Err(error)) => panic!("native {native:?}, Rhai {error}\n{context}"),
            (None, Err(_)) => tally.errors += 1,
            (None, Ok(_)) => tally.delegated.push(source.replace('\n', " ")),
        }
        let via_run = engine.run(&rule, &mut bindings);
        match (&via_run, &rhai) {
            (Ok(a), Ok(b)) => assert!(same(a, b), "run {a:?}, Rhai {b:?}\n{context}"),
            (a, b) => assert_eq!(a.as_ref().err(), b.as_ref().err(), "{context}"),
        }
    }

    fn bundled() -> Definitions {
        let root = FsPath::new(env!("CARGO_MANIFEST_DIR"));
        let loaded = crate::definitions::load(&root.join("touchline.yaml"), FsPath::new(""));
        loaded
            .definitions
            .unwrap_or_else(|| panic!("the bundled project loads: {:?}", loaded.diagnostics))
    }

    /// Every rule of the bundled project — tier rules, score formulas and scripts, journey
    /// conditions — runs natively.
    #[test]
    fn bundled_rules_are_native() {
        let definitions = bundled();
        let rules: Vec<&Rule> = definitions.rules().collect();
        let left: Vec<&str> = rules
            .iter()
            .filter(|rule| !rule.is_native())
            .map(|rule| rule.name.as_str())
            .collect();
        eprintln!("{} bundled rules, left to Rhai: {left:?}", rules.len());
        assert!(rules.len() > 20);
        assert!(left.is_empty(), "bundled rules left to Rhai: {left:?}");
    }

    /// The bundled rules give Rhai's results on random accounts built the way the engine
    /// builds them (missing metrics, unknown scores, unset dates included).
    #[test]
    fn bundled_rules_match_rhai_on_random_accounts() {
        let definitions = bundled();
        let scores: Vec<&str> = definitions.scores.iter().map(|s| s.name.as_str()).collect();
        let metrics: BTreeSet<String> = definitions
            .rules()
            .flat_map(|rule| rule.reads())
            .filter_map(|path| path.strip_prefix("metrics.").map(str::to_string))
            .collect();
        let mut tally = Tally::default();
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let state = random_state(&mut rng, &metrics, &scores);
            let contact = crate::model::Contact {
                role: ["admin", "champion", "end_user"]
                    .get(rng.random_range(0..4))
                    .map(|r| r.to_string()),
                ..Default::default()
            };
            for rule in definitions.rules() {
                let mut bindings = crate::engine::context::bindings(&state, &scores, now());
                bindings.set_contact(crate::engine::context::contact_map(&contact));
                let context = format!("seed {seed}, rule {}\nstate: {state:?}", rule.name);
                let (native, rhai) = both(&definitions.engine, rule, &mut bindings);
                match (&native, &rhai) {
                    (Some(native), Ok(rhai)) => {
                        assert!(same(native, rhai), "{native:?} vs {rhai:?}\n{context}");
                        tally.native += 1;
                    }
                    (Some(native), Err(e)) => panic!("native {native:?}, Rhai {e}\n{context}"),
                    (None, Err(_)) => tally.errors += 1,
                    (None, Ok(_)) => tally.delegated.push(rule.name.clone()),
                }
            }
        }
        eprintln!("bundled rules on random accounts: {tally:?}");
        assert!(tally.delegated.is_empty());
        assert!(tally.native > tally.errors);
    }

    fn random_state(
        rng: &mut StdRng,
        metrics: &BTreeSet<String>,
        scores: &[&str],
    ) -> crate::model::AccountState {
        let days = |rng: &mut StdRng| now() + Duration::days(rng.random_range(-400..400));
        let mut state = crate::model::AccountState::default();
        let account = &mut state.account;
        account.status = ["active", "churned"][rng.random_range(0..2)].into();
        account.plan = ["enterprise", "pro"]
            .get(rng.random_range(0..3))
            .map(|p| p.to_string());
        account.arr = rng
            .random_bool(0.8)
            .then(|| rng.random_range(0.0..200_000.0));
        account.last_login_at = rng.random_bool(0.8).then(|| days(rng));
        account.contract_end = rng.random_bool(0.8).then(|| days(rng));
        for (key, values) in [
            ("renewal_status", ["committed", "open"]),
            ("expansion_opportunity", ["open", "closed"]),
        ] {
            if rng.random_bool(0.7) {
                let value = values[rng.random_range(0..2)];
                account.attributes.insert(key.into(), value.into());
            }
        }
        for metric in metrics {
            if rng.random_bool(0.9) {
                let value = match rng.random_range(0..3) {
                    0 => [0.0, 1.0, 2.0, 3.0, 0.5, 0.95, -100.0][rng.random_range(0..7)],
                    _ => rng.random_range(0.0..100.0),
                };
                state.metrics.insert(metric.clone(), value);
            }
        }
        for score in scores {
            if rng.random_bool(0.85) {
                state
                    .scores
                    .insert(score.to_string(), rng.random_range(0.0..100.0));
            } else {
                state
                    .unknown_scores
                    .insert(score.to_string(), "no data".into());
            }
        }
        state
    }

    /// Every bundled rule, and the example tier rule, runs natively on one account with all
    /// its data and gives Rhai's answer.
    #[test]
    fn bundled_rules_agree_with_rhai_on_a_full_account() {
        let definitions = bundled();
        let engine = &definitions.engine;
        let scores: Vec<&str> = definitions.scores.iter().map(|s| s.name.as_str()).collect();
        let mut state = crate::model::AccountState::default();
        state.account.status = "active".into();
        state.account.plan = Some("pro".into());
        state.account.arr = Some(60_000.0);
        state.account.goals = vec!["safe_driving".into()];
        state.account.last_login_at = Some(now() - Duration::days(3));
        state.account.contract_end = Some(now() + Duration::days(60));
        for key in ["renewal_status", "expansion_opportunity"] {
            state.account.attributes.insert(key.into(), "open".into());
        }
        for rule in definitions.rules() {
            for path in rule.reads() {
                if let Some(metric) = path.strip_prefix("metrics.") {
                    state.metrics.insert(metric.into(), 3.0);
                }
            }
        }
        for score in &scores {
            state.scores.insert(score.to_string(), 72.5);
        }
        let mut bindings = crate::engine::context::bindings(&state, &scores, now());
        let contact = crate::model::Contact {
            role: Some("admin".into()),
            ..Default::default()
        };
        bindings.set_contact(crate::engine::context::contact_map(&contact));
        let example = compile(
            engine,
            "account.scores.utilization >= 70 && account.arr > 50000.0",
            Form::Expression,
        );
        agrees("the example tier rule", engine, &example, &mut bindings);
        for rule in definitions.rules() {
            agrees(&rule.name, engine, rule, &mut bindings);
        }
    }

    fn agrees(what: &str, engine: &RuleEngine, rule: &Rule, bindings: &mut Bindings) {
        assert!(rule.is_native(), "{what} runs natively");
        let native = engine.run(rule, bindings).expect("native result");
        let rhai = engine.run_rhai(rule, bindings).expect("Rhai result");
        assert!(
            same(&native, &rhai),
            "{what}: {native:?} against Rhai's {rhai:?}"
        );
    }
}
