//! One headless Chromium session (one user) and what a user does and sees on the two pages:
//! the Yew page served by the server, and the legacy jQuery page opened from `file://`.
//!
//! The Yew page's contract (what the tests rely on): a nickname form (`#nickname-input`,
//! `#nickname-submit`); messages as `#messages li.message` with `data-time`, own ones
//! `.own`, join/leave lines `.system`, each line's text naming its sender (also under a
//! shared group header); a composer `#message-input` + `#send-button` (Enter
//! sends too); `#online-list li`; `#connection-status` whose text contains "connected",
//! "reconnecting" or "offline"; `document.body` gets `data-ready="1"` once mounted.
//!
//! Beyond WebDriver, a session runs Chrome DevTools Protocol commands through chromedriver
//! (`Browser::cdp`: colour scheme, time zone, scripts run before the page's own) and checks the
//! page with axe-core (`Browser::axe_violations`, `Browser::assert_accessible`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, ensure, Context};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::env::ChromeDriver;
use crate::paths::{axe_script_path, legacy_page_path, screenshot_dir};
use crate::wait::{wait_until, Check};

/// How long a page may take to load and mount (the first wasm load included).
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a page may take to connect after joining.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The browser window size, so that screenshots are comparable.
const WINDOW_SIZE: (u32, u32) = (1024, 768);

/// The colour scheme a session's pages see as the reader's preference
/// (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorScheme {
    /// Whatever Chromium's default is (light, in headless Chromium).
    #[default]
    Default,
    /// `prefers-color-scheme: light`.
    Light,
    /// `prefers-color-scheme: dark`.
    Dark,
}

/// How a browser session is opened: window size (CSS pixels; headless Chromium's viewport is
/// the whole window) and colour scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowserOptions {
    /// Width and height in CSS pixels.
    pub window_size: (u32, u32),
    /// The preferred colour scheme.
    pub color_scheme: ColorScheme,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            window_size: WINDOW_SIZE,
            color_scheme: ColorScheme::Default,
        }
    }
}

/// A message line as the Yew page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownMessage {
    /// The line's whole text (`textContent`): nickname, text, maybe a time of day.
    pub text: String,
    /// Its `data-time` attribute: the message's server time.
    pub time: Option<u64>,
    /// Has class `own` (sent by this page's user).
    pub own: bool,
    /// Has class `system` (a join or leave line).
    pub system: bool,
}

/// One rule axe-core found broken, with the elements that break it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AxeViolation {
    /// The rule's id, e.g. `color-contrast` or `landmark-one-main`.
    pub id: String,
    /// How bad: `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    /// What the rule asks, in words.
    pub help: String,
    /// Each offending element: its CSS selector and axe's explanation.
    pub nodes: Vec<String>,
}

impl std::fmt::Display for AxeViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.id, self.impact, self.help)?;
        for node in &self.nodes {
            write!(f, "\n    - {node}")?;
        }
        Ok(())
    }
}

/// A Chrome DevTools Protocol command, through chromedriver's `goog/cdp/execute` endpoint
/// (what WebDriver itself cannot do: emulating a media feature, running a script before the
/// page's own).
#[derive(Debug)]
struct CdpCommand {
    method: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for CdpCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// What `#connection-status` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Polling normally.
    Connected,
    /// Lost the server and retrying.
    Reconnecting,
    /// Not connected (not joined yet, or given up).
    Offline,
    /// Anything else, with the text (also when the element is missing: empty).
    Other(String),
}

impl ConnectionStatus {
    /// Classifies the status text. "reconnecting" and "disconnected" contain "connect", so they
    /// are looked for first.
    pub fn parse(text: &str) -> ConnectionStatus {
        let lower = text.to_lowercase();
        if lower.contains("reconnecting") {
            ConnectionStatus::Reconnecting
        } else if lower.contains("offline") {
            ConnectionStatus::Offline
        } else if lower.contains("connected")
            && !lower.contains("disconnected")
            && !lower.contains("not connected")
        {
            ConnectionStatus::Connected
        } else {
            ConnectionStatus::Other(text.to_owned())
        }
    }
}

/// One browser session: one user in one tab, with its own Chromium profile.
pub struct Browser {
    label: String,
    client: Client,
    /// Set once the session has ended (its last window closed), so that `close` does not ask
    /// again.
    closed: AtomicBool,
    /// The `--user-data-dir`, removed after the session.
    _profile: TempDir,
}

impl Browser {
    /// Opens a headless Chromium session through `driver`, shaped by `options`.
    ///
    /// # Errors
    /// chromedriver refuses the session (Chromium missing or crashing).
    pub(crate) async fn open(
        driver: &ChromeDriver,
        label: &str,
        options: BrowserOptions,
    ) -> anyhow::Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("chat-e2e-chromium-")
            .tempdir()
            .context("cannot create a Chromium profile folder")?;
        let (width, height) = options.window_size;
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // Blink's `preferredColorScheme` setting: 0 is dark, 1 is light (what
        // `prefers-color-scheme` answers, whatever the machine's theme).
        match options.color_scheme {
            ColorScheme::Default => {}
            ColorScheme::Light => args.push("--blink-settings=preferredColorScheme=1".to_owned()),
            ColorScheme::Dark => args.push("--blink-settings=preferredColorScheme=0".to_owned()),
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": driver.chromium(), "args": args }),
        );
        // A long-polling page never finishes loading when its first JSONP script is inserted
        // before the load event (each answer inserts the next script, which the load event
        // waits for): navigation returns at DOMContentLoaded, and the helpers wait for
        // `data-ready` themselves.
        capabilities.insert("pageLoadStrategy".to_owned(), json!("eager"));
        capabilities.insert(
            "timeouts".to_owned(),
            json!({ "script": 30_000, "pageLoad": 30_000, "implicit": 0 }),
        );
        // Leave an unexpected alert open (instead of dismissing it on the next command), so
        // that a test can see it.
        capabilities.insert("unhandledPromptBehavior".to_owned(), json!("ignore"));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .with_context(|| format!("cannot open a browser session for {label}"))?;
        Ok(Browser {
            label: label.to_owned(),
            client,
            closed: AtomicBool::new(false),
            _profile: profile,
        })
    }

    /// The label given at creation.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The WebDriver client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (closing its window: the page's exit handlers run).
    ///
    /// # Errors
    /// chromedriver fails the request.
    pub async fn close(&self) -> anyhow::Result<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.client
            .clone()
            .close()
            .await
            .with_context(|| format!("closing {}'s session", self.label))
    }

    /// Closes the current window as a user closing the tab would. When it was the session's
    /// last window, chromedriver ends the session, and [`Browser::close`] does nothing after.
    ///
    /// # Errors
    /// chromedriver fails the request.
    pub async fn close_window(&self) -> anyhow::Result<()> {
        let n_windows = self
            .client
            .windows()
            .await
            .context("listing windows")?
            .len();
        self.client
            .close_window()
            .await
            .with_context(|| format!("closing {}'s window", self.label))?;
        if n_windows <= 1 {
            self.closed.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Saves a screenshot of the current tab as `target/e2e-screenshots/<file_name>` and
    /// returns the path.
    ///
    /// # Errors
    /// The screenshot cannot be taken or written.
    pub async fn save_screenshot(&self, file_name: &str) -> anyhow::Result<PathBuf> {
        let path = screenshot_dir()?.join(file_name);
        let png = self
            .client
            .screenshot()
            .await
            .with_context(|| format!("taking {}'s screenshot", self.label))?;
        std::fs::write(&path, png).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(path)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    ///
    /// # Errors
    /// The script throws or the session is gone.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running a script in {}'s page", self.label))
    }

    /// Moves the mouse over the middle of the first element matching `css` (WebDriver actions),
    /// so that its `:hover` styles apply.
    ///
    /// # Errors
    /// No such element, or the move is refused.
    pub async fn hover(&self, css: &str) -> anyhow::Result<()> {
        use fantoccini::actions::{InputSource, MouseActions, PointerAction};

        let element = self.wait_for_element(css).await?;
        let actions = MouseActions::new("mouse".to_owned()).then(PointerAction::MoveToElement {
            element,
            duration: None,
            x: 0.0,
            y: 0.0,
        });
        self.client
            .perform_actions(actions)
            .await
            .with_context(|| format!("moving {}'s mouse over {css}", self.label))
    }

    /// Runs the Chrome DevTools Protocol command `method` with `params` and returns its result.
    ///
    /// # Errors
    /// chromedriver or Chromium refuses the command.
    pub async fn cdp(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.client
            .issue_cmd(CdpCommand {
                method: method.to_owned(),
                params,
            })
            .await
            .with_context(|| format!("DevTools command {method} in {}'s browser", self.label))
    }

    /// Shows the page as in a browser set to `scheme` (DevTools `Emulation.setEmulatedMedia`),
    /// so that `@media (prefers-color-scheme: dark)` applies or not; it lasts until changed.
    ///
    /// # Errors
    /// The command is refused.
    pub async fn emulate_color_scheme(&self, scheme: ColorScheme) -> anyhow::Result<()> {
        let value = match scheme {
            // An empty value lifts the emulation: Chromium's own preference again.
            ColorScheme::Default => "",
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": value }] }),
        )
        .await?;
        if value.is_empty() {
            return Ok(());
        }
        let applied = self
            .execute(
                "return window.matchMedia('(prefers-color-scheme: ' + arguments[0] + ')').matches;",
                vec![json!(value)],
            )
            .await?;
        ensure!(
            applied == json!(true),
            "{}'s page does not match prefers-color-scheme: {value} after emulating it",
            self.label
        );
        Ok(())
    }

    /// Runs `source` in every document this session loads from now on, before the page's own
    /// scripts (DevTools `Page.addScriptToEvaluateOnNewDocument`): how a test stubs a browser
    /// API the page reads at load.
    ///
    /// # Errors
    /// The command is refused.
    pub async fn run_before_each_page(&self, source: &str) -> anyhow::Result<()> {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await
        .map(drop)
    }

    /// Checks the page as it is now with axe-core (`e2e/axe`, injected on first use in each
    /// document) and returns every violation of the rules axe runs by default (WCAG 2.x A and
    /// AA, and best practices), hidden elements excepted, as axe does.
    ///
    /// # Errors
    /// axe-core is not installed (`npm install` in `e2e/axe`), or it fails to run.
    pub async fn axe_violations(&self) -> anyhow::Result<Vec<AxeViolation>> {
        let loaded = self
            .execute("return typeof window.axe === 'object';", vec![])
            .await?;
        if loaded != json!(true) {
            let path = axe_script_path();
            let source = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}: run `npm install` in e2e/axe (scripts/setup.sh test does)",
                    path.display()
                )
            })?;
            // As a WebDriver script, which the page's Content-Security-Policy does not cover
            // (it forbids eval and inline scripts); axe's bundle sets `window.axe` itself.
            self.execute(&format!("{source}\nreturn typeof window.axe;"), vec![])
                .await
                .context("loading axe-core into the page")?;
        }
        let found = self
            .client
            .execute_async(
                "var done = arguments[arguments.length - 1];
                 window.axe.run(document, { resultTypes: ['violations'] })
                     .then(function (results) {
                         done({ violations: results.violations.map(function (v) {
                             return {
                                 id: v.id,
                                 impact: v.impact || '',
                                 help: v.help,
                                 nodes: v.nodes.map(function (n) {
                                     return n.target.join(' ') + ': ' + n.failureSummary;
                                 })
                             };
                         }) });
                     })
                     .catch(function (error) { done({ error: String(error) }); });",
                vec![],
            )
            .await
            .with_context(|| format!("running axe-core in {}'s page", self.label))?;
        if let Some(error) = found.get("error") {
            anyhow::bail!("axe-core failed in {}'s page: {error}", self.label);
        }
        let violations = found["violations"]
            .as_array()
            .ok_or_else(|| anyhow!("axe-core returned {found}"))?;
        Ok(violations
            .iter()
            .map(|violation| AxeViolation {
                id: violation["id"].as_str().unwrap_or_default().to_owned(),
                impact: violation["impact"].as_str().unwrap_or_default().to_owned(),
                help: violation["help"].as_str().unwrap_or_default().to_owned(),
                nodes: string_list(&violation["nodes"]),
            })
            .collect())
    }

    /// Fails, listing every violation with its elements, unless axe-core finds none in the page
    /// as it is now; `state` names that state in the error.
    ///
    /// # Errors
    /// A violation, or axe cannot run.
    pub async fn assert_accessible(&self, state: &str) -> anyhow::Result<()> {
        let violations = self.axe_violations().await?;
        ensure!(
            violations.is_empty(),
            "axe-core finds {} violation(s) on {}'s page ({state}):\n{}",
            violations.len(),
            self.label,
            violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }

    /// Navigates to `url` and waits until `body[data-ready="1"]`.
    ///
    /// # Errors
    /// Navigation fails or the page does not get ready in time.
    pub async fn goto_and_wait_ready(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("{} cannot open {url}", self.label))?;
        self.wait_ready().await
    }

    /// Waits until `body[data-ready="1"]` (after a load or a reload).
    ///
    /// # Errors
    /// Not within the load timeout.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        wait_until(
            LOAD_TIMEOUT,
            &format!("{}'s page sets body[data-ready=\"1\"]", self.label),
            || async {
                let ready = self
                    .execute(
                        "return document.body ? document.body.getAttribute('data-ready') : null;",
                        vec![],
                    )
                    .await?;
                Ok(Check::when(
                    ready == json!("1"),
                    format_args!("data-ready = {ready}"),
                ))
            },
        )
        .await
    }

    // ---- The Yew page ----

    /// Opens the Yew page at `page_url` (the server's `/`, or `/?server=URL`).
    ///
    /// # Errors
    /// It does not load and mount in time.
    pub async fn open_chat(&self, page_url: &str) -> anyhow::Result<()> {
        self.goto_and_wait_ready(page_url).await
    }

    /// Whether the nickname form is shown (before a join, or after a reload that forgot it).
    ///
    /// # Errors
    /// The session is gone.
    pub async fn nickname_form_shown(&self) -> anyhow::Result<bool> {
        let found = self
            .client
            .find_all(Locator::Css("#nickname-input"))
            .await
            .context("looking for #nickname-input")?;
        Ok(!found.is_empty())
    }

    /// Types `name` into the nickname form, submits it, and waits until the page says it is
    /// connected.
    ///
    /// # Errors
    /// The form is missing or the page does not connect in time.
    pub async fn join(&self, name: &str) -> anyhow::Result<()> {
        let input = self.wait_for_element("#nickname-input").await?;
        input.clear().await.context("clearing #nickname-input")?;
        input
            .send_keys(name)
            .await
            .context("typing into #nickname-input")?;
        self.client
            .find(Locator::Css("#nickname-submit"))
            .await
            .context("finding #nickname-submit")?
            .click()
            .await
            .context("clicking #nickname-submit")?;
        self.wait_for_element("#message-input").await?;
        self.wait_status(ConnectionStatus::Connected, CONNECT_TIMEOUT)
            .await
    }

    /// Waits until an element matching `css` exists, and returns it.
    ///
    /// # Errors
    /// Not within the load timeout.
    pub async fn wait_for_element(&self, css: &str) -> anyhow::Result<Element> {
        wait_until(
            LOAD_TIMEOUT,
            &format!("{}'s page has {css}", self.label),
            || async {
                let found = self.client.find_all(Locator::Css(css)).await?;
                Ok(match found.into_iter().next() {
                    Some(element) => Check::Done(element),
                    None => Check::NotYet("no such element".to_owned()),
                })
            },
        )
        .await
    }

    /// What `#connection-status` says now.
    ///
    /// # Errors
    /// The session is gone.
    pub async fn status(&self) -> anyhow::Result<ConnectionStatus> {
        let text = self
            .execute(
                "var status = document.getElementById('connection-status');
                 return status ? status.textContent : '';",
                vec![],
            )
            .await?;
        Ok(ConnectionStatus::parse(text.as_str().unwrap_or_default()))
    }

    /// Waits until `#connection-status` says `wanted`.
    ///
    /// # Errors
    /// Not within `timeout`.
    pub async fn wait_status(
        &self,
        wanted: ConnectionStatus,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let what = format!("{}'s #connection-status says {wanted:?}", self.label);
        wait_until(timeout, &what, || async {
            let status = self.status().await?;
            Ok(Check::when(status == wanted, format_args!("{status:?}")))
        })
        .await
    }

    /// Types `text` into `#message-input` and clicks `#send-button`.
    ///
    /// # Errors
    /// The composer is missing.
    pub async fn send_message(&self, text: &str) -> anyhow::Result<()> {
        self.type_message(text).await?;
        self.client
            .find(Locator::Css("#send-button"))
            .await
            .context("finding #send-button")?
            .click()
            .await
            .context("clicking #send-button")
    }

    /// Types `text` into `#message-input` and presses Enter.
    ///
    /// # Errors
    /// The composer is missing.
    pub async fn send_message_with_enter(&self, text: &str) -> anyhow::Result<()> {
        let input = self.type_message(text).await?;
        input
            .send_keys(&char::from(Key::Enter).to_string())
            .await
            .context("pressing Enter in #message-input")
    }

    async fn type_message(&self, text: &str) -> anyhow::Result<Element> {
        let input = self
            .client
            .find(Locator::Css("#message-input"))
            .await
            .context("finding #message-input")?;
        input.clear().await.context("clearing #message-input")?;
        input
            .send_keys(text)
            .await
            .context("typing into #message-input")?;
        Ok(input)
    }

    /// Every `#messages li.message`, top to bottom.
    ///
    /// # Errors
    /// The session is gone.
    pub async fn messages(&self) -> anyhow::Result<Vec<ShownMessage>> {
        let lines = self
            .execute(
                "return Array.from(document.querySelectorAll('#messages li.message'))
                     .map(function (li) {
                         return {
                             text: li.textContent,
                             time: li.getAttribute('data-time'),
                             own: li.classList.contains('own'),
                             system: li.classList.contains('system')
                         };
                     });",
                vec![],
            )
            .await?;
        let lines = lines
            .as_array()
            .ok_or_else(|| anyhow!("the message script returned {lines}"))?;
        Ok(lines
            .iter()
            .map(|line| ShownMessage {
                text: line["text"].as_str().unwrap_or_default().to_owned(),
                time: line["time"].as_str().and_then(|time| time.parse().ok()),
                own: line["own"] == json!(true),
                system: line["system"] == json!(true),
            })
            .collect())
    }

    /// The texts of [`Browser::messages`].
    ///
    /// # Errors
    /// The session is gone.
    pub async fn message_texts(&self) -> anyhow::Result<Vec<String>> {
        Ok(self
            .messages()
            .await?
            .into_iter()
            .map(|message| message.text)
            .collect())
    }

    /// Waits until the message lines satisfy `holds`, and returns them.
    ///
    /// # Errors
    /// Not within `timeout` (the error lists the lines shown).
    pub async fn wait_for_messages(
        &self,
        what: &str,
        timeout: Duration,
        holds: impl Fn(&[ShownMessage]) -> bool,
    ) -> anyhow::Result<Vec<ShownMessage>> {
        let what = format!("{}'s page {what}", self.label);
        wait_until(timeout, &what, || async {
            let messages = self.messages().await?;
            Ok(if holds(&messages) {
                Check::Done(messages)
            } else {
                Check::NotYet(format!("{messages:?}"))
            })
        })
        .await
    }

    /// Waits until a message line containing `text` is shown, and returns it.
    ///
    /// # Errors
    /// Not within `timeout` (the error lists the lines shown).
    pub async fn wait_for_message(
        &self,
        text: &str,
        timeout: Duration,
    ) -> anyhow::Result<ShownMessage> {
        let what = format!("{}'s page shows a message containing {text:?}", self.label);
        wait_until(timeout, &what, || async {
            let messages = self.messages().await?;
            Ok(
                match messages.iter().find(|message| message.text.contains(text)) {
                    Some(message) => Check::Done(message.clone()),
                    None => Check::NotYet(format!("{:?}", texts_of(&messages))),
                },
            )
        })
        .await
    }

    /// The names in `#online-list li`, trimmed.
    ///
    /// # Errors
    /// The session is gone.
    pub async fn online_names(&self) -> anyhow::Result<Vec<String>> {
        let names = self
            .execute(
                "return Array.from(document.querySelectorAll('#online-list li'))
                     .map(function (li) { return li.textContent.trim(); });",
                vec![],
            )
            .await?;
        Ok(string_list(&names))
    }

    /// Waits until the online list satisfies `holds` (given the names shown).
    ///
    /// # Errors
    /// Not within `timeout`.
    pub async fn wait_online(
        &self,
        what: &str,
        timeout: Duration,
        holds: impl Fn(&[String]) -> bool,
    ) -> anyhow::Result<Vec<String>> {
        let what = format!("{}'s online list {what}", self.label);
        wait_until(timeout, &what, || async {
            let names = self.online_names().await?;
            Ok(if holds(&names) {
                Check::Done(names)
            } else {
                Check::NotYet(format!("{names:?}"))
            })
        })
        .await
    }

    // ---- The legacy jQuery page ----

    /// Opens `legacy/jquery.html?jq=<jquery_major>&server=<server_url>&name=<name>` from
    /// `file://` and waits until it has joined.
    ///
    /// # Errors
    /// The page or its jQuery (`npm install` in `e2e/legacy`) is missing, or it does not join.
    pub async fn open_legacy(
        &self,
        jquery_major: u8,
        server_url: &str,
        name: &str,
    ) -> anyhow::Result<()> {
        let page = legacy_page_path();
        let jquery = page
            .with_file_name("node_modules")
            .join(format!("jquery{jquery_major}"))
            .join("dist")
            .join("jquery.min.js");
        ensure!(
            jquery.is_file(),
            "{} is missing: run `npm install` in {} (scripts/setup.sh test does)",
            jquery.display(),
            page.with_file_name("").display()
        );
        let mut url = reqwest::Url::from_file_path(&page)
            .map_err(|()| anyhow!("{} is not an absolute path", page.display()))?;
        url.query_pairs_mut()
            .append_pair("jq", &jquery_major.to_string())
            .append_pair("server", server_url)
            .append_pair("name", name);
        self.goto_and_wait_ready(url.as_str()).await
    }

    /// The jQuery version the legacy page runs (`$.fn.jquery`).
    ///
    /// # Errors
    /// jQuery is not loaded.
    pub async fn jquery_version(&self) -> anyhow::Result<String> {
        let version = self
            .execute("return window.jQuery.fn.jquery;", vec![])
            .await?;
        version
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("$.fn.jquery is {version}"))
    }

    /// The lines of the legacy page's `#chat` list (`name:msg`).
    ///
    /// # Errors
    /// The session is gone.
    pub async fn legacy_lines(&self) -> anyhow::Result<Vec<String>> {
        let lines = self
            .execute(
                "return Array.from(document.querySelectorAll('#chat li'))
                     .map(function (li) { return li.textContent; });",
                vec![],
            )
            .await?;
        Ok(string_list(&lines))
    }

    /// Types `text` into the legacy page's `#msg` and submits the form with its button.
    ///
    /// # Errors
    /// The form is missing.
    pub async fn legacy_send(&self, text: &str) -> anyhow::Result<()> {
        let input = self
            .client
            .find(Locator::Css("#msg"))
            .await
            .context("finding #msg")?;
        input.send_keys(text).await.context("typing into #msg")?;
        self.client
            .find(Locator::Css("#send"))
            .await
            .context("finding #send")?
            .click()
            .await
            .context("clicking #send")
    }

    /// Waits until the legacy page shows the line `line` exactly.
    ///
    /// # Errors
    /// Not within `timeout`.
    pub async fn wait_for_legacy_line(&self, line: &str, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("{}'s legacy page shows the line {line:?}", self.label);
        wait_until(timeout, &what, || async {
            let lines = self.legacy_lines().await?;
            Ok(Check::when(
                lines.iter().any(|shown| shown == line),
                format_args!("{lines:?}"),
            ))
        })
        .await
    }
}

/// The texts of `messages`, for failure messages.
pub fn texts_of(messages: &[ShownMessage]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message.text.as_str())
        .collect()
}

/// A JSON array of strings as a `Vec` (anything else is skipped).
fn string_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::ConnectionStatus;

    #[test]
    fn status_texts_are_classified_reconnecting_first() {
        let cases = [
            ("connected", ConnectionStatus::Connected),
            ("● Connected (3 online)", ConnectionStatus::Connected),
            ("Reconnecting in 2 s…", ConnectionStatus::Reconnecting),
            ("offline", ConnectionStatus::Offline),
            (
                "disconnected",
                ConnectionStatus::Other("disconnected".to_owned()),
            ),
            ("", ConnectionStatus::Other(String::new())),
        ];
        for (text, expected) in cases {
            assert_eq!(
                ConnectionStatus::parse(text),
                expected,
                "status text {text:?}"
            );
        }
    }
}
