//! `touchline schema [KIND] [--out DIR]`: JSON Schemas of the definitions files, for editors.

use std::io::Write;
use std::path::PathBuf;

use super::io;
use crate::schema::SchemaKind;

/// Print the JSON Schema of a definitions file, for editor completion.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which schema (default: all, as one JSON object keyed by file name).
    kind: Option<SchemaKind>,
    /// Write every schema into this folder instead of printing.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `schema`.
pub fn run(args: Args, out: &mut dyn Write) -> Result<i32, String> {
    match (args.kind, args.out) {
        (kind, Some(dir)) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for kind in kind.map_or(SchemaKind::ALL.to_vec(), |k| vec![k]) {
                let file = dir.join(kind.file_name());
                std::fs::write(&file, kind.to_json())
                    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
                writeln!(out, "wrote {}", file.display()).map_err(io)?;
            }
        }
        (Some(kind), None) => write!(out, "{}", kind.to_json()).map_err(io)?,
        (None, None) => {
            let all: serde_json::Map<String, serde_json::Value> = SchemaKind::ALL
                .iter()
                .map(|k| (k.file_name().to_string(), k.schema().to_value()))
                .collect();
            let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
            writeln!(out, "{text}").map_err(io)?;
        }
    }
    Ok(0)
}
