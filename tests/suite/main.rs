//! touchline's integration tests, in one test binary.

mod common;

mod cli;
mod examples;
mod hostile;
mod validate;
