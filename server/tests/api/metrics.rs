//! The operators' listener: `/metrics` in the Prometheus text format and the `/status` page,
//! scraped while the figures move.

use chat_server::telemetry::{self, parse_samples};

use crate::support::{spawn_app_with, TestApp};

/// Scrapes `/metrics` and returns the value of `name{labels}` (0 when absent).
struct Scrape(Vec<telemetry::Sample>);

impl Scrape {
    fn value(&self, name: &str, labels: &str) -> f64 {
        self.0
            .iter()
            .find(|sample| sample.name == name && sample.labels == labels)
            .map_or(0.0, |sample| sample.value)
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let addr = app.metrics_addr.expect("a metrics listener");
    let response = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    Scrape(parse_samples(&response.text().await.unwrap()))
}

#[tokio::test]
async fn the_figures_move_with_saves_errors_holds_refusals_and_commits() {
    let app = spawn_app_with(|settings| {
        settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        settings.max_polls_per_ip = 1;
        settings.compact_after = 2;
    })
    .await;
    let before = scrape(&app).await;
    assert_eq!(before.value(telemetry::SAVES, "kind=\"push\""), 0.0);
    assert_eq!(before.value(telemetry::HELD_POPS, ""), 0.0);
    assert!(before.value(telemetry::OPEN_FDS, "") > 0.0);
    assert!(before.value(telemetry::RESIDENT_MEMORY, "") > 0.0);

    app.call("/?name=ann", "callback").await; // a join
    let time = app.push("ann", "hello").await;
    let refused = app
        .call("/?name=ann&method=push&msg=&time=1", "callback")
        .await;
    assert_eq!(refused["error"]["code"], "empty_message");

    // One held pop, then a second from the same address beyond --max-polls-per-ip 1.
    let held = {
        let client = app.client.clone();
        let url = format!("{}?name=bob&method=pop&time={time}", app.base_url);
        tokio::spawn(async move { crate::support::get_text(&client, &url).await })
    };
    app.wait_for_held(1).await;
    let during = scrape(&app).await;
    assert_eq!(during.value(telemetry::HELD_POPS, ""), 1.0);
    assert!(during.value(telemetry::ONLINE_NAMES, "") >= 1.0);
    let second = app
        .call(&format!("/?name=bob&method=pop&time={time}"), "callback")
        .await;
    assert_eq!(second["error"]["code"], "too_many_polls");

    app.push("ann", "wakes bob").await;
    held.await.unwrap();
    let after = scrape(&app).await;
    let moved = |name: &str, labels: &str| after.value(name, labels) - before.value(name, labels);
    assert_eq!(moved(telemetry::SAVES, "kind=\"join\""), 1.0);
    assert_eq!(moved(telemetry::SAVES, "kind=\"push\""), 2.0);
    assert_eq!(moved(telemetry::ERRORS, "code=\"empty_message\""), 1.0);
    assert_eq!(moved(telemetry::ERRORS, "code=\"too_many_polls\""), 1.0);
    assert_eq!(
        moved(telemetry::REFUSALS, "limit=\"polls_per_address\""),
        1.0
    );
    assert_eq!(after.value(telemetry::HELD_POPS, ""), 0.0);
    assert_eq!(after.value(telemetry::MESSAGES, ""), 3.0);
    assert!(after.value(telemetry::STORAGE_BYTES, "") > 0.0);
    let count = |name: &str| after.value(&format!("{name}_count"), "");
    assert_eq!(
        count(telemetry::WAKE_TO_ANSWER),
        1.0,
        "bob's pop was woken once"
    );
    assert_eq!(count(telemetry::WAL_FSYNC), 3.0, "three group commits");
    assert_eq!(
        after.value(&format!("{}_sum", telemetry::GROUP_COMMIT_BATCH), ""),
        3.0
    );
    assert!(
        count(telemetry::COMPACTION) >= 1.0,
        "--compact-after 2 compacted"
    );

    let status = app
        .client
        .get(format!("http://{}/status", app.metrics_addr.unwrap()))
        .send()
        .await
        .unwrap();
    assert!(status.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = status.text().await.unwrap();
    assert!(
        page.contains("<th scope=\"row\">Messages</th><td>3</td>"),
        "{page}"
    );
    assert!(
        page.contains("<th scope=\"row\">Saves: push</th><td>2</td>"),
        "{page}"
    );
}

#[tokio::test]
async fn metrics_are_off_by_default_and_never_on_the_chat_listener() {
    let app = spawn_app_with(|_| {}).await;
    assert_eq!(app.metrics_addr, None);
    let answer = app.get("/metrics").await;
    assert!(
        !answer.body.contains(telemetry::SAVES),
        "the chat listener shows metrics: {}",
        answer.body
    );
}

#[tokio::test]
async fn every_figure_the_grafana_dashboard_plots_is_served() {
    let app = spawn_app_with(|settings| {
        settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    app.push("ann", "one commit, so the histograms have series")
        .await;
    let served: std::collections::HashSet<String> = scrape(&app)
        .await
        .0
        .into_iter()
        .map(|sample| sample.name)
        .collect();
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana-dashboard.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut plotted = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            plotted.extend(
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|word| word.starts_with("chat_") || word.starts_with("process_"))
                    .map(str::to_owned),
            );
        }
    }
    assert!(plotted.len() >= 12, "{plotted:?}");
    for name in plotted {
        assert!(
            served.contains(&name),
            "the dashboard plots {name}, which /metrics lacks"
        );
    }
}
