//! The crash test on the embedded SQLite database, one engine (see `tests/support/crash.rs`;
//! the PostgreSQL run, with two engines side by side, is in the store suite).

#[path = "../support/crash.rs"]
mod scenario;

#[test]
fn sigkill_during_delivery_loses_nothing_and_doubles_nothing() {
    scenario::run("sqlite://touchline.db", 1);
}
