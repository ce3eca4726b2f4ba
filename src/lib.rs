//! touchline: a rules-driven automation engine for customer-success tech-touch journeys.

/// Evaluation allocates and frees many small values per account on several threads at
/// once (read on one, evaluated on another); mimalloc keeps that cheap where the system
/// allocator serialises on its arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
pub mod http_state;
pub mod ingest;
pub mod journey_tests;
pub mod metrics;
pub mod model;
pub mod pages;
pub mod plan;
pub mod preview;
pub mod rules;
pub mod schema;
pub mod simulate;
pub mod stats;
pub mod store;
pub mod suggest;
pub mod task_desk;
pub mod text;
pub mod views;
pub mod yaml;
