//! A throwaway project folder to validate.

use std::path::{Path, PathBuf};

use touchline::definitions::{self, Loaded};
use touchline::diagnostic::Severity;

/// A small valid `touchline.yaml` that test journeys can refer to.
pub const CONFIG: &str = r#"timezone: Europe/Berlin
adoption_goals:
  cost_reduction: { name: Cut cost }
  safe_driving: { name: Safer drivers }
scores:
  implementation: { formula: 'account.metrics.setup * 1.0' }
  utilization: { script: scripts/utilization.rhai }
tiers:
  - { tier: high, when: 'account.arr >= 100000' }
  - { tier: tech }
csms:
  - { id: ana, name: Ana, email: ana@example.com }
  - { id: ben, name: Ben, email: ben@example.com }
pools:
  onboarding: [ana, ben]
webhooks:
  crm: { url: "https://crm.example.com/hook" }
"#;

/// A temporary project: `touchline.yaml`, a score script, a template, and journeys.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// A valid project with no journeys.
    pub fn new() -> Self {
        let project = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        project
            .file("touchline.yaml", CONFIG)
            .file(
                "scripts/utilization.rhai",
                "let m = account.metrics;\nratio(m.logins, 10) * 100.0\n",
            )
            .file("templates/welcome.yaml", "subject: Hi\ntext: Hello\n")
    }

    /// Writes a file (creating folders).
    pub fn file(self, relative: &str, text: &str) -> Self {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        self
    }

    /// Writes `journeys/<id>.yaml`.
    pub fn journey(self, id: &str, text: &str) -> Self {
        self.file(&format!("journeys/{id}.yaml"), text)
    }

    /// The project folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Path of a file in the project.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Loads and checks the project; diagnostics name files relative to the project.
    pub fn load(&self) -> Loaded {
        definitions::load(&self.path("touchline.yaml"), Path::new(""))
    }
}

/// `path:line:col: severity: message` for every diagnostic, plus `  help: …` lines.
pub fn summary(loaded: &Loaded) -> Vec<String> {
    let mut lines = Vec::new();
    for d in &loaded.diagnostics {
        let severity = if d.severity == Severity::Error {
            "error"
        } else {
            "warning"
        };
        lines.push(format!("{}: {severity}: {}", d.place(), d.message));
        if let Some(help) = &d.help {
            lines.push(format!("  help: {help}"));
        }
    }
    lines
}

/// Asserts that loading reported exactly these lines (see [`summary`]).
#[track_caller]
pub fn assert_diagnostics(loaded: &Loaded, expected: &[&str]) {
    let actual = summary(loaded);
    assert_eq!(
        actual,
        expected,
        "\nactual diagnostics:\n{}\n",
        actual.join("\n")
    );
}

/// A journey whose header is valid, with `steps` appended.
pub fn journey_with_steps(steps: &str) -> String {
    format!("name: Test\naudience: contacts\nentry: {{ event: account_created }}\nsteps:\n{steps}")
}

/// Runs the `touchline` binary in `dir` and returns what it printed; it must succeed.
pub fn touchline_ok(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("touchline runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}
