//! The page as a keyboard user and a reader with many tabs meet it: everything reachable with
//! Tab and Enter, and the unread count in a hidden tab's title.

use std::time::Duration;

use anyhow::{bail, ensure, Context};
use chat_e2e::{wait_until, Browser, Check, ConnectionStatus, Env, ServerOptions, Tabs};
use fantoccini::key::Key;
use serde_json::json;

/// How long a message or a state may take to show.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

/// Most Tab presses to reach any control of the page.
const MAX_TABS: usize = 30;

/// The `id` of the focused element (`""` when it has none, `null` for none focused).
async fn focused_id(page: &Browser) -> anyhow::Result<String> {
    let id = page
        .execute(
            "var el = document.activeElement;
             return el && el !== document.body ? (el.id || el.tagName) : null;",
            vec![],
        )
        .await?;
    Ok(id.as_str().unwrap_or("(nothing)").to_owned())
}

/// Presses `keys` into whatever has the keyboard focus, as a keyboard user would.
async fn press(page: &Browser, keys: &str) -> anyhow::Result<()> {
    page.client()
        .active_element()
        .await
        .context("finding the focused element")?
        .send_keys(keys)
        .await
        .with_context(|| format!("pressing {keys:?}"))
}

/// Presses Tab until the element with `id` has the focus; fails after [`MAX_TABS`] presses,
/// listing where the focus went.
async fn tab_to(page: &Browser, id: &str) -> anyhow::Result<()> {
    let mut path = Vec::new();
    for _ in 0..MAX_TABS {
        let focused = focused_id(page).await?;
        if focused == id {
            return Ok(());
        }
        path.push(focused);
        press(page, &char::from(Key::Tab).to_string()).await?;
    }
    bail!("#{id} not reached with {MAX_TABS} Tab presses; the focus went {path:?}")
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn the_page_is_used_with_the_keyboard_alone() -> anyhow::Result<()> {
    let env = Env::start("keyboard_only", ServerOptions::default()).await?;
    let page = env.browser("keys").await?;
    let enter = char::from(Key::Enter).to_string();
    env.run(&[&page], async {
        page.open_chat(&env.server.base_url()).await?;
        // Join: Tab to the nickname box, type, Enter.
        tab_to(&page, "nickname-input").await?;
        press(&page, "Kay").await?;
        press(&page, &enter).await?;
        page.wait_status(ConnectionStatus::Connected, SHOW_TIMEOUT)
            .await?;
        // Joining puts the focus in the message box; Enter sends and the focus stays.
        wait_until(SHOW_TIMEOUT, "the message box has the focus", || async {
            let focused = focused_id(&page).await?;
            Ok(Check::when(focused == "message-input", focused))
        })
        .await?;
        press(&page, "typed, never clicked").await?;
        press(&page, &enter).await?;
        page.wait_for_message("typed, never clicked", SHOW_TIMEOUT)
            .await?;
        let focused = focused_id(&page).await?;
        ensure!(
            focused == "message-input",
            "after Enter the focus is on {focused}"
        );

        // Every control is reachable: the name change, and the room switcher, which takes the
        // page to another room.
        tab_to(&page, "change-name").await?;
        tab_to(&page, "room-input").await?;
        press(&page, "kbd").await?;
        press(&page, &enter).await?;
        page.wait_ready().await?;
        wait_until(SHOW_TIMEOUT, "the page is in #kbd", || async {
            let title = page.execute("return document.title;", vec![]).await?;
            Ok(Check::when(title == json!("#kbd · Chat"), title))
        })
        .await?;
        page.wait_status(ConnectionStatus::Connected, SHOW_TIMEOUT)
            .await?;
        env.screenshot(&page, None).await?;
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn a_hidden_tab_counts_unread_messages_in_its_title() -> anyhow::Result<()> {
    let env = Env::start("unread_title", ServerOptions::default()).await?;
    let browser = env.browser("reader").await?;
    let url = format!("{}#news", env.server.base_url());
    env.run(&[&browser], async {
        browser.open_chat(&url).await?;
        browser.join("Reader").await?;
        // Every title the first tab shows is noted, so it can be read after the tab is shown.
        browser
            .execute(
                "window.__titles = [document.title];
                 window.__hidden = [document.hidden];
                 document.addEventListener('visibilitychange', function () {
                     window.__hidden.push(document.hidden);
                 });
                 new MutationObserver(function () { window.__titles.push(document.title); })
                     .observe(document.querySelector('title'),
                              { childList: true, characterData: true, subtree: true });",
                vec![],
            )
            .await?;
        let mut tabs = Tabs::new(&browser).await?;
        // A second tab of the room in front hides the first (which leads their tab group, so it
        // gets the messages and relays them to the second).
        tabs.open(&url).await?;
        for text in ["first news", "second news"] {
            env.push_in_room("news", "editor", text).await?;
        }
        browser
            .wait_for_message("second news", SHOW_TIMEOUT)
            .await?;

        // Switching back shows the first tab again: its titles while hidden counted up, and
        // the count is gone now.
        tabs.switch(0).await?;
        let hidden = browser.execute("return window.__hidden;", vec![]).await?;
        ensure!(
            hidden == json!([false, true, false]),
            "the first tab was not hidden, then shown: {hidden}"
        );
        let titles = browser.execute("return window.__titles;", vec![]).await?;
        ensure!(
            titles
                == json!([
                    "#news · Chat",
                    "(1) #news · Chat",
                    "(2) #news · Chat",
                    "#news · Chat"
                ]),
            "the hidden tab's titles: {titles}"
        );
        Ok(())
    })
    .await
}
