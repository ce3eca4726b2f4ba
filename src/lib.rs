//! touchline: a rules-driven automation engine for customer-success tech-touch journeys.

pub mod cli;
pub mod definitions;
pub mod diagnostic;
pub mod rules;
pub mod schema;
pub mod suggest;
pub mod yaml;
