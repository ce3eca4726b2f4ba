//! Group commit for imports from many callers at once (the HTTP API's requests).
//!
//! Each request used to be a write transaction of its own. SQLite takes one writer at a
//! time, so at a thousand events a second the requests alone kept the writer busy and the
//! engine's passes queued behind them. Here one writer takes whatever requests arrived while
//! its previous transaction ran and writes them together, then tells each caller what its
//! own records changed. A caller's answer still means its records are stored.

use tokio::sync::{mpsc, oneshot};

use super::{Import, ImportOutcome, Result, Store, StoreError};

/// Records written in one transaction at most; more waiting go in the next one.
const GROUP_RECORDS: usize = 5_000;

type Waiting = (Import, oneshot::Sender<Result<ImportOutcome>>);

/// A handle to the writer; cloned freely, the writer stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct ImportQueue {
    sender: mpsc::UnboundedSender<Waiting>,
}

impl ImportQueue {
    /// Starts the writer on the current tokio runtime.
    pub fn start<S: Store>(store: S) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(write_groups(store, receiver));
        Self { sender }
    }

    /// Stores `import` (with whatever else is waiting) and says what it changed.
    pub async fn import(&self, import: Import) -> Result<ImportOutcome> {
        let (answer, outcome) = oneshot::channel();
        self.sender
            .send((import, answer))
            .map_err(|_| StoreError::Writer("the import writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Writer("the import writer has stopped".into()))?
    }
}

async fn write_groups<S: Store>(store: S, mut receiver: mpsc::UnboundedReceiver<Waiting>) {
    while let Some(first) = receiver.recv().await {
        let mut size = first.0.len();
        let mut group = vec![first];
        while size < GROUP_RECORDS {
            match receiver.try_recv() {
                Ok(next) => {
                    size += next.0.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (imports, answers): (Vec<Import>, Vec<_>) = group.into_iter().unzip();
        match store.import_each(&imports).await {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    let _ = answer.send(Ok(outcome));
                }
            }
            Err(error) => {
                // All or none: every caller in the group hears that nothing was stored.
                let message = error.to_string();
                for answer in answers {
                    let _ = answer.send(Err(StoreError::Writer(message.clone())));
                }
            }
        }
    }
}
