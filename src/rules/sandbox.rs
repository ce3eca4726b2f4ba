//! The one Rhai engine configuration every rule and formula runs in.
//!
//! Raw engine plus only the packages rules need (no time package: rules read the injected
//! `now`), no module loading, no `eval`, no printing; limits on operations, nesting, call
//! depth and data sizes, a wall-clock budget per evaluation, strict variables, and missing
//! map properties as errors.

use std::cell::Cell;
use std::time::{Duration, Instant};

use rhai::packages::{
    BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage,
    MoreStringPackage, Package,
};
use rhai::{Dynamic, Engine, OptimizationLevel};

use super::helpers;

/// Most Rhai operations one evaluation may perform.
pub const MAX_OPERATIONS: u64 = 200_000;
/// Deepest expression nesting (top level, inside functions).
pub const MAX_EXPR_DEPTH: (usize, usize) = (64, 32);
/// Deepest function-call nesting.
pub const MAX_CALL_LEVELS: usize = 24;
/// Longest string a rule may build.
pub const MAX_STRING_SIZE: usize = 64 * 1024;
/// Largest array or map a rule may build.
pub const MAX_COLLECTION_SIZE: usize = 10_000;
/// Wall-clock budget of one evaluation.
pub const TIME_BUDGET: Duration = Duration::from_millis(50);

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Marks the start of one evaluation on this thread; the engine stops it past the budget.
pub fn start_budget() {
    DEADLINE.with(|d| d.set(Some(Instant::now() + TIME_BUDGET)));
}

/// The value a terminated evaluation carries, so the error can say why it stopped.
pub const OUT_OF_TIME: &str = "out of time";

/// Builds the sandboxed engine.
pub fn engine() -> Engine {
    let mut engine = Engine::new_raw();
    for package in [
        CorePackage::new().as_shared_module(),
        LogicPackage::new().as_shared_module(),
        BasicMathPackage::new().as_shared_module(),
        BasicArrayPackage::new().as_shared_module(),
        BasicMapPackage::new().as_shared_module(),
        MoreStringPackage::new().as_shared_module(),
    ] {
        engine.register_global_module(package);
    }
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_expr_depths(MAX_EXPR_DEPTH.0, MAX_EXPR_DEPTH.1)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_COLLECTION_SIZE)
        .set_max_map_size(MAX_COLLECTION_SIZE)
        .set_max_variables(256)
        .set_max_functions(256)
        .set_max_modules(0)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        // Rules are compiled against placeholder variables; never fold them into constants.
        .set_optimization_level(OptimizationLevel::Simple)
        .disable_symbol("eval")
        .on_print(|_| {})
        .on_debug(|_, _, _| {})
        .on_progress(|operations| {
            // Reading the clock costs ~25 ns; every 8th operation keeps the overshoot small
            // even when single operations are expensive (large string copies).
            if operations % 8 != 0 {
                return None;
            }
            let expired =
                DEADLINE.with(|d| d.get().is_some_and(|deadline| Instant::now() > deadline));
            expired.then(|| Dynamic::from(OUT_OF_TIME))
        });
    helpers::register(&mut engine);
    engine
}
