//! The online list only for clients that ask, and only when it changed (`presence`): legacy
//! clients get the original's answers, and a fan-out to pollers that have the list writes no
//! list into their answers.

use crate::support::{call_once, get_text, spawn_app, spawn_app_with};

/// The fields an answer carries about who is online.
const PRESENCE_FIELDS: [&str; 3] = ["online", "onlineCount", "presenceTag"];

#[tokio::test]
async fn a_legacy_client_gets_no_online_list_as_the_original_server_sent_none() {
    let app = spawn_app().await;
    let joined = app.call("/?name=ann", "callback").await;
    let time = joined["time"].as_u64().unwrap();
    let pushed = app
        .call(
            &format!("/?name=ann&method=push&msg=hi&time={time}"),
            "callback",
        )
        .await;
    let popped = app
        .call(&format!("/?name=bob&method=pop&time={time}"), "callback")
        .await;
    let left = app
        .call(&format!("/?name=ann&method=exit&time={time}"), "callback")
        .await;
    for (what, answer) in [
        ("join", joined),
        ("push", pushed),
        ("pop", popped),
        ("exit", left),
    ] {
        for field in PRESENCE_FIELDS {
            assert!(answer.get(field).is_none(), "{what} has {field}: {answer}");
        }
    }
}

#[tokio::test]
async fn the_online_list_is_sent_again_only_when_it_changed() {
    let app = spawn_app().await;
    // First contact: no tag yet, so the list and its tag.
    let joined = app.call("/?name=ann&presence=", "callback").await;
    assert_eq!(joined["online"], serde_json::json!(["ann"]), "{joined}");
    assert_eq!(joined["onlineCount"], 1);
    let tag = joined["presenceTag"].as_str().unwrap().to_owned();
    assert_eq!(tag.len(), 16, "{joined}");
    let time = joined["time"].as_u64().unwrap();

    // The same list: only the tag.
    app.push("ann", "hello").await;
    let popped = app
        .call(
            &format!("/?name=ann&method=pop&time={time}&presence={tag}"),
            "callback",
        )
        .await;
    assert_eq!(popped["msgList"].as_array().unwrap().len(), 1, "{popped}");
    assert!(popped.get("online").is_none(), "unchanged: {popped}");
    assert!(popped.get("onlineCount").is_none(), "unchanged: {popped}");
    assert_eq!(popped["presenceTag"], tag.as_str());

    // Someone arrives: the new list and a new tag, and a tag the server never gave counts
    // as none.
    app.call("/?name=bob", "callback").await;
    for seen in [tag.as_str(), "not-a-tag", ""] {
        let popped = app
            .call(
                &format!("/?name=ann&method=pop&time={time}&presence={seen}"),
                "callback",
            )
            .await;
        assert_eq!(
            popped["online"],
            serde_json::json!(["ann", "bob"]),
            "after {seen:?}: {popped}"
        );
        assert_eq!(popped["onlineCount"], 2);
        assert_ne!(popped["presenceTag"], tag.as_str(), "{popped}");
    }
}

#[tokio::test]
async fn a_fan_out_to_pollers_that_have_the_list_writes_no_list() {
    const N_POLLERS: usize = 20;
    let app = spawn_app_with(|settings| settings.poll_timeout = 30.0).await;
    app.call("/?name=ann&presence=", "callback").await;
    // Every poller is in the list the tag stands for: each a held pop under its own name,
    // told the tag of the list with all of them.
    for n in 0..N_POLLERS {
        app.call(&format!("/?name=p{n}&presence="), "callback")
            .await;
    }
    let listed = app
        .call("/?name=ann&method=pop&time=0&last=1&presence=", "callback")
        .await;
    assert_eq!(listed["onlineCount"], N_POLLERS + 1, "{listed}");
    let tag = listed["presenceTag"].as_str().unwrap().to_owned();
    let held: Vec<_> = (0..N_POLLERS)
        .map(|n| {
            let client = app.client.clone();
            let url = format!(
                "{}?name=p{n}&method=pop&time={}&presence={tag}",
                app.base_url, listed["time"]
            );
            tokio::spawn(async move { get_text(&client, &url).await })
        })
        .collect();
    app.wait_for_held(N_POLLERS as u64).await;
    app.push("ann", "to everyone").await;
    for poller in held {
        let answer = call_once(&poller.await.unwrap(), "callback");
        assert_eq!(answer["msgList"][0]["msg"], "to everyone", "{answer}");
        assert!(answer.get("online").is_none(), "{answer}");
        assert_eq!(answer["presenceTag"], tag.as_str());
    }
}
