//! One module per command, in the manner of cargo's `commands/`: each owns its arguments (a
//! clap `Args` struct) and its `run`. `cli` only parses and dispatches; what commands show
//! comes from [`crate::views`], printed as text or, with `--format json`, as JSON.

pub mod csm;
pub mod deliveries;
pub mod demo;
pub mod explain;
pub mod generate;
pub mod hold;
pub mod import;
pub mod init;
pub mod plan;
pub mod preview;
pub mod report;
pub mod run;
pub mod schema;
pub mod status;
pub mod suppress;
pub mod tasks;
pub mod test;
pub mod tick;
pub mod validate;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use serde::Serialize;

use crate::clock::{Clock, parse_time};
use crate::definitions::{self, CONFIG_FILE, Definitions};
use crate::store::{self, AnyStore};

/// What every command on a project needs.
#[derive(Debug)]
pub struct Context {
    /// The project's definitions.
    pub definitions: Arc<Definitions>,
    /// The project's `touchline.yaml`.
    pub config_path: PathBuf,
    /// The project folder.
    pub root: PathBuf,
    /// `--database`, overriding `touchline.yaml`.
    pub database: Option<String>,
    /// Where "now" comes from when a command is not told a time.
    pub clock: Arc<dyn Clock>,
}

impl Context {
    /// The database URL: `--database`, else `database:` in touchline.yaml, else the default.
    pub fn database_url(&self) -> String {
        self.database
            .clone()
            .or_else(|| self.definitions.config.database.clone())
            .unwrap_or_else(|| store::DEFAULT_DATABASE_URL.to_string())
    }

    /// Opens the project's database.
    pub async fn open_store(&self) -> Result<AnyStore, String> {
        self.open(&self.database_url()).await
    }

    /// Opens the database at `url` (migrated).
    pub async fn open(&self, url: &str) -> Result<AnyStore, String> {
        store::open(url, &self.root)
            .await
            .map_err(|e| format!("cannot open {url}: {e}"))
    }

    /// `text` as a time, or the clock's now.
    pub fn time_or_now(&self, text: Option<&str>) -> Result<DateTime<Utc>, String> {
        text.map_or_else(|| Ok(self.clock.now()), parse_time)
    }
}

/// How a command that lists or shows something prints it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    #[default]
    Text,
    /// One JSON document (the view's documented shape), for scripts and dashboards.
    Json,
}

/// Prints a view as text (`text` renders it) or as JSON.
pub fn print<V: Serialize + ?Sized>(
    out: &mut dyn Write,
    format: Format,
    view: &V,
    text: impl FnOnce(&V) -> String,
) -> Result<(), String> {
    match format {
        Format::Text => write!(out, "{}", text(view)).map_err(io),
        Format::Json => {
            let json = serde_json::to_string_pretty(view).map_err(|e| e.to_string())?;
            writeln!(out, "{json}").map_err(io)
        }
    }
}

/// An output error as a message.
pub fn io(error: std::io::Error) -> String {
    error.to_string()
}

/// Where the project is, and how to show its paths to the user.
#[derive(Debug)]
pub struct Project {
    /// The project's `touchline.yaml`, absolute.
    pub config_path: PathBuf,
    /// The project folder as seen from where the command ran, for printed paths.
    pub display_root: PathBuf,
}

impl Project {
    /// Finds the project: `--config PATH`, else touchline.yaml in the current folder or
    /// the nearest folder above it (as cargo finds Cargo.toml).
    pub fn locate(config: Option<&Path>) -> Result<Self, String> {
        let cwd =
            std::env::current_dir().map_err(|e| format!("cannot read the current folder: {e}"))?;
        let config_path = match config {
            Some(path) if path.is_dir() => path.join(CONFIG_FILE),
            Some(path) => path.to_path_buf(),
            None => definitions::find_root(&cwd).map(|root| root.join(CONFIG_FILE)).ok_or_else(|| {
                format!("no {CONFIG_FILE} in {} or any folder above it; run touchline in a project folder or pass --config PATH", cwd.display())
            })?,
        };
        if !config_path.is_file() {
            return Err(format!("{} does not exist", config_path.display()));
        }
        let absolute = if config_path.is_absolute() {
            config_path.clone()
        } else {
            cwd.join(&config_path)
        };
        let root = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
        let display_root = relative_to(&root, &cwd);
        Ok(Self {
            config_path: absolute,
            display_root,
        })
    }
}

/// `path` as seen from `base` (`../x` when `path` is above), so printed paths open from
/// where the command ran.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let (path_parts, base_parts): (Vec<_>, Vec<_>) =
        (path.components().collect(), base.components().collect());
    let common = path_parts
        .iter()
        .zip(&base_parts)
        .take_while(|(a, b)| a == b)
        .count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut relative: PathBuf = base_parts[common..].iter().map(|_| "..").collect();
    relative.extend(&path_parts[common..]);
    relative
}
