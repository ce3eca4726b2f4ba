//! Simulation: the engine and a simulated deliverer walking a store through time, with data
//! arriving when it is dated. Journey tests and plans are built on it. Nothing leaves the
//! machine: mails and webhooks are decided exactly as in production (send windows, the
//! frequency cap, suppressions, the guard) and marked sent without being sent; tasks are
//! assigned as they would be.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::definitions::Definitions;
use crate::delivery::{Deliverer, DeliveryReport};
use crate::engine::{Engine, PassReport};
use crate::store::{Import, Store};

/// Deliveries run at least this often between passes, so mails waiting for a send window
/// go out when it opens (to the hour), as `touchline run`'s would.
const DELIVERY_STEP: Duration = Duration::hours(1);

/// The engine, a deliverer that sends nothing, and a clock they share.
pub struct Simulation<S: Store> {
    engine: Engine<S>,
    deliverer: Deliverer<S>,
    every: Duration,
    step: Duration,
    /// The next moment to step to.
    next_step: DateTime<Utc>,
    next_pass: DateTime<Utc>,
    /// Data not yet arrived, by the time it arrives.
    arrivals: std::collections::BTreeMap<DateTime<Utc>, Vec<Import>>,
    /// Every pass so far.
    pub passes: Vec<(DateTime<Utc>, PassReport)>,
    /// What delivery did, in all.
    pub delivered: DeliveryReport,
}

impl<S: Store> std::fmt::Debug for Simulation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("next_step", &self.next_step)
            .field("passes", &self.passes.len())
            .finish()
    }
}

impl<S: Store> Simulation<S> {
    /// A simulation of `definitions` over `store` whose first pass is at `start`, then one
    /// every `every`.
    pub fn new(
        definitions: Arc<Definitions>,
        store: S,
        start: DateTime<Utc>,
        every: Duration,
    ) -> Self {
        let every = every.max(Duration::seconds(1));
        Self {
            engine: Engine::new(definitions.clone(), store.clone()),
            deliverer: Deliverer::simulated(definitions, store),
            every,
            step: every.min(DELIVERY_STEP),
            next_step: start,
            next_pass: start,
            arrivals: Default::default(),
            passes: Vec::new(),
            delivered: DeliveryReport::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.engine.store()
    }

    /// Data that arrives at `at` (imported before the first pass at or after it).
    pub fn arrive(&mut self, at: DateTime<Utc>, import: Import) {
        self.arrivals.entry(at).or_default().push(import);
    }

    /// Runs every import, pass and delivery round due up to and including `until`;
    /// `progress` hears the time of each step.
    pub async fn advance_to(
        &mut self,
        until: DateTime<Utc>,
        progress: &mut (dyn FnMut(DateTime<Utc>) + Send),
    ) -> Result<(), String> {
        while self.next_step <= until {
            let now = self.next_step;
            self.import_arrived(now).await?;
            if now >= self.next_pass {
                let report = self.engine.tick(now).await.map_err(|e| e.to_string())?;
                self.passes.push((now, report));
                self.next_pass += self.every;
            }
            let round = self
                .deliverer
                .deliver_due(now)
                .await
                .map_err(|e| e.to_string())?;
            self.delivered.add(&round);
            progress(now);
            self.next_step += self.step;
        }
        Ok(())
    }

    async fn import_arrived(&mut self, now: DateTime<Utc>) -> Result<(), String> {
        while let Some(entry) = self.arrivals.first_entry()
            && *entry.key() <= now
        {
            for import in entry.remove() {
                self.engine
                    .store()
                    .import(&import)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}
