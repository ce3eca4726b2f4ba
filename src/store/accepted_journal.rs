//! The journal of mails a server accepted whose marks are not stored yet, beside an SQLite
//! file.
//!
//! A mail the server took must be known as sent before a crash can lose that: else the
//! record's lease runs out and the mail goes again. On an SQLite file a mark is a commit,
//! and a commit waits for the one writer: behind a pass's write, a task, a claim. Every mail
//! in flight waited for its own mark, so a kill while the writer was busy repeated up to
//! one mail per connection. Here the fact is one line appended to a file of this process's
//! own (one `write`, which outlives the process as a committed WAL frame does with
//! `synchronous = NORMAL`), and the marks go in batches as webhook marks do.
//!
//! Before any lease that ran out is taken over, every journal beside the database is read
//! back and its records marked sent (`replay`). A journal whose process is gone (its lock is
//! free) is then deleted; a live one is truncated by its process once all its records are
//! marked.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::Connection;

use super::{Result, StoreError};

/// This process's journal, opened on the first accepted mail.
#[derive(Debug)]
pub(super) struct AcceptedJournal {
    /// The folder of the database file.
    dir: PathBuf,
    /// The start of every journal's file name: the database file's name and `-accepted-`.
    prefix: String,
    own: Mutex<Own>,
}

#[derive(Debug, Default)]
struct Own {
    /// Open, appending, locked for as long as this process lives.
    file: Option<(PathBuf, File)>,
    /// Records noted and not marked yet.
    unmarked: HashSet<i64>,
}

impl AcceptedJournal {
    /// The journal of this process for the SQLite file at `database`.
    pub(super) fn new(database: &Path) -> Self {
        let name = database.file_name().map_or_else(
            || "touchline.db".into(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self {
            dir: database
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
            prefix: format!("{name}-accepted-"),
            own: Mutex::new(Own::default()),
        }
    }

    /// Notes that the server accepted the mail of record `id` at `at` (ms), answering
    /// `result`.
    pub(super) fn note(&self, id: i64, at: i64, result: &str) -> Result<()> {
        let mut own = self.lock()?;
        if own.file.is_none() {
            own.file = Some(self.create()?);
        }
        let line = format!("{id}\t{at}\t{}\n", serde_json::Value::from(result));
        if let Some((path, file)) = &mut own.file {
            file.write_all(line.as_bytes())
                .map_err(|e| io_error(path, "write", e))?;
        }
        own.unmarked.insert(id);
        Ok(())
    }

    /// Forgets records whose marks are stored; once none is left, empties the file.
    pub(super) fn forget(&self, ids: impl Iterator<Item = i64>) -> Result<()> {
        let mut own = self.lock()?;
        let mut removed = false;
        for id in ids {
            removed |= own.unmarked.remove(&id);
        }
        if removed
            && own.unmarked.is_empty()
            && let Some((path, file)) = &own.file
        {
            file.set_len(0).map_err(|e| io_error(path, "empty", e))?;
        }
        Ok(())
    }

    /// Marks sent every record a journal beside the database holds that is still being
    /// sent: all of a gone process's (then deletes its journal), and those of a live one
    /// whose lease ran out by `now`. How many records it marked.
    pub(super) fn replay(&self, connection: &Connection, now: i64) -> Result<u64> {
        let own_path = self.lock()?.file.as_ref().map(|(path, _)| path.clone());
        let mut marked = 0;
        for path in self.journals()? {
            let Ok(mut file) = OpenOptions::new().read(true).write(true).open(&path) else {
                // Deleted meanwhile by another process's replay.
                continue;
            };
            let gone = Some(&path) != own_path.as_ref() && file.try_lock().is_ok();
            let mut text = String::new();
            file.read_to_string(&mut text)
                .map_err(|e| io_error(&path, "read", e))?;
            marked += mark_sent(connection, &text, gone, now)?;
            if gone {
                std::fs::remove_file(&path).map_err(|e| io_error(&path, "delete", e))?;
            }
        }
        Ok(marked)
    }

    /// The journals beside the database, this process's among them.
    fn journals(&self) -> Result<Vec<PathBuf>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io_error(&self.dir, "list", e))?;
        Ok(entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(&self.prefix)
            })
            .map(|entry| entry.path())
            .collect())
    }

    /// A new journal file of this process's, locked while it lives.
    fn create(&self) -> Result<(PathBuf, File)> {
        let path = self.dir.join(format!(
            "{}{}-{:08x}",
            self.prefix,
            std::process::id(),
            rand::random::<u32>()
        ));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io_error(&path, "create", e))?;
        file.lock().map_err(|e| io_error(&path, "lock", e))?;
        Ok((path, file))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Own>> {
        self.own
            .lock()
            .map_err(|_| StoreError::Writer("the journal of accepted mails was poisoned".into()))
    }
}

impl Drop for AcceptedJournal {
    /// A journal with nothing left to mark is deleted as its process ends.
    fn drop(&mut self) {
        if let Ok(own) = self.own.get_mut()
            && own.unmarked.is_empty()
            && let Some((path, _)) = &own.file
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Marks sent the records `text` lists (complete lines only: a process may have died
/// mid-line) that are still being sent; of a live process's, only those whose lease ran out.
fn mark_sent(connection: &Connection, text: &str, gone: bool, now: i64) -> Result<u64> {
    let mut statement = connection.prepare_cached(
        "UPDATE outbox SET status = 'sent', result = ?3, held_reason = NULL, delivered_at = ?2, \
         claimed_by = NULL, lease_until = NULL \
         WHERE id = ?1 AND status = 'sending' AND (?4 OR lease_until < ?5)",
    )?;
    let mut marked = 0;
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let mut fields = line.trim_end().splitn(3, '\t');
        let (Some(id), Some(at), Some(result)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(id), Ok(at)) = (id.parse::<i64>(), at.parse::<i64>()) else {
            continue;
        };
        let result: String = serde_json::from_str(result).unwrap_or_default();
        marked += statement.execute(rusqlite::params![id, at, result, gone, now])? as u64;
    }
    Ok(marked)
}

fn io_error(path: &Path, what: &str, error: std::io::Error) -> StoreError {
    StoreError::Writer(format!(
        "cannot {what} the journal of accepted mails {}: {error}",
        path.display()
    ))
}
