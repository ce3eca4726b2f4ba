//! `touchline run` on a project folder for tests that talk to its pages, and the sign-in
//! link a CSM's notice mail carries.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `touchline run` on the demo database, killed when dropped.
pub struct Service {
    child: Child,
    /// `host:port` it listens on.
    pub address: String,
}

impl Service {
    /// Starts the service in `dir` on the demo database, on a free port (API token
    /// `s3cret`).
    pub fn start(dir: &Path) -> Self {
        Self::start_with(
            dir,
            "sqlite://demo.db",
            &[("TOUCHLINE_API_TOKEN", "s3cret")],
        )
    }

    /// Starts the service in `dir` on `database`, on a free port, with `env` set.
    pub fn start_with(dir: &Path, database: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(["--database", database, "run"])
            .args(["--interval", "1h", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("touchline run starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut address = None;
        // Ready once it listens and its first pass is done (that pass may add tasks).
        for line in lines.by_ref() {
            let line = line.expect("log");
            if let Some((_, at)) = line.split_once("HTTP API listening on http://") {
                address = Some(at.trim().to_string());
            }
            if line.contains("caught up:") {
                break;
            }
        }
        let address = address.expect("the service listens");
        // Keep reading, so the service never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, address }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path and query of the sign-in link in a notice mail to `csm_name` in the demo's
/// outbox (quoted-printable undone).
pub fn link_in_notice(dir: &Path, csm_name: &str) -> String {
    for entry in std::fs::read_dir(dir.join("demo-outbox")).expect("outbox") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if !text.contains(&format!("To: \"{csm_name}\"")) {
            continue;
        }
        let decoded = text
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=");
        if let Some(at) = decoded.find("/signin?token=") {
            return decoded[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
        }
    }
    panic!("no notice mail with a sign-in link for {csm_name}");
}

/// The ids of `csm`'s tasks in `status` (`open`, `done`, `all`), as `touchline tasks list`
/// shows them on the demo database in `dir`.
pub fn task_ids(dir: &Path, csm: &str, status: &str) -> Vec<i64> {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(["--database", "sqlite://demo.db", "tasks", "list"])
        .args(["--csm", csm, "--status", status, "--format", "json"])
        .current_dir(dir)
        .output()
        .expect("touchline runs");
    assert!(output.status.success(), "touchline tasks list failed");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    let mut ids = Vec::new();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let (Some(id), Some(_)) =
                    (map.get("id").and_then(|v| v.as_i64()), map.get("title"))
                {
                    ids.push(id);
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    ids
}
