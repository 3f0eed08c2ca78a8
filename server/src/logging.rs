//! The operator's log: text or JSON lines on standard error, filtered by `RUST_LOG` (default
//! `info`), where ERROR is kept for the operator's own problems (the disk, permissions, the
//! storage).
//!
//! Problems a client causes must not reach it one line each, or any client could flood it.
//! The HTTP layer (actix-http) logs every request it cannot parse (a head over the limit, a
//! bad header, a reset mid-request) at ERROR; those events are taken out of the log and
//! counted by kind instead, and every [`SUMMARY_EVERY`] one WARN line per kind says how many
//! there were (the rest of the server logs what a client causes at debug level, if at all).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// How often the counts of client-caused problems are logged: 10 s.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Whether an event is a client-caused problem that the HTTP layer logs at ERROR: its
/// connection-level errors (`stream error: request parse error: …`, resets, timeouts).
fn is_client_fault(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::ERROR && metadata.target().starts_with("actix_http::h1")
}

/// Counts of client-caused problems by kind since the last summary.
#[derive(Debug, Default)]
pub struct ClientFaults {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl ClientFaults {
    fn note(&self, kind: String) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(kind)
            .or_insert(0) += 1;
    }

    /// Logs one WARN line per kind seen since the last call, with its count, and starts
    /// counting again.
    pub fn summarize(&self) {
        let counts = std::mem::take(
            &mut *self
                .counts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for (kind, count) in counts {
            tracing::warn!(
                target: "chat_server::client_faults",
                kind = %kind,
                count,
                "requests refused by the HTTP layer (a client's doing; summed up every {} s)",
                SUMMARY_EVERY.as_secs()
            );
        }
    }
}

/// Takes client-caused problems out of the log and counts them in [`ClientFaults`].
struct ClientFaultLayer(Arc<ClientFaults>);

/// Reads an event's message.
#[derive(Default)]
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for ClientFaultLayer {
    /// It reads ERROR events only. Without a hint, the whole log would have none, and the
    /// `log` crate's level would stay at TRACE: every `log::trace!` of the HTTP layer (several
    /// per request) would then be sent to the filter to be refused.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::ERROR)
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if is_client_fault(event.metadata()) {
            let mut message = MessageText::default();
            event.record(&mut message);
            let kind = message
                .0
                .strip_prefix("stream error: ")
                .unwrap_or(&message.0);
            self.0.note(kind.to_owned());
        }
    }
}

/// The log's layers for `format`, writing to `writer`, with client-caused problems summed up
/// in the returned [`ClientFaults`] (summarized by the caller).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> (impl Subscriber + Send + Sync, Arc<ClientFaults>)
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    let faults = Arc::new(ClientFaults::default());
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(
            lines.with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                !is_client_fault(metadata)
            })),
        )
        .with(ClientFaultLayer(faults.clone()));
    (subscriber, faults)
}

/// Installs the log for the process, and a thread that logs the summary of client-caused
/// problems every [`SUMMARY_EVERY`]. Call [`ClientFaults::summarize`] on the result before
/// exiting, so the last counts are not lost.
pub fn init(format: LogFormat) -> Arc<ClientFaults> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let (subscriber, faults) = subscriber(format, filter, std::io::stderr, ansi);
    subscriber.init();
    let summarized = Arc::downgrade(&faults);
    let spawned = std::thread::Builder::new()
        .name("chat-log-summary".to_owned())
        .spawn(move || loop {
            std::thread::sleep(SUMMARY_EVERY);
            match summarized.upgrade() {
                Some(faults) => faults.summarize(),
                None => return,
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "cannot start the log summary thread; client-caused problems are summed up at exit only");
    }
    faults
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captures the log's output.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    #[test]
    fn the_log_s_level_hint_is_the_filter_s_so_that_disabled_trace_calls_stop_at_once() {
        // Regression: the log had no level hint (the fault-counting layer gave none), so
        // `log`'s level stayed TRACE and each of the HTTP layer's `log::trace!` calls per
        // request went through the filter (about 2 % of the server's user time in a fan-out's
        // profile).
        for (directives, hint) in [
            ("info", LevelFilter::INFO),
            ("debug", LevelFilter::DEBUG),
            ("warn,chat_server=trace", LevelFilter::TRACE),
        ] {
            let (subscriber, _) = subscriber(
                LogFormat::Json,
                EnvFilter::new(directives),
                Captured::default(),
                false,
            );
            assert_eq!(subscriber.max_level_hint(), Some(hint), "{directives}");
        }
    }

    #[test]
    fn the_http_layer_s_errors_for_bad_requests_become_one_counted_warning_per_kind() {
        let captured = Captured::default();
        let (subscriber, faults) = subscriber(
            LogFormat::Text,
            EnvFilter::new("info"),
            captured.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..3 {
                tracing::error!(
                    target: "actix_http::h1::dispatcher",
                    "stream error: {}",
                    "request parse error: message head is too large"
                );
            }
            tracing::error!(
                target: "actix_http::h1::dispatcher",
                "stream error: request parse error: invalid Header provided"
            );
            tracing::error!(target: "chat_server::backend", "the disk failed");
            faults.summarize();
            faults.summarize();
        });
        let log =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("UTF-8");
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert!(
            lines[0].contains("ERROR") && lines[0].contains("the disk failed"),
            "{log}"
        );
        assert!(
            lines[1].contains("WARN")
                && lines[1].contains("invalid Header provided")
                && lines[1].contains("count=1"),
            "{log}"
        );
        assert!(
            lines[2].contains("WARN")
                && lines[2].contains("message head is too large")
                && lines[2].contains("count=3"),
            "{log}"
        );
    }
}
