//! Browser tests of reading the conversation (issue 10): sender groups and day separators,
//! local times with the full date on hover, safe links, mentions, screen-reader announcements
//! that do not flood, mention notifications asked for on a click only, and axe-core finding
//! nothing on any state of the page, light and dark.
//!
//! `#[ignore]`d like every browser test; run with
//! `cargo test -p chat-e2e --test reading -- --ignored --test-threads=1` after
//! `trunk build --release --offline` and `scripts/setup.sh test` (axe-core in `e2e/axe`).

use std::time::Duration;

use anyhow::{ensure, Context};
use chat_e2e::{
    wait_until, Browser, Check, ColorScheme, ConnectionStatus, Env, ServerOptions, StopSignal,
};
use serde_json::{json, Value};

/// How long a message may take to show on the page.
const SHOW_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a page may take to come back after the server restarts.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// A time zone with a non-whole-hour offset and no daylight saving time (UTC+05:45), so that a
/// page formatting times in UTC, or only shifting whole hours, shows a wrong clock.
const TIME_ZONE: &str = "Asia/Kathmandu";
const TIME_ZONE_OFFSET_MIN: u64 = 5 * 60 + 45;

/// Opens the Yew page from the server and joins as `name`.
async fn open_and_join(env: &Env, page: &Browser, name: &str) -> anyhow::Result<()> {
    page.open_chat(&env.server.base_url()).await?;
    page.join(name)
        .await
        .with_context(|| format!("{} joins as {name}", page.label()))
}

/// Runs axe-core on the page as it is, in the light and in the dark colour scheme.
async fn assert_accessible_both_schemes(page: &Browser, state: &str) -> anyhow::Result<()> {
    for scheme in [ColorScheme::Light, ColorScheme::Dark] {
        page.emulate_color_scheme(scheme).await?;
        page.assert_accessible(&format!("{state}, {scheme:?}"))
            .await?;
    }
    Ok(())
}

/// Waits until the page shows a message line containing each of `texts`.
async fn wait_for_all(page: &Browser, texts: &[&str]) -> anyhow::Result<()> {
    page.wait_for_messages("shows every pushed message", SHOW_TIMEOUT, |messages| {
        texts
            .iter()
            .all(|text| messages.iter().any(|message| message.text.contains(text)))
    })
    .await
    .map(drop)
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn every_state_of_the_page_has_no_axe_violation_light_and_dark() -> anyhow::Result<()> {
    let env = Env::start("reading_axe", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    env.run(&[&alice], async {
        alice.open_chat(&env.server.base_url()).await?;
        // The checker itself sees a broken page: an image without a text alternative.
        alice
            .execute(
                "var img = document.createElement('img'); img.id = 'axe-self-check';
                 img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
                 document.querySelector('main').appendChild(img); return true;",
                vec![],
            )
            .await?;
        let found = alice.axe_violations().await?;
        ensure!(
            found.iter().any(|violation| violation.id == "image-alt"
                && violation
                    .nodes
                    .iter()
                    .any(|node| node.contains("#axe-self-check"))),
            "axe-core should report the image without alt: {found:?}"
        );
        alice
            .execute(
                "document.getElementById('axe-self-check').remove(); return true;",
                vec![],
            )
            .await?;
        assert_accessible_both_schemes(&alice, "the nickname form").await?;
        // The real browser API, untouched by the page: nothing asked on load.
        let permission = alice
            .execute("return Notification.permission;", vec![])
            .await?;
        ensure!(
            permission == json!("default"),
            "the page asked for the notification permission on load: {permission}"
        );

        alice.join("Alice").await?;
        alice
            .wait_for_messages("shows its join line", SHOW_TIMEOUT, |messages| {
                messages.iter().any(|message| message.system)
            })
            .await?;
        assert_accessible_both_schemes(&alice, "joined, no chat line yet").await?;

        let texts = [
            "first line of a group",
            "second line, same group",
            "docs at https://example.com/docs?a=1 and javascript:alert(1)",
            "hey alice, a mention",
        ];
        for text in &texts[..3] {
            env.push("relay", text).await?;
        }
        env.push("bob", texts[3]).await?;
        alice.send_message("my own line").await?;
        wait_for_all(&alice, &[&texts[..], &["my own line"]].concat()).await?;
        assert_accessible_both_schemes(&alice, "groups, a link, a mention, an own line").await?;
        env.screenshot(&alice, Some("messages-dark")).await?;
        alice.emulate_color_scheme(ColorScheme::Light).await?;
        env.screenshot(&alice, Some("messages-light")).await?;

        // Enough lines to scroll; scrolled up, a new one brings the "new messages" button.
        let filler: Vec<String> = (1..=30).map(|n| format!("filler line {n}")).collect();
        for text in &filler {
            env.push("carl", text).await?;
        }
        alice
            .wait_for_message("filler line 30", SHOW_TIMEOUT)
            .await?;
        // Scrolled to the top, and the page told so now rather than at the next frame, so that
        // the next message surely finds the reader scrolled up.
        let top = alice
            .execute(
                "var list = document.getElementById('messages');
                 list.scrollTop = 0;
                 list.dispatchEvent(new Event('scroll'));
                 return list.scrollTop;",
                vec![],
            )
            .await?;
        ensure!(top == json!(0), "the list does not scroll: scrollTop {top}");
        env.push("carl", "while scrolled up").await?;
        alice.wait_for_element("#new-messages").await?;
        assert_accessible_both_schemes(&alice, "scrolled up, with the new-messages button").await?;

        alice
            .client()
            .find(fantoccini::Locator::Css("#change-name"))
            .await?
            .click()
            .await?;
        alice.wait_for_element("#nickname-cancel").await?;
        assert_accessible_both_schemes(&alice, "changing the name while in the room").await?;
        alice
            .client()
            .find(fantoccini::Locator::Css("#nickname-cancel"))
            .await?
            .click()
            .await?;

        env.server.stop(StopSignal::Kill).await?;
        alice
            .wait_status(ConnectionStatus::Reconnecting, RECONNECT_TIMEOUT)
            .await?;
        assert_accessible_both_schemes(&alice, "reconnecting").await?;
        env.server.restart().await?;
        alice
            .wait_status(ConnectionStatus::Connected, RECONNECT_TIMEOUT)
            .await?;
        Ok(())
    })
    .await
}

/// One `li.message` as the grouping test reads it.
#[derive(Debug)]
struct Line {
    text: String,
    time: u64,
    continued: bool,
    /// Whether its name is on screen (not inside a visually hidden element).
    header_shown: bool,
    /// The computed opacity of the element holding its time (`0` while a continued line's
    /// time waits for hover).
    time_opacity: String,
    clock: String,
    datetime: String,
    title: String,
}

/// Every `#messages li.message` with its header and `<time>`.
async fn lines(page: &Browser) -> anyhow::Result<Vec<Line>> {
    let found = page
        .execute(
            "return Array.from(document.querySelectorAll('#messages li.message'))
                 .map(function (li) {
                     var time = li.querySelector('time.time');
                     var name = li.querySelector('.name');
                     return {
                         text: li.textContent,
                         time: Number(li.getAttribute('data-time')),
                         continued: li.classList.contains('continued'),
                         headerShown: name.closest('.visually-hidden') === null,
                         timeOpacity: getComputedStyle(time.parentElement).opacity,
                         clock: time ? time.textContent : '',
                         datetime: time ? time.getAttribute('datetime') : '',
                         title: time ? (time.getAttribute('title') || '') : ''
                     };
                 });",
            vec![],
        )
        .await?;
    let list = found
        .as_array()
        .context("the line script returned no array")?;
    Ok(list
        .iter()
        .map(|line| Line {
            text: line["text"].as_str().unwrap_or_default().to_owned(),
            time: line["time"].as_u64().unwrap_or_default(),
            continued: line["continued"] == json!(true),
            header_shown: line["headerShown"] == json!(true),
            time_opacity: line["timeOpacity"].as_str().unwrap_or_default().to_owned(),
            clock: line["clock"].as_str().unwrap_or_default().to_owned(),
            datetime: line["datetime"].as_str().unwrap_or_default().to_owned(),
            title: line["title"].as_str().unwrap_or_default().to_owned(),
        })
        .collect())
}

/// The civil date `(year, month, day)` of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or_default();
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or_default();
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn lines_are_grouped_under_a_day_with_local_times_safe_links_and_mentions(
) -> anyhow::Result<()> {
    let env = Env::start("reading_groups", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    env.run(&[&alice], async {
        alice
            .cdp(
                "Emulation.setTimezoneOverride",
                json!({ "timezoneId": TIME_ZONE }),
            )
            .await?;
        open_and_join(&env, &alice, "Alice").await?;
        let texts = [
            ("relay", "one"),
            ("relay", "two"),
            (
                "relay",
                "three https://example.com/a?b=1 javascript:alert(1) data:text/html,x",
            ),
            ("bob", "ALICE: look (not alicebob)"),
            ("relay", "four"),
        ];
        for (name, text) in texts {
            env.push(name, text).await?;
        }
        wait_for_all(&alice, &texts.map(|(_, text)| text)).await?;
        env.screenshot(&alice, None).await?;

        let shown = lines(&alice).await?;
        let line = |text: &str| {
            shown
                .iter()
                .find(|line| line.text.contains(text))
                .with_context(|| format!("no line {text:?} in {shown:?}"))
        };
        // Grouping: relay's first line has the header, the next two continue it; bob's line
        // starts a group of its own, and so does relay's line after it.
        for (text, continued) in [
            ("one", false),
            ("two", true),
            ("three", true),
            ("ALICE", false),
            ("four", false),
        ] {
            let found = line(text)?;
            ensure!(
                found.continued == continued && found.header_shown != continued,
                "{text:?}: continued should be {continued} and the header shown {}: {found:?}",
                !continued
            );
            // A continued line still names its sender for screen readers and scripts.
            ensure!(
                found
                    .text
                    .contains(if text == "ALICE" { "bob" } else { "relay" }),
                "{text:?}: the line does not name its sender: {found:?}"
            );
        }

        // Local time: HH:MM in the emulated zone, the ISO instant, the full date in the title.
        for found in &shown {
            let minutes = (found.time / 60_000 + TIME_ZONE_OFFSET_MIN) % (24 * 60);
            let clock = format!("{:02}:{:02}", minutes / 60, minutes % 60);
            ensure!(found.clock == clock, "clock should be {clock}: {found:?}");
            ensure!(
                found.datetime.ends_with('Z') && found.datetime.len() == 24,
                "datetime is not an ISO instant: {found:?}"
            );
        }
        // A continued line's time shows on hover only, with the full date in its title too.
        let two = line("two")?;
        ensure!(
            two.time_opacity == "0" && two.title.contains("GMT+5:45"),
            "a continued line's time waits for hover and has a title: {two:?}"
        );
        alice.hover("#messages li.message.continued").await?;
        let hovered = lines(&alice).await?;
        ensure!(
            hovered
                .iter()
                .any(|line| line.text.contains("two") && line.time_opacity == "1"),
            "hovering the continued line shows its time: {hovered:?}"
        );
        let header = line("one")?;
        let local_ms = header.time + TIME_ZONE_OFFSET_MIN * 60_000;
        let (year, _, day) =
            civil_from_days(i64::try_from(local_ms / 86_400_000).context("time too large")?);
        ensure!(
            header.title.contains(&year.to_string())
                && header.title.contains(&format!(" {day},"))
                && header.title.contains("GMT+5:45"),
            "the header's time title should be the full local date and time: {header:?}"
        );

        // One day separator, "Today", dated with the local day.
        let (y, m, d) = civil_from_days(i64::try_from(local_ms / 86_400_000)?);
        let separators = alice
            .execute(
                "return Array.from(document.querySelectorAll('#messages .day-separator'))
                     .map(function (h) {
                         return [h.tagName, h.textContent,
                                 h.querySelector('time').getAttribute('datetime')];
                     });",
                vec![],
            )
            .await?;
        ensure!(
            separators == json!([["H2", "Today", format!("{y:04}-{m:02}-{d:02}")]]),
            "expected one <h2> \"Today\" dated {y:04}-{m:02}-{d:02}: {separators}"
        );

        // Links: the https address only, opening apart with the safe rel.
        let anchors = alice
            .execute(
                "return Array.from(document.querySelectorAll('#messages li.message a'))
                     .map(function (a) {
                         return [a.getAttribute('href'), a.getAttribute('target'),
                                 a.getAttribute('rel'), a.textContent];
                     });",
                vec![],
            )
            .await?;
        ensure!(
            anchors
                == json!([[
                    "https://example.com/a?b=1",
                    "_blank",
                    "noopener noreferrer nofollow ugc",
                    "https://example.com/a?b=1"
                ]]),
            "exactly one link, the https one, with target=_blank and the safe rel: {anchors}"
        );
        ensure!(
            line("three")?
                .text
                .contains("javascript:alert(1) data:text/html,x"),
            "the other schemes should stay as text"
        );

        // The mention: bob's line is marked, the whole word in any case is highlighted, and
        // "alicebob" is not.
        let mention = alice
            .execute(
                "var li = Array.from(document.querySelectorAll('#messages li.message'))
                     .find(function (li) { return li.textContent.indexOf('ALICE:') >= 0; });
                 return {
                     marked: li.classList.contains('mentions-you'),
                     highlighted: Array.from(li.querySelectorAll('mark.mention'))
                         .map(function (m) { return m.textContent; }),
                     others: document.querySelectorAll('#messages li.mentions-you').length
                 };",
                vec![],
            )
            .await?;
        ensure!(
            mention == json!({ "marked": true, "highlighted": ["ALICE"], "others": 1 }),
            "bob's line should be marked once with ALICE highlighted: {mention}"
        );
        Ok(())
    })
    .await
}

/// Replaces the Notifications API before the page's scripts run: `requestPermission` is
/// counted and answered with `localStorage['test.notification-answer']` (default `granted`), notifications are recorded (and can be clicked with
/// `__clickLastNotification`), and `document.hidden` follows `window.__pretendHidden`.
const NOTIFICATION_STUB: &str = "
(function () {
    var log = { requested: 0, shown: [], closed: 0 };
    var permission = 'default';
    var instances = [];
    class FakeNotification extends EventTarget {
        constructor(title, options) {
            super();
            log.shown.push({ title: title, body: options && options.body });
            instances.push(this);
        }
        close() { log.closed += 1; }
    }
    window.__clickLastNotification = function () {
        instances[instances.length - 1].dispatchEvent(new Event('click'));
    };
    Object.defineProperty(FakeNotification, 'permission', {
        get: function () { return permission; }
    });
    FakeNotification.requestPermission = function () {
        log.requested += 1;
        permission = localStorage.getItem('test.notification-answer') || 'granted';
        return Promise.resolve(permission);
    };
    window.Notification = FakeNotification;
    window.__notifications = log;
    Object.defineProperty(document, 'hidden', {
        configurable: true,
        get: function () { return window.__pretendHidden === true; }
    });
})();
";

/// The stub's record: `{requested, shown: [{title, body}], closed}`.
async fn notification_log(page: &Browser) -> anyhow::Result<Value> {
    page.execute("return window.__notifications;", vec![]).await
}

/// The text of `#live-announcer`.
async fn announced(page: &Browser) -> anyhow::Result<String> {
    let text = page
        .execute(
            "var region = document.getElementById('live-announcer');
             return region ? region.textContent : null;",
            vec![],
        )
        .await?;
    Ok(text.as_str().unwrap_or("(no #live-announcer)").to_owned())
}

async fn wait_announced(page: &Browser, wanted: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_until(
        timeout,
        &format!("#live-announcer says {wanted:?}"),
        || async {
            let text = announced(page).await?;
            Ok(Check::when(text == wanted, text))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn new_messages_are_announced_politely_and_mentions_notify_only_after_a_click(
) -> anyhow::Result<()> {
    let env = Env::start("reading_live", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    env.run(&[&alice], async {
        alice.run_before_each_page(NOTIFICATION_STUB).await?;
        open_and_join(&env, &alice, "Alice").await?;

        // Nothing asked on load or on joining.
        let log = notification_log(&alice).await?;
        ensure!(
            log["requested"] == json!(0),
            "permission asked without a click: {log}"
        );
        let toggle = alice.wait_for_element("#notify-toggle").await?;
        ensure!(
            toggle.attr("aria-pressed").await?.as_deref() == Some("false"),
            "the notification switch starts off"
        );

        // The list is not live itself; the polite region speaks for it.
        let live = alice
            .execute(
                "var list = document.getElementById('messages');
                 var region = document.getElementById('live-announcer');
                 return [list.getAttribute('aria-live'), list.getAttribute('role'),
                         region.getAttribute('aria-live'), region.textContent];",
                vec![],
            )
            .await?;
        ensure!(
            live == json!([null, null, "polite", ""]),
            "the list must not be live and the region must start silent (the join line is \
             the reader's own): {live}"
        );

        env.push("relay", "hello from relay").await?;
        wait_announced(&alice, "relay: hello from relay", SHOW_TIMEOUT).await?;
        alice.send_message("my answer").await?;
        alice.wait_for_message("my answer", SHOW_TIMEOUT).await?;
        ensure!(
            announced(&alice).await? == "relay: hello from relay",
            "the reader's own line is not announced"
        );

        // A catch-up after an outage is one summary, not a flood.
        env.server.stop(StopSignal::Kill).await?;
        alice
            .wait_status(ConnectionStatus::Reconnecting, RECONNECT_TIMEOUT)
            .await?;
        let away: Vec<String> = (1..=5).map(|n| format!("while away {n}")).collect();
        let pushes: Vec<(&str, &str)> = away.iter().map(|text| ("relay", text.as_str())).collect();
        env.server.push_while_away(&env.http, &pushes).await?;
        env.server.restart().await?;
        wait_announced(&alice, "5 new messages", RECONNECT_TIMEOUT).await?;

        // Turning notifications on asks the browser once, from the click.
        toggle.click().await?;
        wait_until(SHOW_TIMEOUT, "the switch turns on", || async {
            let pressed = toggle.attr("aria-pressed").await?;
            Ok(Check::when(
                pressed.as_deref() == Some("true"),
                format!("{pressed:?}"),
            ))
        })
        .await?;
        let log = notification_log(&alice).await?;
        ensure!(
            log["requested"] == json!(1),
            "one request, on the click: {log}"
        );

        // Hidden page: a mention notifies, a line without the name does not.
        alice
            .execute("window.__pretendHidden = true; return true;", vec![])
            .await?;
        env.push("bob", "nothing for you here").await?;
        alice
            .wait_for_message("nothing for you here", SHOW_TIMEOUT)
            .await?;
        env.push("bob", "Alice, are you there?").await?;
        wait_until(SHOW_TIMEOUT, "a notification for the mention", || async {
            let log = notification_log(&alice).await?;
            let n_shown = log["shown"].as_array().map_or(0, Vec::len);
            Ok(Check::when(n_shown >= 1, log.to_string()))
        })
        .await?;
        let log = notification_log(&alice).await?;
        ensure!(
            log["shown"]
                == json!([{ "title": "bob mentioned you", "body": "Alice, are you there?" }]),
            "exactly one notification, for the mention: {log}"
        );
        // Clicking it closes it (and brings the tab forward).
        alice
            .execute("window.__clickLastNotification(); return true;", vec![])
            .await?;
        let log = notification_log(&alice).await?;
        ensure!(
            log["closed"] == json!(1),
            "the clicked notification closes: {log}"
        );
        let remembered = alice
            .execute(
                "return localStorage.getItem('chat.notify_mentions');",
                vec![],
            )
            .await?;
        ensure!(
            remembered == json!("true"),
            "the switch is remembered: {remembered}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
#[ignore = "browser test: run by scripts/test.sh with --ignored"]
async fn a_refused_notification_permission_leaves_the_switch_off_and_says_why() -> anyhow::Result<()>
{
    let env = Env::start("reading_refused", ServerOptions::default()).await?;
    let alice = env.browser("alice").await?;
    env.run(&[&alice], async {
        alice.run_before_each_page(NOTIFICATION_STUB).await?;
        alice.open_chat(&env.server.base_url()).await?;
        alice
            .execute(
                "localStorage.setItem('test.notification-answer', 'denied'); return true;",
                vec![],
            )
            .await?;
        alice.join("Alice").await?;
        let toggle = alice.wait_for_element("#notify-toggle").await?;
        toggle.click().await?;
        let problem = wait_until(SHOW_TIMEOUT, "#notify-problem says why", || async {
            let text = alice
                .execute(
                    "return document.getElementById('notify-problem').textContent;",
                    vec![],
                )
                .await?;
            let text = text.as_str().unwrap_or_default().to_owned();
            Ok(if text.contains("blocked") {
                Check::Done(text)
            } else {
                Check::NotYet(text)
            })
        })
        .await?;
        let pressed = toggle.attr("aria-pressed").await?;
        let log = notification_log(&alice).await?;
        ensure!(
            pressed.as_deref() == Some("false") && log["requested"] == json!(1),
            "refused: the switch stays off after one request ({problem:?}): {pressed:?}, {log}"
        );
        let remembered = alice
            .execute(
                "return localStorage.getItem('chat.notify_mentions');",
                vec![],
            )
            .await?;
        ensure!(remembered.is_null(), "nothing is remembered: {remembered}");
        assert_accessible_both_schemes(&alice, "the notification switch refused").await?;
        Ok(())
    })
    .await
}
