//! Figures for operators: Prometheus metrics, served with a one-page status view on a listener
//! of their own (`--metrics-bind`, off by default, so that it is never public by accident).
//!
//! Each [`Telemetry`] owns its recorder (no global recorder is installed), so that several
//! servers in one process, as in the tests, each count only their own requests. Counters and
//! histograms are registered once, at start, and updated through cheap handles on the hot
//! paths; gauges that describe state (held pops, names online, bytes on disk, the process's
//! open files and memory) are read when the endpoint is scraped.
//!
//! Names follow Prometheus' conventions: a `chat_` prefix, `_total` on counters, base units
//! (seconds, bytes) in the name.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chat_shared::ErrorCode;
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

/// Held pops right now (gauge).
pub const HELD_POPS: &str = "chat_held_pops";
/// Messages in the room (gauge).
pub const MESSAGES: &str = "chat_messages";
/// Names online right now (gauge).
pub const ONLINE_NAMES: &str = "chat_online_names";
/// Bytes the data folder's files take (gauge).
pub const STORAGE_BYTES: &str = "chat_storage_bytes";
/// Saves by `kind`: `join`, `push`, `exit` (counter).
pub const SAVES: &str = "chat_saves_total";
/// Answers carrying `error.code`, by `code` (counter).
pub const ERRORS: &str = "chat_errors_total";
/// Requests refused by a limit, by `limit`: `save_rate`, `polls_per_address`, `polls_overall`,
/// `request_too_large` (counter).
pub const REFUSALS: &str = "chat_refusals_total";
/// Seconds from a held pop's wake-up to its rendered answer (histogram).
pub const WAKE_TO_ANSWER: &str = "chat_wake_to_answer_seconds";
/// Seconds one write-ahead-log fsync takes (histogram).
pub const WAL_FSYNC: &str = "chat_wal_fsync_seconds";
/// Messages committed by one group commit (one fsync) (histogram).
pub const GROUP_COMMIT_BATCH: &str = "chat_group_commit_batch_size";
/// Seconds one compaction of the write-ahead log takes (histogram).
pub const COMPACTION: &str = "chat_compaction_seconds";
/// Open file descriptors of the process (gauge).
pub const OPEN_FDS: &str = "process_open_fds";
/// The process's open-file limit (gauge).
pub const MAX_FDS: &str = "process_max_fds";
/// Resident memory of the process, in bytes (gauge).
pub const RESIDENT_MEMORY: &str = "process_resident_memory_bytes";

/// The kinds of save counted in [`SAVES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaveKind {
    /// A join (its own text or the default).
    Join,
    /// A push.
    Push,
    /// An exit.
    Exit,
}

impl SaveKind {
    /// Every kind.
    pub const ALL: [SaveKind; 3] = [SaveKind::Join, SaveKind::Push, SaveKind::Exit];

    /// The label value: `join`, `push`, `exit`.
    pub fn as_str(self) -> &'static str {
        match self {
            SaveKind::Join => "join",
            SaveKind::Push => "push",
            SaveKind::Exit => "exit",
        }
    }
}

/// The limits counted in [`REFUSALS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `--push-burst` / `--push-rate`: saves per address.
    SaveRate,
    /// `--max-polls-per-ip`.
    PollsPerAddress,
    /// `--max-polls` (answered 503).
    PollsOverall,
    /// A pop's query string over its size limit.
    RequestTooLarge,
}

impl Limit {
    const ALL: [Limit; 4] = [
        Limit::SaveRate,
        Limit::PollsPerAddress,
        Limit::PollsOverall,
        Limit::RequestTooLarge,
    ];

    /// The label value, e.g. `"save_rate"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::SaveRate => "save_rate",
            Limit::PollsPerAddress => "polls_per_address",
            Limit::PollsOverall => "polls_overall",
            Limit::RequestTooLarge => "request_too_large",
        }
    }
}

/// Latency buckets, in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

/// Group-commit batch size buckets, in messages (the writer commits at most 4096).
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 8192.0,
];

/// `builder` with `buckets` for the histogram `name` (rendered as a Prometheus histogram
/// rather than a summary).
fn with_buckets(builder: PrometheusBuilder, name: &str, buckets: &[f64]) -> PrometheusBuilder {
    builder
        .set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
        // Only an empty bucket list is refused; ours are non-empty constants.
        .expect("bucket lists are non-empty")
}

/// The state gauges, set from the running server when the endpoint is scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateFigures {
    /// Held pops.
    pub held_pops: usize,
    /// Messages in the room.
    pub messages: u64,
    /// Names online.
    pub online_names: usize,
    /// Bytes of the data folder's files.
    pub storage_bytes: u64,
}

/// The server's metrics. A cheap `Clone` handle.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    saves: HashMap<SaveKind, Counter>,
    errors: HashMap<ErrorCode, Counter>,
    refusals: HashMap<Limit, Counter>,
    wake_to_answer: Histogram,
    wal_fsync: Histogram,
    group_commit_batch: Histogram,
    compaction: Histogram,
    held_pops: Gauge,
    messages: Gauge,
    online_names: Gauge,
    storage_bytes: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    resident_memory: Gauge,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

/// Where the figures are registered from (the recorder asks for it; it is not rendered).
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A recorder of its own with every figure registered (at zero) and described.
    pub fn new() -> Telemetry {
        let mut builder = PrometheusBuilder::new();
        for name in [WAKE_TO_ANSWER, WAL_FSYNC, COMPACTION] {
            builder = with_buckets(builder, name, &LATENCY_BUCKETS);
        }
        builder = with_buckets(builder, GROUP_COMMIT_BATCH, &BATCH_BUCKETS);
        let recorder = builder.build_recorder();

        let describe =
            |name: &'static str, unit: Option<Unit>, text: &'static str| (name, unit, text);
        let counters = [
            describe(SAVES, None, "Saves stored, by kind (join, push, exit)."),
            describe(ERRORS, None, "Answers carrying error.code, by code."),
            describe(REFUSALS, None, "Requests refused by a limit, by limit."),
        ];
        for (name, unit, text) in counters {
            recorder.describe_counter(KeyName::from_const_str(name), unit, text.into());
        }
        let gauges = [
            describe(HELD_POPS, None, "Pops held open right now."),
            describe(MESSAGES, None, "Messages in the room."),
            describe(ONLINE_NAMES, None, "Names online right now."),
            describe(
                STORAGE_BYTES,
                Some(Unit::Bytes),
                "Bytes of the data folder's files.",
            ),
            describe(OPEN_FDS, None, "Open file descriptors of the process."),
            describe(MAX_FDS, None, "Open-file limit of the process."),
            describe(
                RESIDENT_MEMORY,
                Some(Unit::Bytes),
                "Resident memory of the process.",
            ),
        ];
        for (name, unit, text) in gauges {
            recorder.describe_gauge(KeyName::from_const_str(name), unit, text.into());
        }
        let histograms = [
            describe(
                WAKE_TO_ANSWER,
                Some(Unit::Seconds),
                "From a held pop's wake-up to its rendered answer.",
            ),
            describe(
                WAL_FSYNC,
                Some(Unit::Seconds),
                "One fsync of the write-ahead log.",
            ),
            describe(
                GROUP_COMMIT_BATCH,
                None,
                "Messages committed by one group commit.",
            ),
            describe(
                COMPACTION,
                Some(Unit::Seconds),
                "One compaction of the write-ahead log.",
            ),
        ];
        for (name, unit, text) in histograms {
            recorder.describe_histogram(KeyName::from_const_str(name), unit, text.into());
        }

        let labelled = |name: &'static str, label: &'static str, value: &'static str| {
            let counter = recorder.register_counter(
                &Key::from_parts(name, vec![Label::new(label, value)]),
                &METADATA,
            );
            counter.increment(0); // shown at 0 before the first event
            counter
        };
        let saves = SaveKind::ALL
            .iter()
            .map(|&kind| (kind, labelled(SAVES, "kind", kind.as_str())))
            .collect();
        let errors = ErrorCode::ALL
            .iter()
            .map(|&code| (code, labelled(ERRORS, "code", code.as_str())))
            .collect();
        let refusals = Limit::ALL
            .iter()
            .map(|&limit| (limit, labelled(REFUSALS, "limit", limit.as_str())))
            .collect();
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
        let histogram = |name: &'static str| {
            recorder.register_histogram(&Key::from_static_name(name), &METADATA)
        };
        let inner = Inner {
            saves,
            errors,
            refusals,
            wake_to_answer: histogram(WAKE_TO_ANSWER),
            wal_fsync: histogram(WAL_FSYNC),
            group_commit_batch: histogram(GROUP_COMMIT_BATCH),
            compaction: histogram(COMPACTION),
            held_pops: gauge(HELD_POPS),
            messages: gauge(MESSAGES),
            online_names: gauge(ONLINE_NAMES),
            storage_bytes: gauge(STORAGE_BYTES),
            open_fds: gauge(OPEN_FDS),
            max_fds: gauge(MAX_FDS),
            resident_memory: gauge(RESIDENT_MEMORY),
            recorder,
        };
        Telemetry {
            inner: Arc::new(inner),
        }
    }

    /// A save of `kind` was stored.
    pub fn saved(&self, kind: SaveKind) {
        if let Some(counter) = self.inner.saves.get(&kind) {
            counter.increment(1);
        }
    }

    /// An answer carried `error.code = code`.
    pub fn error_answered(&self, code: ErrorCode) {
        if let Some(counter) = self.inner.errors.get(&code) {
            counter.increment(1);
        }
    }

    /// A request was refused by `limit`.
    pub fn refused(&self, limit: Limit) {
        if let Some(counter) = self.inner.refusals.get(&limit) {
            counter.increment(1);
        }
    }

    /// A held pop took `elapsed` from its wake-up to its rendered answer.
    pub fn woke(&self, elapsed: Duration) {
        self.inner.wake_to_answer.record(elapsed.as_secs_f64());
    }

    /// One group commit of `n_messages` took `fsync` to fsync, and triggered a compaction that
    /// took `compaction`, if any.
    pub fn committed(&self, n_messages: usize, fsync: Duration, compaction: Option<Duration>) {
        self.inner.group_commit_batch.record(n_messages as f64);
        self.inner.wal_fsync.record(fsync.as_secs_f64());
        if let Some(compaction) = compaction {
            self.inner.compaction.record(compaction.as_secs_f64());
        }
    }

    /// Sets the state gauges from `figures` and the process's own figures (open files, their
    /// limit, resident memory), then renders everything in the Prometheus text format (0.0.4).
    pub fn render(&self, figures: StateFigures) -> String {
        let inner = &self.inner;
        inner.held_pops.set(figures.held_pops as f64);
        inner.messages.set(figures.messages as f64);
        inner.online_names.set(figures.online_names as f64);
        inner.storage_bytes.set(figures.storage_bytes as f64);
        let process = metrics_process::collector::collect();
        if let Some(open_fds) = process.open_fds {
            inner.open_fds.set(open_fds as f64);
        }
        if let Some(max_fds) = process.max_fds {
            inner.max_fds.set(max_fds as f64);
        }
        if let Some(resident) = process.resident_memory_bytes {
            inner.resident_memory.set(resident as f64);
        }
        inner.recorder.handle().render()
    }

    /// Frees the memory of histogram samples already summed into buckets; call it every few
    /// seconds when nobody scrapes (the recorder's documented upkeep).
    pub fn run_upkeep(&self) {
        self.inner.recorder.handle().run_upkeep();
    }
}

/// One sample line of the Prometheus text format: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name, e.g. `chat_saves_total`.
    pub name: String,
    /// The labels as written, without braces, e.g. `kind="push"` (empty when none).
    pub labels: String,
    /// The value.
    pub value: f64,
}

/// Reads the samples of a Prometheus text exposition (comment lines are skipped, lines that do
/// not parse are left out).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value = value.parse::<f64>().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            Some(Sample {
                name: name.to_owned(),
                labels: labels.to_owned(),
                value,
            })
        })
        .collect()
}

/// How often the status page reloads itself, in seconds.
const STATUS_REFRESH_SECS: u32 = 5;

/// The status page: the key figures of `exposition` (a rendering of [`Telemetry::render`]) as
/// one self-refreshing HTML page, for operators without Prometheus.
pub fn status_page(exposition: &str, heading: &str) -> String {
    let samples = parse_samples(exposition);
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == labels)
            .map_or(0.0, |sample| sample.value)
    };
    let mean_ms = |name: &str| {
        let count = value(&format!("{name}_count"), "");
        if count > 0.0 {
            format!(
                "{:.2} ms",
                value(&format!("{name}_sum"), "") / count * 1000.0
            )
        } else {
            "none yet".to_owned()
        }
    };
    let mut rows: Vec<(String, String)> = vec![
        ("Held pops".into(), value(HELD_POPS, "").to_string()),
        ("Names online".into(), value(ONLINE_NAMES, "").to_string()),
        ("Messages".into(), value(MESSAGES, "").to_string()),
        (
            "Data on disk".into(),
            format!("{:.1} KiB", value(STORAGE_BYTES, "") / 1024.0),
        ),
    ];
    for kind in SaveKind::ALL {
        let kind = kind.as_str();
        rows.push((
            format!("Saves: {kind}"),
            value(SAVES, &format!("kind=\"{kind}\"")).to_string(),
        ));
    }
    let errors: f64 = samples
        .iter()
        .filter(|sample| sample.name == ERRORS)
        .map(|sample| sample.value)
        .sum();
    rows.push(("Error answers".into(), errors.to_string()));
    for limit in Limit::ALL {
        rows.push((
            format!("Refused: {}", limit.as_str()),
            value(REFUSALS, &format!("limit=\"{}\"", limit.as_str())).to_string(),
        ));
    }
    rows.push(("Mean wake-to-answer".into(), mean_ms(WAKE_TO_ANSWER)));
    rows.push(("Mean WAL fsync".into(), mean_ms(WAL_FSYNC)));
    rows.push(("Mean compaction".into(), mean_ms(COMPACTION)));
    rows.push((
        "Group commits".into(),
        value(&format!("{GROUP_COMMIT_BATCH}_count"), "").to_string(),
    ));
    rows.push((
        "Open files".into(),
        format!("{} of {}", value(OPEN_FDS, ""), value(MAX_FDS, "")),
    ));
    rows.push((
        "Resident memory".into(),
        format!("{:.1} MiB", value(RESIDENT_MEMORY, "") / (1024.0 * 1024.0)),
    ));

    let mut html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{STATUS_REFRESH_SECS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>chat-server status</title>\
         <style>body{{font:15px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         th,td{{padding:.3em 1em;border-bottom:1px solid #ccc;text-align:left}}\
         td{{font-variant-numeric:tabular-nums}}</style></head><body><main>\
         <h1>chat-server status</h1><p>{}</p><table><tbody>",
        escape_html(heading)
    );
    for (label, shown) in rows {
        // Labels are ours; values are numbers: nothing here comes from a client.
        let _ = write!(
            html,
            "<tr><th scope=\"row\">{label}</th><td>{shown}</td></tr>"
        );
    }
    let _ = write!(
        html,
        "</tbody></table><p>Reloads every {STATUS_REFRESH_SECS} s. \
         Every figure: <a href=\"/metrics\">/metrics</a>.</p></main></body></html>"
    );
    html
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_move_and_render_in_the_text_format() {
        let telemetry = Telemetry::new();
        telemetry.saved(SaveKind::Push);
        telemetry.saved(SaveKind::Push);
        telemetry.error_answered(ErrorCode::EmptyMessage);
        telemetry.refused(Limit::SaveRate);
        telemetry.committed(3, Duration::from_micros(700), None);
        let text = telemetry.render(StateFigures {
            held_pops: 4,
            ..StateFigures::default()
        });
        let samples = parse_samples(&text);
        let find = |name: &str, labels: &str| {
            samples
                .iter()
                .find(|sample| sample.name == name && sample.labels == labels)
                .map(|sample| sample.value)
        };
        assert_eq!(find(SAVES, "kind=\"push\""), Some(2.0), "{text}");
        assert_eq!(find(SAVES, "kind=\"exit\""), Some(0.0), "{text}");
        assert_eq!(find(ERRORS, "code=\"empty_message\""), Some(1.0), "{text}");
        assert_eq!(find(REFUSALS, "limit=\"save_rate\""), Some(1.0), "{text}");
        assert_eq!(find(HELD_POPS, ""), Some(4.0), "{text}");
        assert_eq!(
            find("chat_group_commit_batch_size_sum", ""),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            find("chat_wal_fsync_seconds_bucket", "le=\"0.001\""),
            Some(1.0),
            "{text}"
        );
        assert!(find(OPEN_FDS, "").is_some_and(|fds| fds > 0.0), "{text}");
    }

    #[test]
    fn two_recorders_count_apart() {
        let (first, second) = (Telemetry::new(), Telemetry::new());
        first.saved(SaveKind::Join);
        let text = second.render(StateFigures::default());
        assert!(text.contains("chat_saves_total{kind=\"join\"} 0"), "{text}");
    }

    #[test]
    fn the_status_page_shows_the_figures() {
        let telemetry = Telemetry::new();
        telemetry.saved(SaveKind::Exit);
        let page = status_page(
            &telemetry.render(StateFigures {
                messages: 12,
                ..StateFigures::default()
            }),
            "listening on <x>",
        );
        assert!(
            page.contains("<th scope=\"row\">Messages</th><td>12</td>"),
            "{page}"
        );
        assert!(
            page.contains("<th scope=\"row\">Saves: exit</th><td>1</td>"),
            "{page}"
        );
        assert!(page.contains("listening on &lt;x&gt;"), "{page}");
        assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    }
}
