//! `touchline import`: accounts, contacts, metric values or events from a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Context, io};
use crate::ingest::{self, Kind};
use crate::store::Store;
use crate::with_store;

/// Import accounts, contacts, metric values or events from a .csv or .jsonl file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the file holds.
    kind: Kind,
    /// The file.
    file: PathBuf,
    /// Import the good rows and report the bad ones (default: reject the whole file).
    #[arg(long)]
    skip_bad_rows: bool,
}

/// Runs `import`.
pub async fn run(args: Args, ctx: &Context, out: &mut dyn Write) -> Result<i32, String> {
    let store = ctx.open_store().await?;
    let now = ctx.clock.now();
    with_store!(store, |s| {
        import(&s, args.kind, &args.file, args.skip_bad_rows, now, out).await
    })
}

/// Imports a file in two reads: the first finds every bad row (nothing is written if there
/// is one, unless skipping was asked for), the second streams the good rows into the store
/// in one transaction. Memory stays bounded whatever the file's size.
async fn import<S: Store>(
    store: &S,
    kind: Kind,
    file: &Path,
    skip_bad_rows: bool,
    now: chrono::DateTime<chrono::Utc>,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(format!("checking {}", file.display()));
    let scan = ingest::FileReader::open(kind, file)
        .map_err(|e| e.to_string())?
        .received_at(now)
        .scan(&mut |rows| {
            bar.set_message(format!("checking {}: {rows} rows", file.display()));
            bar.tick();
        });
    bar.finish_and_clear();
    let report_bad = |out: &mut dyn Write, prefix: &str| -> Result<(), String> {
        for bad in scan.bad.iter().take(20) {
            writeln!(out, "{prefix}{}: {bad}", file.display()).map_err(io)?;
        }
        if scan.bad_count > 20 {
            writeln!(out, "… and {} more bad rows", scan.bad_count - 20).map_err(io)?;
        }
        Ok(())
    };
    if scan.bad_count > 0 && !skip_bad_rows {
        report_bad(out, "")?;
        writeln!(
            out,
            "rejected {}: {} of {} rows are bad; nothing was imported (fix them, or pass --skip-bad-rows)",
            file.display(),
            scan.bad_count,
            scan.rows
        )
        .map_err(io)?;
        return Ok(1);
    }
    let bar = indicatif::ProgressBar::new(scan.rows as u64);
    if scan.rows >= 5000 {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} rows ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("importing {}", file.display()));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let reader = ingest::FileReader::open(kind, file)
        .map_err(|e| e.to_string())?
        .received_at(now);
    let tracked = ProgressChunks {
        reader,
        bar: bar.clone(),
    };
    let outcome = store.import_all(tracked).await.map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    report_bad(out, "skipped ")?;
    writeln!(
        out,
        "imported {}: {} rows, {} new or changed, {} unchanged{}",
        file.display(),
        scan.rows,
        outcome.changed,
        outcome.unchanged,
        if scan.bad_count == 0 {
            String::new()
        } else {
            format!(", {} skipped", scan.bad_count)
        }
    )
    .map_err(io)?;
    Ok(0)
}

/// File chunks that move a progress bar as they are read.
struct ProgressChunks {
    reader: ingest::FileReader,
    bar: indicatif::ProgressBar,
}

impl Iterator for ProgressChunks {
    type Item = crate::store::Import;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.reader.next_chunk();
        self.bar.set_position(self.reader.rows_read as u64);
        chunk
    }
}
