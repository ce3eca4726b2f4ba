//! Prometheus metrics for `touchline run` at `/metrics`: what the service did since it
//! started (passes, their duration, accounts evaluated, rule errors) and what the database
//! holds now (unknown scores, the outbox by state and channel, delivery latency,
//! enrollments by journey and step, held records).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::definitions::Definitions;
use crate::engine::PassReport;
use crate::store::{Store, StoreError};

/// Upper bounds of the pass-duration histogram, in seconds.
const PASS_BOUNDS: [f64; 8] = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0];
/// Upper bounds of the delivery-latency histogram, in seconds.
const LATENCY_BOUNDS: [f64; 9] = [
    0.1, 1.0, 10.0, 60.0, 300.0, 3600.0, 21_600.0, 86_400.0, 604_800.0,
];

/// What the service counts as it runs.
#[derive(Debug, Default)]
pub struct ServiceMetrics {
    passes: AtomicU64,
    evaluated: AtomicU64,
    rule_errors: AtomicU64,
    pass_micros: AtomicU64,
    pass_buckets: [AtomicU64; PASS_BOUNDS.len()],
}

impl ServiceMetrics {
    /// Counts one pass.
    pub fn record_pass(&self, report: &PassReport, took: Duration) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.evaluated
            .fetch_add(report.evaluated, Ordering::Relaxed);
        self.rule_errors
            .fetch_add(report.rule_errors, Ordering::Relaxed);
        self.pass_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let seconds = took.as_secs_f64();
        for (bound, bucket) in PASS_BOUNDS.iter().zip(&self.pass_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics in Prometheus' text format.
pub async fn render<S: Store>(
    metrics: &ServiceMetrics,
    store: &S,
    definitions: &Definitions,
) -> Result<String, StoreError> {
    let mut out = String::new();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    header(
        &mut out,
        "touchline_passes_total",
        "counter",
        "Engine passes run.",
    );
    let _ = writeln!(out, "touchline_passes_total {}", load(&metrics.passes));
    header(
        &mut out,
        "touchline_pass_duration_seconds",
        "histogram",
        "How long passes took.",
    );
    for (bound, bucket) in PASS_BOUNDS.iter().zip(&metrics.pass_buckets) {
        let _ = writeln!(
            out,
            "touchline_pass_duration_seconds_bucket{{le=\"{bound}\"}} {}",
            load(bucket)
        );
    }
    let _ = writeln!(
        out,
        "touchline_pass_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        load(&metrics.passes)
    );
    let _ = writeln!(
        out,
        "touchline_pass_duration_seconds_sum {}",
        load(&metrics.pass_micros) as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "touchline_pass_duration_seconds_count {}",
        load(&metrics.passes)
    );
    header(
        &mut out,
        "touchline_accounts_evaluated_total",
        "counter",
        "Account evaluations.",
    );
    let _ = writeln!(
        out,
        "touchline_accounts_evaluated_total {}",
        load(&metrics.evaluated)
    );
    header(
        &mut out,
        "touchline_rule_errors_total",
        "counter",
        "Rules that failed for an account.",
    );
    let _ = writeln!(
        out,
        "touchline_rule_errors_total {}",
        load(&metrics.rule_errors)
    );

    header(
        &mut out,
        "touchline_unknown_scores",
        "gauge",
        "Accounts whose score is unknown, per score.",
    );
    for count in store.unknown_score_counts().await? {
        let _ = writeln!(
            out,
            "touchline_unknown_scores{{score=\"{}\"}} {}",
            label(&count.label),
            count.count
        );
    }
    header(
        &mut out,
        "touchline_outbox_records",
        "gauge",
        "Outbox records by channel and state.",
    );
    for count in store.outbox_counts().await? {
        let (kind, status) = count.label.split_once(' ').unwrap_or((&count.label, ""));
        let _ = writeln!(
            out,
            "touchline_outbox_records{{channel=\"{}\",state=\"{}\"}} {}",
            label(kind),
            label(status),
            count.count
        );
    }
    header(
        &mut out,
        "touchline_delivery_latency_seconds",
        "histogram",
        "Time from an outbox record being written to its delivery, per channel.",
    );
    let bounds_ms: Vec<i64> = LATENCY_BOUNDS.iter().map(|s| (s * 1000.0) as i64).collect();
    for latency in store.delivery_latency(&bounds_ms).await? {
        let (kind, count, sum_ms) = (label(&latency.kind), latency.count, latency.sum_ms);
        for (bound, n) in LATENCY_BOUNDS.iter().zip(&latency.at_most) {
            let _ = writeln!(
                out,
                "touchline_delivery_latency_seconds_bucket{{channel=\"{kind}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "touchline_delivery_latency_seconds_bucket{{channel=\"{kind}\",le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "touchline_delivery_latency_seconds_sum{{channel=\"{kind}\"}} {}",
            sum_ms as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "touchline_delivery_latency_seconds_count{{channel=\"{kind}\"}} {count}"
        );
    }
    header(
        &mut out,
        "touchline_enrollments",
        "gauge",
        "Enrollments by journey, status and step.",
    );
    for count in store.enrollment_counts().await? {
        let mut parts = count.label.splitn(3, ' ');
        let (journey, status, index) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().and_then(|i| i.parse::<usize>().ok()),
        );
        let step = definitions
            .journeys
            .get(journey)
            .zip(index)
            .and_then(|(j, i)| j.steps.get(i))
            .map_or_else(|| "(end)".to_string(), |s| s.id.clone());
        let _ = writeln!(
            out,
            "touchline_enrollments{{journey=\"{}\",status=\"{}\",step=\"{}\"}} {}",
            label(journey),
            label(status),
            label(&step),
            count.count
        );
    }
    header(
        &mut out,
        "touchline_held_records",
        "gauge",
        "Outbox records held by the blast-radius guard, per journey.",
    );
    for hold in store.holds().await? {
        let _ = writeln!(
            out,
            "touchline_held_records{{journey=\"{}\"}} {}",
            label(&hold.journey_id),
            hold.records
        );
    }
    Ok(out)
}
