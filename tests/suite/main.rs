//! touchline's integration tests, in one test binary.

#[path = "../support/bundled.rs"]
mod bundled;
mod common;
#[path = "../support/service.rs"]
mod service;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../support/webhook_sink.rs"]
mod webhook_sink;

mod cli;
mod crash;
mod daemon;
mod examples;
mod hostile;
mod journey_tests;
mod pages;
mod plan;
mod report;
mod validate;
