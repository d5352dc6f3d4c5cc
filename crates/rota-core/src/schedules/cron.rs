//! Reading a cron expression: the checks that name the field at fault, then
//! [`croner`] for the matching.
//!
//! Each field is checked here, item by item, and rewritten in plain numbers
//! (names, `?` and `@` shortcuts resolved); croner then parses the rewritten
//! expression, always in its six-field form with seconds first. So croner
//! never sees anything this grammar does not accept, and every mistake is
//! reported with the field, its position and the value at fault.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError};

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use super::error::{CronField, TriggerError};

/// The `@` shortcuts and what they stand for.
const SHORTCUTS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const LAST_WEEKDAY_HINT: &str = "L alone is not a day of the week; write 5L (or FRIL) for \
     the last Friday of the month, or put L in the day-of-month field for its last day";

/// What one field accepts.
struct Spec {
    field: CronField,
    min: u8,
    max: u8,
    /// Names for values, the first standing for `min`.
    names: &'static [&'static str],
}

impl Spec {
    const fn new(field: CronField, min: u8, max: u8, names: &'static [&'static str]) -> Self {
        Self {
            field,
            min,
            max,
            names,
        }
    }
}

const SECOND: Spec = Spec::new(CronField::Second, 0, 59, &[]);
const MINUTE: Spec = Spec::new(CronField::Minute, 0, 59, &[]);
const HOUR: Spec = Spec::new(CronField::Hour, 0, 23, &[]);
const DAY_OF_MONTH: Spec = Spec::new(CronField::DayOfMonth, 1, 31, &[]);
const MONTH: Spec = Spec::new(CronField::Month, 1, 12, &MONTHS);
// 7 is Sunday as well as 0; the names cover 0-6.
const DAY_OF_WEEK: Spec = Spec::new(CronField::DayOfWeek, 0, 7, &WEEKDAYS);

/// Most parsed expressions kept by [`parse`]; past it the memo starts over.
const MEMO: usize = 256;

/// Expressions parsed lately, by their plain form. croner fills a bit per
/// year of its range on every parse (some microseconds each), and a bulk
/// import parses the same few expressions again and again; a parsed one is
/// immutable, so it is shared.
static PARSED: LazyLock<Mutex<HashMap<String, Arc<Cron>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Parses `expr` (5 fields, or 6 with seconds first, or an `@` shortcut).
pub(crate) fn parse(expr: &str) -> Result<Arc<Cron>, TriggerError> {
    let whole = |problem: String| TriggerError::CronExpression {
        expr: expr.to_owned(),
        problem,
    };
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(whole("it is empty".into()));
    }
    let body = if trimmed.starts_with('@') {
        SHORTCUTS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
            .map(|(_, body)| *body)
            .ok_or_else(|| {
                whole(format!(
                    "{trimmed} is not a known shortcut; use @yearly, @annually, @monthly, \
                     @weekly, @daily, @midnight or @hourly"
                ))
            })?
    } else {
        trimmed
    };
    let fields: Vec<&str> = body.split_whitespace().collect();
    let specs: &[Spec] = match fields.len() {
        5 => &[MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        6 => &[SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK],
        n => {
            return Err(whole(format!(
                "found {n} fields; write 5 (minute hour day-of-month month day-of-week) \
                 or 6 (second minute hour day-of-month month day-of-week)"
            )));
        }
    };
    let mut plain = Vec::with_capacity(6);
    if fields.len() == 5 {
        plain.push("0".to_owned());
    }
    for (i, (text, spec)) in fields.iter().zip(specs).enumerate() {
        let normal = check_field(spec, text).map_err(|problem| TriggerError::CronField {
            field: spec.field,
            position: i + 1,
            problem,
        })?;
        plain.push(normal);
    }
    let plain = plain.join(" ");
    if let Some(cron) = memo().get(&plain) {
        return Ok(Arc::clone(cron));
    }
    // Anything croner still refuses is a gap in the checks above; say so in
    // croner's words rather than accept it.
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&plain)
        .map_err(|e| whole(e.to_string()))?;
    let cron = Arc::new(cron);
    let mut memo = memo();
    if memo.len() >= MEMO {
        memo.clear();
    }
    memo.insert(plain, Arc::clone(&cron));
    Ok(cron)
}

/// The memo of parsed expressions (a poisoned one holds only whole
/// entries: still good).
fn memo() -> MutexGuard<'static, HashMap<String, Arc<Cron>>> {
    PARSED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks one field and returns it in plain numbers.
fn check_field(spec: &Spec, text: &str) -> Result<String, String> {
    let upper = text.to_ascii_uppercase();
    let items: Result<Vec<String>, String> = upper
        .split(',')
        .map(|item| check_item(spec, item))
        .collect();
    Ok(items?.join(","))
}

/// Checks one comma-separated item of a field.
fn check_item(spec: &Spec, item: &str) -> Result<String, String> {
    if item.is_empty() {
        return Err("an empty list item (two commas in a row, or a comma at an end)".into());
    }
    let day_field = matches!(spec.field, CronField::DayOfMonth | CronField::DayOfWeek);
    if item == "?" && day_field {
        return Ok("*".into());
    }
    if spec.field == CronField::DayOfMonth {
        if item == "L" || item == "LW" {
            return Ok(item.into());
        }
        if let Some(day) = item.strip_suffix('W') {
            let day = number(spec, day)?;
            return Ok(format!("{day}W"));
        }
    }
    if spec.field == CronField::DayOfWeek {
        if item == "L" {
            return Err(LAST_WEEKDAY_HINT.into());
        }
        if let Some((day, nth)) = item.split_once('#') {
            let day = value(spec, day)?;
            return match nth.parse::<u8>() {
                Ok(n @ 1..=5) => Ok(format!("{day}#{n}")),
                _ => Err(format!(
                    "{item}: the number after # is which week of the month, 1-5, not {nth:?}"
                )),
            };
        }
        if let Some(day) = item.strip_suffix('L') {
            return Ok(format!("{}L", value(spec, day)?));
        }
    }
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (item, None),
    };
    let range = if range == "*" {
        "*".to_owned()
    } else if let Some((low, high)) = range.split_once('-') {
        let (low_n, mut high_n) = (value(spec, low)?, value(spec, high)?);
        // SUN ends a range of weekdays as 7: SAT-SUN is 6-7.
        if spec.field == CronField::DayOfWeek && high == "SUN" {
            high_n = 7;
        }
        if low_n > high_n {
            let (top, bottom) = ends(spec, low);
            return Err(format!(
                "the range {range} runs backwards; write it low to high, or as two \
                 ranges: {low}-{top},{bottom}-{high}"
            ));
        }
        format!("{low_n}-{high_n}")
    } else {
        let single = value(spec, range)?;
        if let Some(step) = step {
            let (top, _) = ends(spec, range);
            return Err(format!(
                "{item}: a step needs a range to step through; write */{step} or \
                 {range}-{top}/{step}"
            ));
        }
        single.to_string()
    };
    match step {
        None => Ok(range),
        Some(step) => match step.parse::<u8>() {
            Ok(s) if s >= 1 => Ok(format!("{range}/{s}")),
            Ok(_) => Err(format!("{item}: a step must be at least 1")),
            Err(_) => Err(format!(
                "{item}: the step after / must be a whole number from 1 to {}, not {step:?}",
                spec.max
            )),
        },
    }
}

/// The last and first values of a field, written as names if `like` is a
/// name (Sunday as 0 and Saturday as 6 for the days of the week).
fn ends(spec: &Spec, like: &str) -> (String, String) {
    match (spec.names.first(), spec.names.last()) {
        (Some(first), Some(last)) if spec.names.contains(&like) => {
            ((*last).to_owned(), (*first).to_owned())
        }
        _ if spec.field == CronField::DayOfWeek => ("6".into(), "0".into()),
        _ => (spec.max.to_string(), spec.min.to_string()),
    }
}

/// Reads a value: a number in range, or a name where the field has names.
fn value(spec: &Spec, text: &str) -> Result<u8, String> {
    if let Some(i) = spec.names.iter().position(|name| *name == text) {
        return Ok(spec.min + i as u8);
    }
    number(spec, text)
}

/// Reads a number in range.
fn number(spec: &Spec, text: &str) -> Result<u8, String> {
    let parsed = text
        .parse::<u32>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()));
    let Some(n) = parsed else {
        let names = match (spec.names.first(), spec.names.last()) {
            (Some(first), Some(last)) => format!(" or a name {first}-{last}"),
            _ => String::new(),
        };
        return Err(format!(
            "{text:?} is not a number from {} to {}{names}",
            spec.min, spec.max
        ));
    };
    if n < u32::from(spec.min) || n > u32::from(spec.max) {
        return Err(format!("{n} is out of range {}-{}", spec.min, spec.max));
    }
    Ok(n as u8)
}

/// Whether no day can ever match because the day-of-week field is `*` and
/// no month named has any day of the month named, as in `0 0 30 2 *`. This
/// answers at once where croner's search would walk to its year limit.
pub(crate) fn no_day_exists(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    if !pattern.is_dow_wildcard() || pattern.days.has_modifiers() {
        return false;
    }
    let longest = |month: u16| match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let days = pattern.days.values();
    !pattern
        .months
        .values()
        .into_iter()
        .any(|m| days.iter().any(|&d| d <= longest(m)))
}
