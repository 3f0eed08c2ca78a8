//! Message times in the reader's own time zone, through the browser's `Date` and
//! `Intl.DateTimeFormat`: the calendar day (for day separators), the clock time shown beside a
//! name, and the full date and time for hovering.
//!
//! Browser-only (`js_sys` calls panic outside wasm); the rules built on these values live in
//! `reading.rs` and are tested on the host.

use js_sys::{Array, Date, Function, Intl, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::reading::Day;

/// The page's language (`<html lang="en">`), so that a screen reader reading the dates out
/// uses the voice of the rest of the page.
const LOCALE: &str = "en";

/// Two reusable formatters (creating an `Intl.DateTimeFormat` per message would cost far more
/// than formatting with one).
#[derive(Debug)]
pub struct LocalTime {
    /// "Sunday, November 29, 2026".
    full_date: Function,
    /// "Sunday, November 29, 2026 at 11:05:23 PM GMT+1".
    full_date_time: Function,
}

impl Default for LocalTime {
    fn default() -> LocalTime {
        LocalTime {
            full_date: formatter(&[
                ("weekday", "long"),
                ("year", "numeric"),
                ("month", "long"),
                ("day", "numeric"),
            ]),
            full_date_time: formatter(&[("dateStyle", "full"), ("timeStyle", "long")]),
        }
    }
}

impl LocalTime {
    /// The local calendar day of `time_ms` (milliseconds since the Unix epoch).
    pub fn day(time_ms: u64) -> Day {
        day_of(&date(time_ms))
    }

    /// Today, in the reader's time zone.
    pub fn today() -> Day {
        day_of(&Date::new_0())
    }

    /// Milliseconds from now until a second past the next local midnight (when "Today" becomes
    /// "Yesterday"); the length of the day (23 to 25 hours with daylight saving time changes)
    /// comes from `Date` itself.
    pub fn ms_until_tomorrow() -> u32 {
        let now = Date::new_0();
        // `Date` rolls day 32 over into the next month, and December 32 into January.
        let midnight = Date::new_with_year_month_day(
            now.get_full_year(),
            now.get_month() as i32,
            now.get_date() as i32 + 1,
        );
        let left = midnight.get_time() - now.get_time() + 1_000.0;
        // At most a day and an hour; `as` saturates, and the clamp keeps a broken clock from
        // spinning.
        left.clamp(1_000.0, 90_000_000.0) as u32
    }

    /// `HH:MM`, 24-hour, local.
    pub fn clock(time_ms: u64) -> String {
        let date = date(time_ms);
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }

    /// The instant in ISO 8601, UTC (`2026-11-29T23:05:23.000Z`), for `<time datetime>`.
    pub fn iso(time_ms: u64) -> String {
        String::from(date(time_ms).to_iso_string())
    }

    /// The local date in words, for a day separator that is neither today nor yesterday.
    pub fn full_date(&self, time_ms: u64) -> String {
        format_with(&self.full_date, time_ms)
    }

    /// The local date and time in words with the time zone, for a `title`.
    pub fn full_date_time(&self, time_ms: u64) -> String {
        format_with(&self.full_date_time, time_ms)
    }
}

fn date(time_ms: u64) -> Date {
    // Millisecond times stay below 2^53 for the next 285,000 years, so `f64` is exact.
    Date::new(&JsValue::from_f64(time_ms as f64))
}

fn day_of(date: &Date) -> Day {
    Day {
        // `Date` years fit an i32 for any time the server accepts (at most 15 digits of ms).
        year: date.get_full_year() as i32,
        month: date.get_month() + 1,
        day: date.get_date(),
    }
}

/// `Intl.DateTimeFormat(LOCALE, options).format`, bound to its formatter.
fn formatter(options: &[(&str, &str)]) -> Function {
    let object = Object::new();
    for (key, value) in options {
        // Setting a property on a fresh plain object cannot fail.
        let _ignored = Reflect::set(&object, &JsValue::from_str(key), &JsValue::from_str(value));
    }
    let locales = Array::of1(&JsValue::from_str(LOCALE));
    Intl::DateTimeFormat::new(&locales, &object).format()
}

fn format_with(format: &Function, time_ms: u64) -> String {
    format
        .call1(&JsValue::NULL, &date(time_ms))
        .ok()
        .and_then(|text| text.as_string())
        // A formatter refusing a valid date does not happen; the ISO form is still a date.
        .unwrap_or_else(|| LocalTime::iso(time_ms))
}
