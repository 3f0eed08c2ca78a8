//! What a run found: named figures, and the violations that make the run fail.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::client::FailureKind;

/// One figure of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    /// What it measures, e.g. `latency_p99`.
    pub name: String,
    /// The value, in `unit`.
    pub value: f64,
    /// `ms`, `msg/s`, `bytes`, `count`, `s`...
    pub unit: String,
}

/// The result of one scenario run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `fanout`, `push`, `catchup`, `idle` or `flood`.
    pub scenario: String,
    /// `jsonp` or `nchan`.
    pub protocol: String,
    /// The server's base URL.
    pub url: String,
    /// The scenario's parameters.
    pub params: serde_json::Value,
    /// The figures measured.
    pub metrics: Vec<Metric>,
    /// Lost, duplicated or out-of-order messages, refused requests: each makes the run fail.
    pub violations: Vec<String>,
    /// Requests that failed and were retried: transport errors (timeouts, refused or closed
    /// connections) and, where the scenario retries them, error answers.
    pub transport_errors: u64,
    /// The retried requests by what they failed with, where the scenario tells them apart
    /// (`fanout`'s polls).
    pub transport_error_kinds: BTreeMap<FailureKind, u64>,
}

/// Most violations kept in a report (the count of the rest is added).
const MAX_VIOLATIONS: usize = 20;

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &str, protocol: &str, url: &str, params: serde_json::Value) -> Report {
        Report {
            scenario: scenario.to_owned(),
            protocol: protocol.to_owned(),
            url: url.to_owned(),
            params,
            metrics: Vec::new(),
            violations: Vec::new(),
            transport_errors: 0,
            transport_error_kinds: BTreeMap::new(),
        }
    }

    /// Adds a figure.
    pub fn metric(&mut self, name: &str, value: f64, unit: &str) {
        self.metrics.push(Metric {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        });
    }

    /// Adds violations, keeping at most [`MAX_VIOLATIONS`] and counting the rest.
    pub fn violations(&mut self, found: impl IntoIterator<Item = String>) {
        let mut n_dropped = 0usize;
        for violation in found {
            if self.violations.len() < MAX_VIOLATIONS {
                self.violations.push(violation);
            } else {
                n_dropped += 1;
            }
        }
        if n_dropped > 0 {
            self.violations.push(format!("... and {n_dropped} more"));
        }
    }

    /// Whether the run saw no violation.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} ({}) against {}\n",
            self.scenario, self.protocol, self.url
        );
        out.push_str(&format!("  parameters: {}\n", self.params));
        let width = self
            .metrics
            .iter()
            .map(|metric| metric.name.len())
            .max()
            .unwrap_or(0);
        for metric in &self.metrics {
            out.push_str(&format!(
                "  {:width$}  {:>14.3} {}\n",
                metric.name, metric.value, metric.unit
            ));
        }
        let kinds: Vec<String> = self
            .transport_error_kinds
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind.as_str()))
            .collect();
        out.push_str(&format!(
            "  transport errors (retried): {}{}\n",
            self.transport_errors,
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            }
        ));
        if self.passed() {
            out.push_str("  result: PASS (no message lost, duplicated or out of order)\n");
        } else {
            out.push_str("  result: FAIL\n");
            for violation in &self.violations {
                out.push_str(&format!("    - {violation}\n"));
            }
        }
        out
    }
}
