//! The store and engine suite: every case runs on SQLite (a real file) and on PostgreSQL.
//!
//! PostgreSQL cases need `TEST_DATABASE_URL` (CI sets it). Without it they are reported as
//! ignored, with a line saying so, never as passed.

mod contract;
#[path = "../support/crash.rs"]
mod crash;
mod delivery;
mod engine;
mod fixture;
mod report;
#[path = "../support/smtp_sink.rs"]
mod smtp_sink;
#[path = "../support/webhook_sink.rs"]
mod webhook_sink;
mod webhooks;

use std::future::Future;

use libtest_mimic::{Arguments, Failed, Trial};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use touchline::store::{PostgresStore, SqliteStore};

/// A fresh SQLite store in a temporary folder (kept alive by the returned guard).
pub async fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("touchline.db").display());
    match touchline::store::open(&url, dir.path())
        .await
        .expect("open sqlite")
    {
        touchline::store::AnyStore::Sqlite(store) => (store, dir),
        touchline::store::AnyStore::Postgres(_) => unreachable!("a sqlite URL opens SQLite"),
    }
}

/// A fresh PostgreSQL store in a schema of its own, dropped afterwards.
#[derive(Debug)]
pub struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    async fn create(url: &str) -> Result<(PostgresStore, PgSchema), Failed> {
        let schema = format!("touchline_test_{}_{}", std::process::id(), rand_suffix());
        let mut admin = PgConnection::connect(url)
            .await
            .map_err(|e| format!("cannot reach PostgreSQL at {url}: {e}"))?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .map_err(|e| e.to_string())?;
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| e.to_string())?;
        let options = options.options([("search_path", schema.as_str())]);
        let store = touchline::store::open_postgres(options)
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            store,
            PgSchema {
                url: url.to_string(),
                schema,
            },
        ))
    }

    async fn drop_schema(self) {
        if let Ok(mut admin) = PgConnection::connect(&self.url).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .execute(&mut admin)
                .await;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A database of its own for one crash test run, dropped afterwards (also when it fails).
struct ScratchDatabase {
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    fn create(admin_url: &str) -> Result<(Self, String), Failed> {
        let name = format!("touchline_crash_{}_{}", std::process::id(), rand_suffix());
        block_on(async {
            let mut admin = PgConnection::connect(admin_url)
                .await
                .map_err(|e| format!("cannot reach PostgreSQL at {admin_url}: {e}"))?;
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })?;
        let base = admin_url
            .split('?')
            .next()
            .and_then(|u| u.rsplit_once('/'))
            .map_or(admin_url, |(base, _)| base);
        let url = format!("{base}/{name}");
        let scratch = Self {
            admin_url: admin_url.to_string(),
            name,
        };
        Ok((scratch, url))
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let _ = block_on(async {
            if let Ok(mut admin) = PgConnection::connect(&self.admin_url).await {
                let _ = sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut admin)
                .await;
            }
            Ok(())
        });
    }
}

fn block_on<F: Future<Output = Result<(), Failed>>>(future: F) -> Result<(), Failed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(future)
}

/// Registers a case on both databases.
macro_rules! cases {
    ($trials:ident, $pg:ident, $($module:ident::$name:ident),* $(,)?) => {
        $(
            $trials.push(Trial::test(concat!("sqlite::", stringify!($module), "::", stringify!($name)), || {
                block_on(async {
                    let (store, _dir) = sqlite().await;
                    $module::$name(store).await;
                    Ok(())
                })
            }));
            let url = $pg.clone();
            $trials.push(
                Trial::test(concat!("postgres::", stringify!($module), "::", stringify!($name)), move || {
                    block_on(async {
                        let url = url.ok_or("TEST_DATABASE_URL is not set")?;
                        let (store, schema) = PgSchema::create(&url).await?;
                        $module::$name(store).await;
                        schema.drop_schema().await;
                        Ok(())
                    })
                })
                .with_ignored_flag($pg.is_none()),
            );
        )*
    };
}

fn main() {
    let args = Arguments::from_args();
    let pg = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if pg.is_none() {
        println!(
            "postgres suite not run: TEST_DATABASE_URL is not set (its cases show as ignored)"
        );
    }
    let mut trials = Vec::new();
    cases!(
        trials,
        pg,
        contract::import_is_idempotent,
        contract::imports_written_together_answer_each_caller,
        contract::rule_inputs_read_in_one_go_are_exact,
        contract::recipient_facts_hold_what_the_send_checks_need,
        contract::a_full_pass_reads_ranges_of_accounts,
        contract::changes_mark_accounts_dirty_until_evaluated,
        contract::latest_metric_value_wins,
        contract::events_are_recorded_once_and_logins_move_last_login,
        contract::enrollment_moves_are_applied_once,
        contract::one_active_enrollment_per_subject,
        contract::a_stale_cursor_drops_the_whole_batch,
        contract::schedule_firings_are_claimed_once,
        contract::journey_versions_are_kept,
        engine::event_entry_runs_steps_and_waits,
        engine::rerunning_a_pass_at_the_same_time_does_nothing,
        engine::condition_entry_fires_once_on_the_edge,
        engine::explain_gives_the_engines_own_entry_verdict,
        engine::preview_renders_what_the_engine_sends,
        engine::an_unknown_score_decides_nothing,
        engine::wait_until_times_out,
        engine::goal_ends_the_journey_mid_way,
        engine::tier_changes_after_a_utilization_drop,
        engine::a_full_reevaluation_evaluates_every_account_and_writes_only_changes,
        engine::a_full_pass_checks_the_goals_of_running_enrollments,
        engine::a_full_pass_over_several_batches_evaluates_every_account_once,
        report::the_report_counts_a_known_history,
        report::holdouts_show_which_steps_move_the_scores,
        engine::edited_journey_keeps_running_enrollments_on_their_version,
        engine::removed_journey_lets_running_enrollments_finish,
        engine::schedule_entry_fires_at_its_time,
        engine::crontab_weekdays_fire_on_their_days,
        engine::time_based_conditions_are_rechecked_within_the_hour,
        engine::a_pass_sees_only_data_dated_at_or_before_it,
        delivery::tasks_are_assigned_round_robin_with_capacity,
        delivery::an_open_task_is_updated_not_duplicated,
        delivery::a_csm_works_tasks_done_snoozed_and_reassigned_once,
        delivery::a_lost_lease_is_taken_over_and_delivered_once,
        delivery::failed_deliveries_are_listed_and_can_be_retried,
        delivery::emails_go_over_smtp_and_failures_are_classified,
        delivery::mail_waits_for_the_recipients_send_window,
        delivery::suppressed_and_unsubscribed_recipients_are_skipped,
        delivery::a_hard_bounce_suppresses_the_address,
        delivery::the_frequency_cap_holds_or_skips_mail,
        delivery::delivery_times_are_the_pass_time,
        delivery::a_pass_that_enrolls_far_more_than_usual_is_held_for_a_person,
        delivery::many_rule_errors_in_one_pass_hold_what_it_wrote,
        delivery::reaching_the_goal_closes_the_journeys_tasks,
        delivery::an_explicit_key_merges_tasks_and_the_csm_hears_on_slack,
        delivery::an_unreachable_mail_server_is_retried_and_reported,
        delivery::a_slot_taken_meanwhile_is_not_given_twice,
        delivery::mail_goes_over_tls_to_a_relay_with_a_private_ca,
        delivery::mail_goes_over_starttls_to_a_relay_with_a_private_ca,
        webhooks::webhooks_are_signed_and_retried_with_the_same_id,
        webhooks::the_slack_hubspot_and_salesforce_recipes_send_what_their_apis_take,
        webhooks::a_wrong_secret_redirects_and_gone_endpoints_fail_for_good,
        webhooks::private_addresses_are_refused_unless_allowed,
    );
    // SQLite alone: another process on the same file.
    trials.push(Trial::test(
        "sqlite::delivery::a_task_change_waits_for_another_process_writing",
        || {
            block_on(async {
                let (store, dir) = sqlite().await;
                let file = dir.path().join("touchline.db");
                delivery::a_task_change_waits_for_another_process_writing(store, file).await;
                Ok(())
            })
        },
    ));
    trials.push(Trial::test(
        "sqlite::delivery::an_accepted_mail_outlives_its_engine",
        || {
            block_on(async {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                delivery::an_accepted_mail_outlives_its_engine(dir).await;
                Ok(())
            })
        },
    ));
    let url = pg.clone();
    trials.push(
        Trial::test(
            "postgres::crash::two_engines_killed_at_random_deliver_every_step_once",
            move || {
                let url = url.ok_or("TEST_DATABASE_URL is not set")?;
                let (_scratch, database) = ScratchDatabase::create(&url)?;
                crash::run(&database, 2);
                Ok(())
            },
        )
        .with_ignored_flag(pg.is_none()),
    );
    libtest_mimic::run(&args, trials).exit();
}
