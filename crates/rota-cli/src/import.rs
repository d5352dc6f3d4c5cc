//! `rota schedules import FILE` and `rota schedules export`: schedules as
//! JSON lines, one schedule a line, in the form `rota schedules show
//! --json` reads back (its `id`, `tenant`, `job`, `trigger`, policies…).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use rota::schedules::{NewSchedule, Schedules};

use crate::error::{Code, Failure, Result};
use crate::store::Store;

/// Schedules written at once.
const BATCH: usize = 1000;
/// Batches in flight.
const IN_FLIGHT: usize = 4;

/// Reads and checks every line first — a bad line is named by its number
/// and nothing is written — then creates or replaces the schedules by id,
/// in batches. Importing a file again gives the same schedules.
pub(crate) async fn import(store: Store, file: &Path, json: bool) -> Result<()> {
    let started = Instant::now();
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file).map_err(|e| {
            Failure::new(
                if e.kind() == std::io::ErrorKind::NotFound {
                    Code::NotFound
                } else {
                    Code::Failure
                },
                format!("cannot read {}: {e}", file.display()),
            )
        })?;
        Box::new(std::io::BufReader::new(f))
    };
    let now = Timestamp::now();
    let mut schedules = Vec::new();
    let mut ids = std::collections::HashMap::new();
    for (n, line) in reader.lines().enumerate() {
        let number = n + 1;
        let line = line.map_err(|e| Failure::invalid(format!("line {number}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let new: NewSchedule = serde_json::from_str(&line).map_err(|e| {
            Failure::invalid(format!(
                "line {number}: not a schedule: {e}; nothing was imported"
            ))
        })?;
        let Some(id) = new.id.clone() else {
            return Err(Failure::invalid(format!(
                "line {number}: the schedule has no \"id\" (an import is by id, so that it can \
                 run again); nothing was imported"
            )));
        };
        new.validate(now).map_err(|e| {
            Failure::invalid(format!(
                "line {number} (schedule {id:?}): {e}; nothing was imported"
            ))
        })?;
        if let Some(first) = ids.insert(id.clone(), number) {
            return Err(Failure::invalid(format!(
                "line {number}: schedule {id:?} is on line {first} already; nothing was imported"
            )));
        }
        schedules.push(new);
    }
    let total = schedules.len();
    let progress = Progress::new(total as u64);
    let api = store.schedules();
    let batches: Vec<Vec<NewSchedule>> = chunks(schedules, BATCH);
    let mut written = futures_util::stream::iter(batches.into_iter().map(|batch| {
        let api: &Schedules = &api;
        async move {
            let n = batch.len();
            api.upsert_many(batch).await.map(|()| n)
        }
    }))
    .buffer_unordered(IN_FLIGHT);
    let mut done = 0usize;
    while let Some(batch) = written.next().await {
        match batch {
            Ok(n) => {
                done += n;
                progress.set(done as u64);
            }
            Err(e) => {
                progress.finish();
                let f = Failure::from(e);
                return Err(Failure::new(
                    f.code,
                    format!(
                        "{}; {done} of {total} schedules were imported before (importing the \
                         file again is safe: it is by id)",
                        f.message
                    ),
                ));
            }
        }
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    if json {
        crate::output::print_json(&serde_json::json!({ "imported": total, "secs": secs }))
    } else {
        println!("imported {total} schedules in {secs:.2} s");
        Ok(())
    }
}

/// Writes `tenants`' schedules as JSON lines to stdout.
pub(crate) async fn export(store: Store, tenants: &[String]) -> Result<()> {
    let api = store.schedules();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for tenant in tenants {
        let mut after: Option<String> = None;
        loop {
            let page = api.list(tenant, after.as_deref(), 1000).await?;
            for s in &page.schedules {
                let line = serde_json::to_string(&s.to_new())
                    .map_err(|e| Failure::new(Code::Failure, e.to_string()))?;
                // A closed pipe ends the export.
                if writeln!(out, "{line}").is_err() {
                    return Ok(());
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    let _ = out.flush();
    Ok(())
}

/// `v` in batches of `size`, each allocated to its own length (a
/// `split_off` would leave every batch the capacity of all that followed
/// it: quadratic memory, 2 GB for 100,000 schedules).
fn chunks<T>(v: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(v.len() / size + 1);
    let mut items = v.into_iter();
    loop {
        let batch: Vec<T> = items.by_ref().take(size).collect();
        if batch.is_empty() {
            return out;
        }
        out.push(batch);
    }
}

/// A bar on a terminal; elsewhere a line at each tenth.
enum Progress {
    Bar(ProgressBar),
    Lines {
        total: u64,
        shown: std::cell::Cell<u64>,
    },
}

impl Progress {
    fn new(total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} schedules ({per_sec}, {eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                total,
                shown: std::cell::Cell::new(0),
            }
        }
    }

    fn set(&self, done: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Lines { total, shown } => {
                let tenth = (*total / 10).max(1);
                if done / tenth > shown.get() / tenth || done == *total {
                    shown.set(done);
                    eprintln!("imported {done} of {total} schedules");
                }
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn batches_hold_every_item_once_and_no_more_room_than_they_need() {
        let batches = chunks((0..2500).collect::<Vec<u32>>(), 1000);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert!(batches.iter().all(|b| b.capacity() <= 1000));
        let flat: Vec<u32> = batches.into_iter().flatten().collect();
        assert_eq!(flat, (0..2500).collect::<Vec<u32>>());
        assert!(chunks(Vec::<u32>::new(), 1000).is_empty());
    }
}
