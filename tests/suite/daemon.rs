//! `touchline run` as a service: the HTTP API, passes after data arrives, reloading
//! definitions, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{Project, journey_with_steps};

struct Service {
    child: Child,
    address: String,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Service {
    fn start(project: &Project) -> Self {
        Self::start_with(project, &[])
    }

    fn start_with(project: &Project, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_touchline"))
            .args(["run", "--interval", "300ms", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(project.root())
            .env("TOUCHLINE_API_TOKEN", "s3cret")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("touchline run starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut service = Self {
            child,
            address: String::new(),
            log,
            seen: Vec::new(),
        };
        let line = service.wait_for("HTTP API listening on http://");
        service.address = line
            .rsplit("http://")
            .next()
            .expect("address")
            .trim()
            .to_string();
        service
    }

    /// Waits (up to 20 s) for a log line containing `text`.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with `{text}`; the log was:\n{}",
            self.seen.join("\n")
        );
    }

    /// Sends an HTTP/1.1 request; returns the status code and body.
    fn request(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        // The server may answer (413) and close before a huge body is fully written; what it
        // answered is still there to read.
        let _ = stream.write_all(request.as_bytes());
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        (status, body)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(project: &Project) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .arg("status")
        .current_dir(project.root())
        .output()
        .expect("status");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_service_takes_data_over_http_and_stops_cleanly() {
    let project = Project::new().journey(
        "hello",
        &journey_with_steps("  - email: { template: welcome }\n"),
    );
    let mut service = Service::start(&project);

    assert_eq!(
        service.request("GET", "/healthz", None, ""),
        (200, "ok".to_string())
    );
    let account = r#"{"name": "Acme", "arr": 12000, "goals": ["cost_reduction"]}"#;
    let (code, body) = service.request("PUT", "/v1/accounts/a1", None, account);
    assert_eq!(code, 401, "{body}");
    assert_eq!(body, r#"{"error":"missing or wrong bearer token"}"#);

    let bad = r#"[{"id": "a2", "name": "Beta", "arr": "lots"}, {"id": "a3"}]"#;
    let (code, body) = service.request("POST", "/v1/accounts", Some("s3cret"), bad);
    assert_eq!(code, 422);
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(body["error"], "2 of 2 records are bad; nothing was stored");
    assert_eq!(
        body["problems"][0],
        "item 0, column `arr`: `lots` is not a number"
    );
    assert_eq!(
        body["problems"][1],
        "item 1, column `name`: is required but empty"
    );
    let (code, body) = service.request("POST", "/v1/accounts", Some("s3cret"), "{not json");
    assert_eq!(code, 400, "{body}");
    let (code, _) = service.request(
        "PUT",
        "/v1/accounts/a1",
        Some("s3cret"),
        r#"{"id": "other", "name": "X"}"#,
    );
    assert_eq!(code, 400);
    let huge = format!("[{}]", vec![r#"{"id":"x","name":"y"}"#; 500_000].join(","));
    let (code, _) = service.request("POST", "/v1/accounts", Some("s3cret"), &huge);
    assert_eq!(code, 413, "bodies over the limit are refused");

    let (code, body) = service.request("PUT", "/v1/accounts/a1", Some("s3cret"), account);
    assert_eq!(
        (code, body.as_str()),
        (200, r#"{"changed":1,"received":1,"unchanged":0}"#)
    );
    service.wait_for("1 account evaluated");
    assert!(
        status(&project).starts_with("Accounts by tier (1 account)\n  tech "),
        "{}",
        status(&project)
    );

    // An event without `at` happened when it was received.
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (code, body) = service.request(
        "POST",
        "/v1/events",
        Some("s3cret"),
        r#"{"account_id": "a1", "name": "login"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let explain = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(["explain", "a1", "--format", "json"])
        .current_dir(project.root())
        .output()
        .expect("explain");
    let explain: serde_json::Value = serde_json::from_slice(&explain.stdout).expect("json");
    let login: chrono::DateTime<chrono::Utc> = explain["account"]["last_login_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a login time");
    assert!(
        login >= before && login <= chrono::Utc::now(),
        "{login} is the time of receipt"
    );

    // Prometheus metrics and the report page, behind the token.
    let (code, _) = service.request("GET", "/metrics", None, "");
    assert_eq!(code, 401);
    let (code, metrics) = service.request("GET", "/metrics", Some("s3cret"), "");
    assert_eq!(code, 200, "{metrics}");
    for expected in [
        "# TYPE touchline_passes_total counter",
        "# TYPE touchline_pass_duration_seconds histogram",
        "touchline_pass_duration_seconds_bucket{le=\"+Inf\"} ",
        "touchline_accounts_evaluated_total ",
        "touchline_rule_errors_total ",
        "# TYPE touchline_enrollments gauge",
        "# TYPE touchline_outbox_records gauge",
        "# TYPE touchline_delivery_latency_seconds histogram",
        "# TYPE touchline_held_records gauge",
    ] {
        assert!(metrics.contains(expected), "no `{expected}` in:\n{metrics}");
    }
    let passes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("touchline_passes_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a pass count");
    assert!(passes >= 1, "{metrics}");
    let (code, page) = service.request("GET", "/report", Some("s3cret"), "");
    assert_eq!(code, 200);
    assert!(page.contains("Does the programme work?"), "{page}");
    let (code, body) = service.request("GET", "/report?journey=helo", Some("s3cret"), "");
    assert_eq!(
        (code, body.as_str()),
        (400, "unknown journey `helo`; did you mean `hello`?")
    );

    // A broken edit is rejected and the previous definitions keep running; a fix is picked up.
    std::fs::write(project.path("journeys/hello.yaml"), "name: [broken\n").expect("write");
    service.wait_for("definitions changed but do not validate; the previous version keeps running");
    std::fs::write(
        project.path("journeys/hello.yaml"),
        journey_with_steps("  - wait: 1d\n"),
    )
    .expect("write");
    service.wait_for("definitions changed: reloaded 1 journey");

    let killed = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    service.wait_for("stopping");
    let exit = service.child.wait().expect("exit");
    assert!(exit.success(), "{exit:?}");
    assert!(
        !service.seen.iter().any(|line| line.contains('\u{1b}')),
        "a log written to a pipe has no colour codes"
    );
}

#[test]
fn the_log_can_be_json_for_log_shippers() {
    let project = Project::new();
    let service = Service::start_with(&project, &["--log-format", "json"]);
    let line = service.seen.last().expect("the line announcing the API");
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(entry["level"], "INFO", "{line}");
    assert!(
        entry["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("HTTP API listening on http://")),
        "{line}"
    );
}

/// The `List-Unsubscribe` link's path and query (`/unsubscribe?token=…`) in a mail.
fn unsubscribe_path(mail: &str) -> String {
    let line = mail
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe: <"))
        .unwrap_or_else(|| panic!("no List-Unsubscribe header in\n{mail}"));
    let url = line
        .trim_start_matches("List-Unsubscribe: <")
        .trim_end_matches('>');
    url.split_once("/unsubscribe")
        .map(|(_, rest)| format!("/unsubscribe{rest}"))
        .expect("an /unsubscribe link")
}

#[test]
fn unsubscribe_links_and_the_task_api_work_over_http() {
    let project = Project::new().journey(
        "hello",
        &journey_with_steps(
            "  - email: { template: welcome }\n  - task: { title: 'Call {{ contact.email }}', assign: owner }\n",
        ),
    );
    let mut service = Service::start(&project);
    let token = Some("s3cret");
    for (path, body) in [
        (
            "/v1/accounts",
            r#"{"id": "a1", "name": "Acme", "owner": "ana"}"#,
        ),
        (
            "/v1/contacts",
            r#"{"id": "c1", "account_id": "a1", "email": "Pat@Example.com"}"#,
        ),
        (
            "/v1/events",
            r#"{"account_id": "a1", "contact_id": "c1", "name": "account_created", "at": "2026-01-05T10:00:00Z"}"#,
        ),
    ] {
        let (code, answer) = service.request("POST", path, token, body);
        assert_eq!(code, 200, "{path}: {answer}");
    }
    service.wait_for("1 task created");

    // The step mail carries a one-click link; a GET shows a button, a POST unsubscribes.
    let mails: Vec<String> = std::fs::read_dir(project.path("outbox"))
        .expect("outbox")
        .map(|e| std::fs::read_to_string(e.expect("entry").path()).expect("mail"))
        .filter(|m| m.contains("To: Pat@Example.com"))
        .collect();
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let link = unsubscribe_path(&mails[0]);
    let (code, page) = service.request("GET", &link, None, "");
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("<form method=\"post\">"), "{page}");
    let (code, answer) = service.request("GET", "/v1/suppressions", token, "");
    assert_eq!(
        (code, answer.as_str()),
        (200, "[]"),
        "a GET changes nothing"
    );
    for _ in 0..2 {
        let (code, page) = service.request("POST", &link, None, "List-Unsubscribe=One-Click");
        assert_eq!(code, 200, "one-click unsubscribe is idempotent: {page}");
        assert!(page.contains("pat@example.com is unsubscribed"), "{page}");
    }
    let (_, answer) = service.request("GET", "/v1/suppressions", token, "");
    let list: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{answer}");
    assert_eq!(list[0]["email"], "pat@example.com");
    assert_eq!(list[0]["reason"], "unsubscribed");

    // Forged, altered and mangled tokens are refused.
    let (payload, signature) = link
        .trim_start_matches("/unsubscribe?token=")
        .split_once('.')
        .expect("token");
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("/unsubscribe?token={payload}.{flipped}{}", &signature[1..]);
    assert_eq!(service.request("POST", &forged, None, "").0, 403);
    let other = format!("/unsubscribe?token=Ym9iQGV4YW1wbGUuY29tCjE3NjM4ODAwMDA.{signature}");
    assert_eq!(service.request("POST", &other, None, "").0, 403);
    assert_eq!(
        service
            .request("POST", "/unsubscribe?token=junk", None, "")
            .0,
        400
    );
    assert_eq!(service.request("POST", "/unsubscribe", None, "").0, 400);
    // A genuine link, signed with this database's key, but 200 days old: expired.
    let key = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let store = touchline::store::open("sqlite://touchline.db", project.root())
                .await
                .expect("open");
            touchline::with_store!(store, |s| {
                touchline::store::Store::meta(&s, "unsubscribe_key")
                    .await
                    .expect("meta")
            })
        })
        .expect("a key");
    let old = touchline::delivery::unsubscribe::UnsubscribeKey::new(key.into_bytes()).token(
        "pat@example.com",
        chrono::Utc::now().timestamp() - 200 * 86_400,
    );
    let (code, page) = service.request("POST", &format!("/unsubscribe?token={old}"), None, "");
    assert_eq!(code, 410, "{page}");
    assert!(page.contains("expired"), "{page}");

    // Tasks: listed by CSM, reassigned, completed; bad requests get a reason.
    let (code, answer) = service.request("GET", "/v1/tasks?csm=ana", token, "");
    assert_eq!(code, 200, "{answer}");
    let tasks: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(tasks[0]["title"], "Call Pat@Example.com", "{answer}");
    assert_eq!(tasks[0]["reason"]["journey"], "hello");
    let id = tasks[0]["id"].as_i64().expect("id");
    assert_eq!(service.request("GET", "/v1/tasks", None, "").0, 401);
    let (code, answer) = service.request(
        "POST",
        &format!("/v1/tasks/{id}/reassign"),
        token,
        r#"{"csm": "bem"}"#,
    );
    assert_eq!(code, 422);
    assert!(answer.contains("no CSM `bem`"), "{answer}");
    assert!(answer.contains("ben"), "a suggestion: {answer}");
    let (code, _) = service.request(
        "POST",
        &format!("/v1/tasks/{id}/reassign"),
        token,
        r#"{"csm": "ben"}"#,
    );
    assert_eq!(code, 200);
    let (code, _) = service.request("POST", &format!("/v1/tasks/{id}/done"), token, "");
    assert_eq!(code, 200);
    assert_eq!(
        service.request("POST", "/v1/tasks/999/done", token, "").0,
        404
    );
    let (_, answer) = service.request("GET", "/v1/tasks?status=done&csm=ben", token, "");
    let done: serde_json::Value = serde_json::from_str(&answer).expect("json");
    assert_eq!(done[0]["id"].as_i64(), Some(id), "{answer}");
    assert_eq!(
        service
            .request("GET", "/v1/tasks?status=maybe", token, "")
            .0,
        400
    );
}
