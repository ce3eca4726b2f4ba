//! The journal of mails a server accepted whose marks are not stored yet, beside an SQLite
//! file.
//!
//! A mail the server took must be known as sent before a crash can lose that: else the
//! record's lease runs out and the mail goes again. On an SQLite file a mark is a commit,
//! and a commit waits for the one writer: behind a pass's write, a task, a claim. Every mail
//! in flight waited for its own mark, so a kill while the writer was busy repeated up to
//! one mail per connection. Here the fact is one line appended to a file of this process's
//! own (one `write_all` of a short line, which outlives the process as a committed WAL
//! frame does with `synchronous = NORMAL`), and the marks go in batches as webhook marks do.
//!
//! Before any lease that ran out is taken over, every journal beside the database is read
//! back and its records marked sent, each only while the engine that noted it still holds it
//! (`replay`). A journal whose process is gone (its lock is free) is then deleted. A live
//! process deletes its own once it has grown a while and every record in it is marked, and
//! starts a new one with the next mail: a file is never emptied in place, so a reader never
//! sees a torn line.

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
    /// Records noted in the open file and not marked yet.
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

    /// Notes that the server accepted the mail of record `id`, held by `owner`, at `at`
    /// (ms), answering `result`.
    pub(super) fn note(&self, id: i64, owner: &str, at: i64, result: &str) -> Result<()> {
        let mut own = self.lock()?;
        if own.file.is_none() {
            own.file = Some(self.create()?);
        }
        let line = format!(
            "{id}\t{}\t{at}\t{}\n",
            serde_json::Value::from(owner),
            serde_json::Value::from(result)
        );
        if let Some((path, file)) = &mut own.file {
            file.write_all(line.as_bytes())
                .map_err(|e| io_error(path, "write", e))?;
        }
        own.unmarked.insert(id);
        Ok(())
    }

    /// Forgets records whose marks are stored; once none is left, may start a new file.
    pub(super) fn forget(&self, ids: impl Iterator<Item = i64>) -> Result<()> {
        let mut own = self.lock()?;
        for id in ids {
            own.unmarked.remove(&id);
        }
        own.close_if_done(false)
    }

    /// Marks sent every record a journal beside the database holds, where the engine that
    /// noted it still holds it: all of a gone process's (then deletes its journal), and those
    /// of a live one whose lease ran out by `now`. How many records it marked.
    pub(super) fn replay(&self, connection: &Connection, now: i64) -> Result<u64> {
        let own_path = self.lock()?.file.as_ref().map(|(path, _)| path.clone());
        let mut marked = 0;
        for path in self.journals()? {
            let Ok(mut file) = File::open(&path) else {
                // Deleted meanwhile by its process or another replay.
                continue;
            };
            let own = Some(&path) == own_path.as_ref();
            // Every journal is locked by its process before it gets its name (`create`).
            let gone = !own && file.try_lock().is_ok();
            let mut text = String::new();
            file.read_to_string(&mut text)
                .map_err(|e| io_error(&path, "read", e))?;
            let lines = lines(&text);
            marked += mark_sent(connection, &lines, gone, now)?;
            if own {
                self.forget_taken(connection, &lines)?;
            }
            if gone {
                remove(&path)?;
            }
        }
        Ok(marked)
    }

    /// Forgets this process's records that its engine no longer holds: marked by a replay,
    /// or taken over after a mark that failed.
    fn forget_taken(&self, connection: &Connection, lines: &[Line]) -> Result<()> {
        let mut held = connection.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending')",
        )?;
        let mut taken = Vec::new();
        for line in lines {
            if !held.query_row(rusqlite::params![line.id, line.owner], |row| {
                row.get::<_, bool>(0)
            })? {
                taken.push(line.id);
            }
        }
        self.forget(taken.into_iter())
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

    /// A new journal file of this process's, locked while it lives. It is made and locked
    /// under another name first: a replay must never find it unlocked and take it for a
    /// gone process's.
    fn create(&self) -> Result<(PathBuf, File)> {
        let name = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
        let making = self.dir.join(format!(".{name}.accepted-new"));
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&making)
            .map_err(|e| io_error(&making, "create", e))?;
        file.lock().map_err(|e| io_error(&making, "lock", e))?;
        let path = self.dir.join(format!("{}{name}", self.prefix));
        std::fs::rename(&making, &path).map_err(|e| io_error(&path, "name", e))?;
        Ok((path, file))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Own>> {
        self.own
            .lock()
            .map_err(|_| StoreError::Writer("the journal of accepted mails was poisoned".into()))
    }
}

/// How long a journal grows before it is deleted, once every record in it is marked, for a
/// new one: a replay reads at most about that much of a live engine's. Deleting it each time
/// all were marked (every few dozen mails) cost the delivery benchmark's mail 6 points.
const ROTATE_AT: u64 = 64 * 1024;

impl Own {
    /// Deletes the file once every record in it is marked and it has grown past
    /// `ROTATE_AT` (or at once, with `finally`); the next mail starts a new one.
    fn close_if_done(&mut self, finally: bool) -> Result<()> {
        let Some((path, file)) = &self.file else {
            return Ok(());
        };
        if !self.unmarked.is_empty() {
            return Ok(());
        }
        let grown = file.metadata().map_or(true, |m| m.len() >= ROTATE_AT);
        if finally || grown {
            remove(path)?;
            self.file = None;
        }
        Ok(())
    }
}

impl Drop for AcceptedJournal {
    /// A journal with nothing left to mark is deleted as its process ends.
    fn drop(&mut self) {
        if let Ok(own) = self.own.get_mut() {
            let _ = own.close_if_done(true);
        }
    }
}

/// One line of a journal.
struct Line {
    id: i64,
    owner: String,
    at: i64,
    result: String,
}

/// The complete lines of a journal (a process may have died mid-line).
fn lines(text: &str) -> Vec<Line> {
    text.split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| {
            let mut fields = line.trim_end().splitn(4, '\t');
            Some(Line {
                id: fields.next()?.parse().ok()?,
                owner: serde_json::from_str(fields.next()?).ok()?,
                at: fields.next()?.parse().ok()?,
                result: serde_json::from_str(fields.next()?).ok()?,
            })
        })
        .collect()
}

/// Marks sent the records `lines` list that their engine still holds; of a live process's,
/// only those whose lease ran out by `now`.
fn mark_sent(connection: &Connection, lines: &[Line], gone: bool, now: i64) -> Result<u64> {
    let mut statement = connection.prepare_cached(
        "UPDATE outbox SET status = 'sent', result = ?4, held_reason = NULL, delivered_at = ?3, \
         claimed_by = NULL, lease_until = NULL \
         WHERE id = ?1 AND claimed_by = ?2 AND status = 'sending' AND (?5 OR lease_until < ?6)",
    )?;
    let mut marked = 0;
    for line in lines {
        marked += statement.execute(rusqlite::params![
            line.id,
            line.owner,
            line.at,
            line.result,
            gone,
            now
        ])? as u64;
    }
    Ok(marked)
}

/// Deletes a journal; one already deleted (by a replay in another process) is fine.
fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(path, "delete", e)),
        _ => Ok(()),
    }
}

fn io_error(path: &Path, what: &str, error: std::io::Error) -> StoreError {
    StoreError::Writer(format!(
        "cannot {what} the journal of accepted mails {}: {error}",
        path.display()
    ))
}
