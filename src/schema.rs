//! JSON Schemas for editor completion, generated from the definitions types.

use schemars::{JsonSchema, Schema, generate::SchemaSettings};

use crate::definitions::compile::TemplateFile;
use crate::definitions::{Config, JourneyFile};
use crate::journey_tests::TestFile;

/// A schema touchline publishes, with the file name it is committed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// `journeys/<id>.yaml`
    Journey,
    /// `touchline.yaml`
    Config,
    /// `templates/<name>.yaml`
    Template,
    /// `journey-tests/<name>.yaml`
    JourneyTest,
}

impl SchemaKind {
    /// Every schema.
    pub const ALL: [SchemaKind; 4] = [
        SchemaKind::Journey,
        SchemaKind::Config,
        SchemaKind::Template,
        SchemaKind::JourneyTest,
    ];

    /// The committed file name, under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Journey => "journey.schema.json",
            SchemaKind::Config => "touchline.schema.json",
            SchemaKind::Template => "template.schema.json",
            SchemaKind::JourneyTest => "journey-test.schema.json",
        }
    }

    /// The schema.
    pub fn schema(self) -> Schema {
        match self {
            SchemaKind::Journey => generate::<JourneyFile>(),
            SchemaKind::Config => generate::<Config>(),
            SchemaKind::Template => generate::<TemplateFile>(),
            SchemaKind::JourneyTest => generate::<TestFile>(),
        }
    }

    /// The schema as pretty JSON with a trailing newline.
    pub fn to_json(self) -> String {
        let mut text = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        text.push('\n');
        text
    }
}

fn generate<T: JsonSchema>() -> Schema {
    SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<T>()
}
