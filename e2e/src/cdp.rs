//! The Chrome DevTools Protocol through chromedriver (`POST /session/{id}/goog/cdp/execute`),
//! for what WebDriver has no command for: a script that runs before the page's own on every
//! load (to take a browser API away), or emulated media features.

use anyhow::Context;
use fantoccini::wd::WebDriverCompatibleCommand;
use reqwest::{Method, Url};
use serde_json::{json, Value};

use crate::browser::Browser;

/// One DevTools command, sent to the session's current tab.
#[derive(Debug)]
struct DevToolsCommand {
    method: String,
    params: Value,
}

impl WebDriverCompatibleCommand for DevToolsCommand {
    fn endpoint(&self, base_url: &Url, session_id: Option<&str>) -> Result<Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &Url) -> (Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Runs the DevTools command `method` with `params` in the current tab and returns its
    /// result, e.g. `("Page.addScriptToEvaluateOnNewDocument", {"source": "…"})`.
    ///
    /// # Errors
    /// chromedriver or Chromium refuses the command.
    pub async fn devtools(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client()
            .issue_cmd(DevToolsCommand {
                method: method.to_owned(),
                params,
            })
            .await
            .with_context(|| format!("DevTools {method} in {}'s tab", self.label()))
    }

    /// Runs `source` before the page's own scripts on every load of the current tab (from the
    /// next navigation on).
    ///
    /// # Errors
    /// See [`Browser::devtools`].
    pub async fn run_before_each_load(&self, source: &str) -> anyhow::Result<()> {
        self.devtools(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await
        .map(drop)
    }
}
