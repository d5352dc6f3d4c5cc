//! What a run prints: JSON lines, the floor's figures copied onto rota's
//! line as ratios, and the checks that make the process exit non-zero.

use std::time::Duration;

use serde_json::{Map, Value};

/// One JSON object, printed on a line of its own.
pub(crate) type Line = Map<String, Value>;

/// The lines of one run, and what went wrong in it (each failure makes the
/// process exit non-zero after the lines are printed).
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) lines: Vec<Line>,
    pub(crate) failures: Vec<String>,
}

impl Report {
    /// A report of one line.
    pub(crate) fn one(line: Line) -> Self {
        let mut report = Self::default();
        report.push(line);
        report
    }

    /// The floor's line first (if any), then rota's with, for each
    /// `(key, ratio_key)`, the floor's figure as `floor_<key>` and
    /// `<ratio_key>` = rota / floor.
    pub(crate) fn side_by_side(floor: Option<Line>, mut rota: Line, keys: &[(&str, &str)]) -> Self {
        let mut report = Self::default();
        if let Some(floor) = floor {
            compare(&mut rota, &floor, keys);
            report.push(floor);
        }
        report.push(rota);
        report
    }

    /// Adds a line; a non-zero `"unsettled"` in it is a failure.
    pub(crate) fn push(&mut self, line: Line) {
        let unsettled = line.get("unsettled").and_then(Value::as_u64).unwrap_or(0);
        if unsettled > 0 {
            let system = line.get("system").and_then(Value::as_str).unwrap_or("?");
            self.failures.push(format!(
                "{system}: {unsettled} jobs were left in a non-final state"
            ));
        }
        self.lines.push(line);
    }
}

/// Builds a [`Line`] from `json!({...})`.
pub(crate) fn line(value: Value) -> Line {
    match value {
        Value::Object(map) => map,
        other => panic!("a report line must be a JSON object, not {other}"),
    }
}

/// `rota / floor`, to three decimals (0 when the floor is 0).
fn ratio(rota: &Line, floor: &Line, key: &str) -> f64 {
    let get = |l: &Line| l.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    let (r, f) = (get(rota), get(floor));
    if f == 0.0 {
        return 0.0;
    }
    (r / f * 1000.0).round() / 1000.0
}

/// Copies the floor's `keys` onto rota's line as `floor_<key>`, each with
/// `<ratio_key>` = rota / floor beside it; names the floor.
fn compare(rota: &mut Line, floor: &Line, keys: &[(&str, &str)]) {
    rota.insert("floor".into(), floor["floor"].clone());
    for (key, ratio_key) in keys {
        rota.insert(format!("floor_{key}"), floor[*key].clone());
        rota.insert((*ratio_key).into(), ratio(rota, floor, key).into());
    }
}

/// Events per second, rounded.
pub(crate) fn per_s(n: usize, elapsed: Duration) -> f64 {
    (n as f64 / elapsed.as_secs_f64()).round()
}

/// Percentile (0–100) of sorted durations, in milliseconds.
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    let ms = sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0;
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn unsettled_jobs_fail_the_run() {
        let mut report = Report::default();
        report.push(line(json!({"system": "rota", "unsettled": 0})));
        assert!(report.failures.is_empty());
        report.push(line(json!({"system": "floor", "unsettled": 3})));
        assert_eq!(
            report.failures,
            ["floor: 3 jobs were left in a non-final state"]
        );
    }

    #[test]
    fn rota_line_carries_the_floor_and_the_ratio() {
        let floor = line(json!({"system": "floor", "floor": "streams", "calls_per_s": 800.0}));
        let rota = line(json!({"system": "rota", "calls_per_s": 600.0}));
        let report = Report::side_by_side(Some(floor), rota, &[("calls_per_s", "ratio")]);
        assert_eq!(report.lines.len(), 2);
        let rota = &report.lines[1];
        assert_eq!(rota["floor"], "streams");
        assert_eq!(rota["floor_calls_per_s"], 800.0);
        assert_eq!(rota["ratio"], 0.75);
    }
}
