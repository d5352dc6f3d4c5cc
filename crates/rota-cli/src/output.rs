//! What commands print: tables for people, JSON for scripts.

use std::io::Write;

use jiff::Timestamp;
use serde::Serialize;

use crate::error::{Failure, Result};

/// Columns of text, each as wide as its widest cell.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(crate) fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows.push(cells.into_iter().collect());
    }

    pub(crate) fn print(&self) {
        self.print_counted();
    }

    /// Prints it; returns how many lines it took.
    pub(crate) fn print_counted(&self) -> usize {
        let columns = self.rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = std::io::stdout().lock();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            // A closed pipe (`| head`) ends the output, not the program.
            if writeln!(out, "{}", line.trim_end()).is_err() {
                break;
            }
        }
        let _ = out.flush();
        self.rows.len()
    }
}

/// `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(crate::error::Code::Failure, e.to_string()))?;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
    Ok(())
}

/// Unix ms as RFC 3339 in UTC.
pub(crate) fn ms_time(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| utc(&t))
        .unwrap_or_else(|_| ms.to_string())
}

/// An instant as RFC 3339 in UTC with a `Z`, to the millisecond when it
/// has any.
pub(crate) fn utc(t: &Timestamp) -> String {
    if t.subsec_millisecond() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// A job state as people read it: `succeeded`, `dead`, …
pub(crate) fn state_name(state: rota_core::jobs::JobState) -> String {
    format!("{state:?}").to_lowercase()
}
