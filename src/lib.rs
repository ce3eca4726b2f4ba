//! touchline: a rules-driven automation engine for customer-success tech-touch journeys.

pub mod diagnostic;
pub mod suggest;
pub mod yaml;
pub mod rules;
pub mod definitions;
pub mod cli;
pub mod schema;
