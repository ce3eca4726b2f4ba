//! touchline's integration tests, in one test binary.

mod common;

mod cli;
mod daemon;
mod examples;
mod hostile;
mod validate;
