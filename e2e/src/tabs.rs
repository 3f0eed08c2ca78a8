//! Several tabs of one browser (one Chromium profile, so one connection pool and one set of
//! Web Locks): opening them, switching between them, and timing when a message shows in each.
//!
//! A [`Browser`]'s helpers act on its current tab; [`Tabs`] switches to a tab before each
//! use. Arrival times are taken in the page itself (`Date.now()` from a `MutationObserver`),
//! so the time WebDriver takes to go round the tabs does not count.

use anyhow::{anyhow, Context};
use fantoccini::wd::WindowHandle;
use serde_json::{json, Value};

use crate::browser::Browser;

/// The tabs a test opened in one browser, in opening order.
pub struct Tabs<'a> {
    browser: &'a Browser,
    handles: Vec<WindowHandle>,
}

impl<'a> Tabs<'a> {
    /// The browser's current tab, as tab 0.
    ///
    /// # Errors
    /// The session is gone.
    pub async fn new(browser: &'a Browser) -> anyhow::Result<Tabs<'a>> {
        let first = browser.client().window().await.context("the first tab")?;
        Ok(Tabs {
            browser,
            handles: vec![first],
        })
    }

    /// How many tabs are open.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether no tab is open.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Opens a new tab, makes it current, and loads the Yew page at `url` in it (waiting for
    /// it to mount). Returns its index.
    ///
    /// # Errors
    /// The tab cannot be opened or the page does not load in time.
    pub async fn open(&mut self, url: &str) -> anyhow::Result<usize> {
        let index = self.open_blank().await?;
        self.browser.open_chat(url).await?;
        Ok(index)
    }

    /// Opens a new empty tab and makes it current (to prepare it before loading a page).
    /// Returns its index.
    ///
    /// # Errors
    /// The tab cannot be opened.
    pub async fn open_blank(&mut self) -> anyhow::Result<usize> {
        let client = self.browser.client();
        let created = client.new_window(true).await.context("opening a tab")?;
        client
            .switch_to_window(created.handle.clone())
            .await
            .context("switching to the new tab")?;
        self.handles.push(created.handle);
        Ok(self.handles.len() - 1)
    }

    /// Makes tab `index` current and returns the browser to act on it.
    ///
    /// # Errors
    /// No such tab, or it is gone.
    pub async fn switch(&self, index: usize) -> anyhow::Result<&'a Browser> {
        let handle = self
            .handles
            .get(index)
            .ok_or_else(|| anyhow!("no tab {index} (there are {})", self.handles.len()))?;
        self.browser
            .client()
            .switch_to_window(handle.clone())
            .await
            .with_context(|| format!("switching to tab {index}"))?;
        Ok(self.browser)
    }

    /// Closes tab `index` as a user would (its `pagehide` runs); the later tabs' indexes move
    /// down by one. Another tab is current afterwards.
    ///
    /// # Errors
    /// No such tab, or WebDriver fails.
    pub async fn close(&mut self, index: usize) -> anyhow::Result<()> {
        self.switch(index).await?;
        self.browser.close_window().await?;
        self.handles.remove(index);
        if !self.handles.is_empty() {
            self.switch(0).await?;
        }
        Ok(())
    }

    /// `#connection-status[data-poll]` of every tab: `leader`, `follower` or `alone`.
    ///
    /// # Errors
    /// A tab is gone.
    pub async fn poll_roles(&self) -> anyhow::Result<Vec<String>> {
        let mut roles = Vec::with_capacity(self.handles.len());
        for index in 0..self.handles.len() {
            let role = self
                .switch(index)
                .await?
                .execute(
                    "var status = document.getElementById('connection-status');
                     return status ? status.getAttribute('data-poll') : null;",
                    vec![],
                )
                .await?;
            roles.push(role.as_str().unwrap_or("none").to_owned());
        }
        Ok(roles)
    }

    /// In every tab, starts watching for a message line containing `text` and notes the
    /// page's `Date.now()` when it shows (read back with [`Tabs::arrivals`]).
    ///
    /// # Errors
    /// A tab is gone.
    pub async fn watch_for(&self, text: &str) -> anyhow::Result<()> {
        for index in 0..self.handles.len() {
            self.switch(index)
                .await?
                .execute(
                    "var text = arguments[0];
                     window.__chatArrival = null;
                     var check = function () {
                         if (window.__chatArrival !== null) { return; }
                         var lines = document.querySelectorAll('#messages li.message');
                         for (var i = 0; i < lines.length; i++) {
                             if (lines[i].textContent.indexOf(text) >= 0) {
                                 window.__chatArrival = Date.now();
                                 return;
                             }
                         }
                     };
                     check();
                     new MutationObserver(check).observe(document.body,
                         { childList: true, subtree: true, characterData: true });",
                    vec![json!(text)],
                )
                .await?;
        }
        Ok(())
    }

    /// For every tab, when the text given to [`Tabs::watch_for`] showed (ms since the Unix
    /// epoch), or `None` if not yet.
    ///
    /// # Errors
    /// A tab is gone.
    pub async fn arrivals(&self) -> anyhow::Result<Vec<Option<f64>>> {
        let mut arrivals = Vec::with_capacity(self.handles.len());
        for index in 0..self.handles.len() {
            let seen: Value = self
                .switch(index)
                .await?
                .execute("return window.__chatArrival;", vec![])
                .await?;
            arrivals.push(seen.as_f64());
        }
        Ok(arrivals)
    }
}
