//! Pages in a real browser: the HTML report is opened in headless Chromium, which must
//! render its charts (SVG bars of a real width, a screenshot that is not blank) without
//! console errors and without fetching anything.
//!
//! Chromium comes from the distribution (`apt install chromium`; `.ci/run` installs it).
//! Without it these tests are reported as ignored, with a line saying so, never as passed;
//! with `TOUCHLINE_REQUIRE_BROWSER=1` (CI) a missing browser is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use libtest_mimic::{Arguments, Failed, Trial};

#[path = "../support/bundled.rs"]
mod bundled;
#[path = "../support/service.rs"]
mod service;
mod webdriver;
use bundled::bundled_example;

/// The headless browser, if installed.
fn chromium() -> Option<PathBuf> {
    installed(&["chromium", "chromium-browser", "google-chrome"])
}

/// The first of `names` on the PATH.
fn installed(names: &[&str]) -> Option<PathBuf> {
    names
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|dir| dir.join(name))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .find(|path| path.is_file())
}

fn touchline(dir: &Path, args: &[&str]) -> Result<String, Failed> {
    let output = Command::new(env!("CARGO_BIN_EXE_touchline"))
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("touchline does not run: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "touchline {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs headless Chromium on `page`: the DOM after load, and stderr (console messages).
fn browse(browser: &Path, page: &Path, extra: &[&str]) -> Result<(String, String), Failed> {
    let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .map_err(|e| format!("chromium does not run: {e}"))?;
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

fn the_html_report_renders_its_charts_in_chromium(browser: &Path) -> Result<(), Failed> {
    let dir = bundled_example();
    touchline(dir.path(), &["demo"])?;
    let page = dir.path().join("report.html");
    touchline(
        dir.path(),
        &[
            "--database",
            "sqlite://demo.db",
            "report",
            "--from",
            "2026-10-17",
            "--to",
            "2026-12-01",
            "--format",
            "html",
            "--out",
            "report.html",
        ],
    )?;
    let html = std::fs::read_to_string(&page).map_err(|e| e.to_string())?;
    // One self-contained file: nothing to fetch, nothing to run.
    for outside in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        if html.contains(outside) {
            return Err(format!("the report page reaches outside itself: `{outside}`").into());
        }
    }
    let (dom, log) = browse(browser, &page, &["--dump-dom"])?;
    if let Some(line) = log
        .lines()
        .find(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
    {
        return Err(format!("console message while rendering the report: {line}").into());
    }
    // Every bundled journey that had entries has its funnel, and its bars have width.
    for journey in [
        "churn-risk",
        "utilization-rescue",
        "upsell-after-onboarding",
    ] {
        if !dom.contains(&format!("id=\"journey-{journey}\"")) {
            return Err(format!("no funnel for {journey} in the rendered page").into());
        }
    }
    let funnels = dom.matches("class=\"funnel\"").count();
    let wide_bars = dom
        .split("<rect ")
        .skip(1)
        .filter_map(|rect| {
            rect.split("width=\"")
                .nth(1)?
                .split('"')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .filter(|width| *width > 1.0)
        .count();
    if funnels < 3 || wide_bars < 10 {
        return Err(format!(
            "the charts did not render: {funnels} funnels, {wide_bars} bars with width"
        )
        .into());
    }
    for chart in [
        "class=\"time-to-value\"",
        "class=\"tier-flow\"",
        "class=\"by-tier\"",
    ] {
        if !dom.contains(chart) {
            return Err(format!("no {chart} chart in the rendered page").into());
        }
    }
    // Which steps work: the utilization nudge is flagged against its holdout, and every
    // measured step has its dot; each score has its churn bands.
    let flagged = dom
        .split("<tr class=\"ineffective\">")
        .skip(1)
        .any(|row| row.contains("utilization-rescue/nudge"));
    let dots = dom.matches("class=\"effect\"").count();
    let bands = dom.matches("class=\"churn-bands\"").count();
    if !flagged || dots < 5 || bands < 4 {
        return Err(format!(
            "step effects and score validation did not render: nudge flagged {flagged}, {dots} effect dots, {bands} churn-band charts"
        )
        .into());
    }
    // A screenshot of the whole page that is not blank: many colours, not one; bars drawn,
    // and the churn bars and flagged step in red.
    let shot = dir.path().join("report.png");
    browse(
        browser,
        &page,
        &[
            "--hide-scrollbars",
            "--window-size=1200,9000",
            &format!("--screenshot={}", shot.display()),
        ],
    )?;
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).map_err(|e| format!("no screenshot: {e}"))?,
    ));
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).map_err(|e| e.to_string())?;
    // 8-bit samples: one byte per channel.
    let step = frame.color_type.samples();
    let data = &pixels[..frame.buffer_size()];
    let colours: std::collections::BTreeSet<&[u8]> = data.chunks(step).collect();
    let bar_blue = data
        .chunks(step)
        .filter(|p| p.len() >= 3 && p[0] == 0x2f && p[1] == 0x6f && p[2] == 0xb3)
        .count();
    let red = data
        .chunks(step)
        .filter(|p| p.len() >= 3 && p[0] == 0xb8 && p[1] == 0x32 && p[2] == 0x2a)
        .count();
    if colours.len() < 20 || bar_blue < 1000 || red < 1000 {
        return Err(format!(
            "the screenshot looks blank: {} colours, {bar_blue} bar pixels, {red} red pixels",
            colours.len()
        )
        .into());
    }
    Ok(())
}

/// `csm`'s tasks in `status`, by `touchline tasks`.
fn tasks_of(dir: &Path, csm: &str, status: &str) -> Result<Vec<i64>, Failed> {
    Ok(service::task_ids(dir, csm, status))
}

/// A CSM follows the link in a notice mail, sees their tasks, marks one done with a note,
/// hands one to a colleague with room and snoozes one — clicking the pages' own forms in
/// Chromium — and `touchline tasks` shows each result.
fn a_csm_works_the_inbox_in_chromium(chromium: &Path, chromedriver: &Path) -> Result<(), Failed> {
    let dir = bundled_example();
    let root = dir.path();
    touchline(root, &["demo"])?;
    let service = service::Service::start(root);
    let browser = webdriver::Browser::start(chromedriver, chromium)?;
    let base = format!("http://{}", service.address);
    browser.open(&format!(
        "{base}{}",
        service::link_in_notice(root, "Ana Ortiz")
    ))?;
    if !browser.url()?.ends_with("/inbox") {
        return Err(format!("the sign-in link led to {}", browser.url()?).into());
    }
    let shown: Vec<i64> = browser
        .attributes("section.task", "data-task")?
        .iter()
        .filter_map(|id| id.parse().ok())
        .collect();
    let mut anas = tasks_of(root, "ana", "open")?;
    let mut sorted = shown.clone();
    sorted.sort();
    anas.sort();
    if sorted != anas || shown.len() < 3 {
        return Err(format!("the inbox shows {shown:?}; Ana's open tasks are {anas:?}").into());
    }
    let (done, handed, snoozed) = (shown[0], shown[1], shown[2]);

    browser.type_into(
        &format!("#task-{done} form.done input[name=note]"),
        "called the admin",
    )?;
    browser.click(&format!("#task-{done} form.done button"))?;
    let said = format!("Task {done} marked done.");
    if !browser.source_with(&said)?.contains(&said) {
        return Err("no word that the task is done".into());
    }
    if !tasks_of(root, "ana", "done")?.contains(&done) {
        return Err(format!("touchline tasks does not show task {done} done").into());
    }

    let free = browser.attributes(
        &format!("#task-{handed} form.reassign option:not([disabled])"),
        "value",
    )?;
    let to = free.first().ok_or("nobody with room to hand the task to")?;
    browser.click(&format!(
        "#task-{handed} form.reassign option[value=\"{to}\"]"
    ))?;
    browser.click(&format!("#task-{handed} form.reassign button"))?;
    let said = format!("Task {handed} given to");
    if !browser.source_with(&said)?.contains(&said) {
        return Err("no word that the task was handed over".into());
    }
    if !tasks_of(root, to, "open")?.contains(&handed) {
        return Err(format!("touchline tasks does not show task {handed} with {to}").into());
    }

    browser.set_value(
        &format!("#task-{snoozed} form.snooze input[name=until]"),
        "2030-01-07",
    )?;
    browser.click(&format!("#task-{snoozed} form.snooze button"))?;
    let said = format!("Task {snoozed} snoozed until 2030-01-07");
    let page = browser.source_with(&said)?;
    if !page.contains(&said) || page.contains(&format!("id=\"task-{snoozed}\"")) {
        let flash = page
            .split("role=\"status\">")
            .nth(1)
            .or_else(|| page.split("role=\"alert\">").nth(1))
            .and_then(|rest| rest.split('<').next())
            .unwrap_or("(no message)");
        return Err(format!("the snoozed task is still in the way: {flash}").into());
    }

    // The account pages of her tasks tell each account's story; after two weeks of the
    // demo, the scores of at least one have moved enough to draw.
    let accounts = browser.attributes("section.task a[href^=\"/accounts/\"]", "href")?;
    let mut charts = 0;
    for account in accounts.iter().take(10) {
        browser.open(&format!("{base}{}", account.trim_start_matches(&base)))?;
        let story = browser.source()?;
        for part in ["id=\"scores\"", "id=\"journeys\"", "What they received"] {
            if !story.contains(part) {
                return Err(format!("no {part} on the page of {account}").into());
            }
        }
        charts += browser
            .attributes("svg.sparkline polyline", "points")?
            .iter()
            .filter(|points| points.split_whitespace().count() >= 2)
            .count();
    }
    if charts == 0 {
        return Err("no score history chart on any of Ana's accounts".into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let browser = chromium();
    let required = std::env::var_os("TOUCHLINE_REQUIRE_BROWSER").is_some_and(|v| v != "0");
    if browser.is_none() {
        if required {
            eprintln!(
                "TOUCHLINE_REQUIRE_BROWSER is set but no chromium is installed (apt install chromium)"
            );
            std::process::exit(1);
        }
        eprintln!("browser suite not run: chromium is not installed (its cases show as ignored)");
    }
    let driver = installed(&["chromedriver"]);
    if browser.is_some() && driver.is_none() && required {
        eprintln!(
            "TOUCHLINE_REQUIRE_BROWSER is set but chromedriver is not installed (apt install chromium-driver)"
        );
        std::process::exit(1);
    }
    let pages_ready = browser.is_some() && driver.is_some();
    if browser.is_some() && driver.is_none() {
        eprintln!(
            "page-driving cases not run: chromedriver is not installed (they show as ignored)"
        );
    }
    let trials = vec![
        Trial::test("a_csm_works_the_inbox_in_chromium", {
            let (browser, driver) = (browser.clone(), driver.clone());
            move || match (&browser, &driver) {
                (Some(browser), Some(driver)) => a_csm_works_the_inbox_in_chromium(browser, driver),
                _ => Ok(()),
            }
        })
        .with_ignored_flag(!pages_ready),
        Trial::test("the_html_report_renders_its_charts_in_chromium", {
            let browser = browser.clone();
            move || match &browser {
                Some(browser) => the_html_report_renders_its_charts_in_chromium(browser),
                None => Ok(()),
            }
        })
        .with_ignored_flag(browser.is_none()),
    ];
    libtest_mimic::run(&args, trials).exit();
}
