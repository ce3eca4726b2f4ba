//! touchline: a rules-driven automation engine for customer-success tech-touch journeys.

pub mod api;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod customer_model;
pub mod daemon;
pub mod definitions;
pub mod delivery;
pub mod diagnostic;
pub mod engine;
pub mod generate;
pub mod ingest;
pub mod journey_tests;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod preview;
pub mod rules;
pub mod schema;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod suggest;
pub mod text;
pub mod views;
pub mod yaml;
