//! The current time, re-rendering every second while asked to (for countdowns).

use gloo_timers::callback::Interval;
use yew::prelude::*;

/// `Date.now()` at render time, in milliseconds since the Unix epoch. While `tick` is true the
/// component re-renders every second, so a countdown computed from it stays current; the timer
/// stops when `tick` turns false or the component goes away.
#[hook]
pub fn use_now_ms(tick: bool) -> f64 {
    let force_update = use_force_update();
    use_effect_with(tick, move |tick| {
        let interval = tick.then(|| Interval::new(1_000, move || force_update.force_update()));
        // Dropping the `Interval` cancels it.
        move || drop(interval)
    });
    js_sys::Date::now()
}
