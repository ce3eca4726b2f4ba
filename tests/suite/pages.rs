//! The CSM pages of `touchline run`, after the demo: sign in through the link in a notice
//! mail, see one's tasks, act on them with the forms, and find the result in `touchline
//! tasks`; refused links, forms without their token and other CSMs' tasks get a 4xx page.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::bundled::bundled_example;
use crate::common::touchline_ok as touchline;
use crate::service::{Service, link_in_notice, task_ids};

/// Plain HTTP/1.1 requests, as a browser without JavaScript sends them.
trait Requests {
    fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: &str,
    ) -> (u16, String, String);
}

impl Requests for Service {
    /// An HTTP/1.1 request: (status, headers, body).
    fn request(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        form: &str,
    ) -> (u16, String, String) {
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
            self.address,
            form.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }
}

/// Where a redirect points.
fn location(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("location: "))
        .expect("a redirect")
        .trim()
        .to_string()
}

fn session_cookie(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_string()
}

fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form token") + 19;
    page[at..].split('"').next().expect("value").to_string()
}

fn open_tasks(dir: &Path, csm: &str) -> Vec<i64> {
    task_ids(dir, csm, "open")
}

fn shown_tasks(page: &str) -> Vec<i64> {
    page.split("data-task=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

#[test]
fn a_csm_signs_in_from_a_notice_mail_and_works_the_inbox() {
    let dir = bundled_example();
    let root = dir.path();
    touchline(root, &["demo", "--days", "3"]);
    let service = Service::start(root);

    // The link in Ana's notice mail signs her in and shows exactly her open tasks.
    let link = link_in_notice(root, "Ana Ortiz");
    let (status, head, _) = service.request("GET", &link, None, "");
    assert_eq!(status, 303, "{head}");
    assert!(
        head.contains("HttpOnly") && head.contains("SameSite=Lax"),
        "{head}"
    );
    let cookie = session_cookie(&head);
    let (status, _, page) = service.request("GET", "/inbox", Some(&cookie), "");
    assert_eq!(status, 200, "{page}");
    let mut shown = shown_tasks(&page);
    let mut anas = open_tasks(root, "ana");
    shown.sort();
    anas.sort();
    assert!(!anas.is_empty());
    assert_eq!(
        shown, anas,
        "the inbox shows Ana's open tasks and no one else's"
    );
    let token = csrf(&page);

    // Done, with a note: once, even when the form is sent twice.
    let task = anas[0];
    for _ in 0..2 {
        let (status, head, _) = service.request(
            "POST",
            &format!("/tasks/{task}/done"),
            Some(&cookie),
            &format!("csrf={token}&note=called+the+admin"),
        );
        assert_eq!(status, 303, "{head}");
    }
    assert!(!open_tasks(root, "ana").contains(&task));
    let (_, _, page) = service.request("GET", "/inbox", Some(&cookie), "");
    assert!(!shown_tasks(&page).contains(&task));

    // Reassign: to a CSM without room, the page says why; to one with room, it moves.
    let other = anas[1];
    let options: Vec<(String, bool)> = page
        .split("<option value=\"")
        .skip(1)
        .filter_map(|rest| {
            let (value, tail) = rest.split_once('"')?;
            let disabled = tail.trim_start().starts_with("disabled");
            Some((value.to_string(), disabled))
        })
        .filter(|(value, _)| ["ana", "ben", "chloe", "dev"].contains(&value.as_str()))
        .collect();
    let reassign = |csm: &str| {
        service.request(
            "POST",
            &format!("/tasks/{other}/reassign"),
            Some(&cookie),
            &format!("csrf={token}&csm={csm}"),
        )
    };
    if let Some((full, _)) = options.iter().find(|(_, disabled)| *disabled) {
        let (status, head, _) = reassign(full);
        assert_eq!(status, 303, "{head}");
        let (_, _, page) = service.request("GET", &location(&head), Some(&cookie), "");
        assert!(page.contains("has no room"), "{page}");
        assert!(!open_tasks(root, full).contains(&other));
    }
    let (free, _) = options
        .iter()
        .find(|(value, disabled)| !disabled && value != "ana")
        .expect("a colleague with room");
    let (status, head, _) = reassign(free);
    assert_eq!(status, 303, "{head}");
    let (_, _, page) = service.request("GET", &location(&head), Some(&cookie), "");
    assert!(page.contains(&format!("Task {other} given to")), "{page}");
    // Only messages touchline signed show: a crafted address shows none.
    let (_, _, page) = service.request("GET", "/inbox?said=done%3AYou+won", Some(&cookie), "");
    assert!(!page.contains("You won"), "{page}");
    assert!(open_tasks(root, free).contains(&other));

    // A form without its token, a forged link and no session are refused with a page.
    let (status, _, page) = service.request(
        "POST",
        &format!("/tasks/{}/done", anas[2.min(anas.len() - 1)]),
        Some(&cookie),
        "note=x",
    );
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("This form is out of date"), "{page}");
    let forged = link.replace("token=", "token=x");
    let (status, _, page) = service.request("GET", &forged, None, "");
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not valid"), "{page}");
    let (status, _, page) = service.request("GET", "/inbox", None, "");
    assert_eq!(status, 401, "{page}");

    // Chloé's pools do not include Dev: she cannot act on his tasks.
    let chloe_link = touchline(
        root,
        &["--database", "sqlite://demo.db", "csm", "link", "chloe"],
    );
    let path = chloe_link
        .trim()
        .split_once("/signin")
        .map(|(_, rest)| format!("/signin{rest}"))
        .expect("link");
    let (_, head, _) = service.request("GET", &path, None, "");
    let chloe = session_cookie(&head);
    let (_, _, page) = service.request("GET", "/inbox", Some(&chloe), "");
    let chloe_token = csrf(&page);
    if let Some(devs) = open_tasks(root, "dev").first() {
        let (status, _, page) = service.request(
            "POST",
            &format!("/tasks/{devs}/done"),
            Some(&chloe),
            &format!("csrf={chloe_token}"),
        );
        assert_eq!(status, 403, "{page}");
        assert!(open_tasks(root, "dev").contains(devs));
    }

    // The account page tells the account's story.
    let account = page
        .split("href=\"/accounts/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string);
    let (_, _, inbox) = service.request("GET", "/inbox", Some(&cookie), "");
    let account = inbox
        .split("href=\"/accounts/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_string)
        .or(account)
        .expect("an account link");
    let (status, _, story) =
        service.request("GET", &format!("/accounts/{account}"), Some(&cookie), "");
    assert_eq!(status, 200, "{story}");
    for part in [
        "id=\"scores\"",
        "id=\"journeys\"",
        "What they received",
        "Tasks",
    ] {
        assert!(story.contains(part), "no {part} on the account page");
    }
}
