//! Every legacy client shape, with its exact request shape, chatting through the server: a join,
//! a pop held until another client pushes, the pushed message delivered to the callback.

use crate::support::{encode, spawn_app, TestApp};

/// Builds the path and query for `params` (in insertion order) and poll number `n`; returns it
/// with the callback name the library would install.
type BuildRequest = fn(params: &[(&str, String)], n: u64) -> (String, String);

/// How one JSONP library lays out its request.
struct ClientShape {
    /// Which library.
    library: &'static str,
    /// How it builds a request.
    request: BuildRequest,
}

fn param_string(params: &[(&str, String)]) -> String {
    params
        .iter()
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

const MS: u64 = 1_420_016_009_253;

const SHAPES: [ClientShape; 6] = [
    ClientShape {
        // wfQuery's $.jsonp: data in insertion order, then __t, then callback=wfQuery_<ms>.
        library: "wfQuery $.jsonp",
        request: |params, n| {
            let callback = format!("wfQuery_{}", MS + n);
            (
                format!(
                    "/?{}&__t={}&callback={callback}",
                    param_string(params),
                    MS + n
                ),
                callback,
            )
        },
    },
    ClientShape {
        library: "wfQuery $.jsonp with a counter suffix",
        request: |params, n| {
            let callback = format!("wfQuery_{MS}_{n}");
            (
                format!(
                    "/chat?{}&__t={MS}&callback={callback}",
                    param_string(params)
                ),
                callback,
            )
        },
    },
    ClientShape {
        // jQuery 1.4: cache buster first, then the data, then callback=jsonp<ms>.
        library: "jQuery 1.4",
        request: |params, n| {
            let callback = format!("jsonp{}", MS + n);
            (
                format!(
                    "/?_={}&{}&callback={callback}",
                    MS + n + 1,
                    param_string(params)
                ),
                callback,
            )
        },
    },
    ClientShape {
        // jQuery 1.5 to 3.x: data, callback=jQuery<digits>_<ms> (reused for every poll), _=<ms>.
        library: "jQuery 1.5-3.x",
        request: |params, n| {
            let callback = format!("jQuery3710{}_{MS}", 4_861_237_913_052_411u64);
            (
                format!(
                    "/?{}&callback={callback}&_={}",
                    param_string(params),
                    MS + n
                ),
                callback,
            )
        },
    },
    ClientShape {
        // AngularJS 1.x $http.jsonp: dotted callback name, no cache buster.
        library: "AngularJS 1.x",
        request: |params, n| {
            let callback = format!("angular.callbacks._{n}");
            (
                format!("/?{}&callback={callback}", param_string(params)),
                callback,
            )
        },
    },
    ClientShape {
        // A bare <script src> written by hand: no callback parameter at all.
        library: "bare <script src>",
        request: |params, _| (format!("/?{}", param_string(params)), "callback".to_owned()),
    },
];

async fn call_as(
    app: &TestApp,
    shape: &ClientShape,
    params: &[(&str, String)],
    n: u64,
) -> serde_json::Value {
    let (path, callback) = (shape.request)(params, n);
    let answer = app.get(&path).await;
    assert_eq!(
        answer.status, 200,
        "{}: {path}: {}",
        shape.library, answer.body
    );
    let (calls, error) = crate::support::run_jsonp(&answer.body, &callback);
    assert_eq!(
        error, None,
        "{}: the answer threw: {}",
        shape.library, answer.body
    );
    assert_eq!(
        calls.len(),
        1,
        "{}: the callback {callback} must be called once: {}",
        shape.library,
        answer.body
    );
    calls.into_iter().next().unwrap()
}

#[tokio::test]
async fn every_legacy_client_shape_chats_through_the_server() {
    let app = spawn_app().await;
    for (index, shape) in SHAPES.iter().enumerate() {
        let name = format!("用户 {index}");
        // Join: no time, no method.
        let joined = call_as(&app, shape, &[("name", name.clone())], 0).await;
        assert_eq!(joined["msg"], "加入聊天室", "{}", shape.library);
        let mut time = joined["time"].as_u64().unwrap();

        // A pop with nothing newer is held; another client's push wakes it.
        let pop_params = vec![
            ("name", name.clone()),
            ("method", "pop".to_owned()),
            ("time", time.to_string()),
        ];
        let held = {
            let app_url = app.base_url.clone();
            let (path, callback) = (shape.request)(&pop_params, 1);
            let client = app.client.clone();
            tokio::spawn(async move {
                let body = crate::support::get_text(
                    &client,
                    &format!("{}{}", app_url.trim_end_matches('/'), path),
                )
                .await;
                (body, callback)
            })
        };
        app.wait_for_held(1).await;
        let text = format!("hello from the other side of {} 你好 & <b>", shape.library);
        app.push("other", &text).await;
        let (body, callback) = held.await.unwrap();
        let popped = crate::support::call_once(&body, &callback);
        let list = popped["msgList"].as_array().unwrap();
        assert_eq!(
            crate::support::texts(list),
            std::slice::from_ref(&text),
            "{}",
            shape.library
        );
        assert!(popped["time"].as_u64().unwrap() > time, "{}", shape.library);
        time = popped["time"].as_u64().unwrap();

        // The client's own push, with its exact shape.
        let pushed = call_as(
            &app,
            shape,
            &[
                ("name", name.clone()),
                ("method", "push".to_owned()),
                ("msg", "mine too".to_owned()),
                ("time", time.to_string()),
            ],
            2,
        )
        .await;
        assert_eq!(pushed["msg"], "mine too", "{}", shape.library);
        // And the next poll (jQuery 1.5+ reuses the same callback name) sees it.
        let next = call_as(
            &app,
            shape,
            &[
                ("name", name.clone()),
                ("method", "pop".to_owned()),
                ("time", time.to_string()),
            ],
            3,
        )
        .await;
        assert_eq!(
            crate::support::texts(next["msgList"].as_array().unwrap()),
            ["mine too"],
            "{}",
            shape.library
        );
        // Exit.
        let exited = call_as(
            &app,
            shape,
            &[
                ("name", name.clone()),
                ("method", "exit".to_owned()),
                ("time", time.to_string()),
            ],
            4,
        )
        .await;
        assert_eq!(exited["msg"], "离开聊天室", "{}", shape.library);
    }
}

#[tokio::test]
async fn the_original_page_first_poll_with_an_undefined_time_gets_the_newest_time() {
    // The original page polled with `time: time` before `time` was set; wfQuery wrote it as
    // the text "undefined". The answer must hand the client a usable cursor at once.
    let app = spawn_app().await;
    let newest = app.push("a", "x").await;
    let answer = app
        .call(
            "/?name=b&method=pop&time=undefined&__t=1&callback=wfQuery_1",
            "wfQuery_1",
        )
        .await;
    assert_eq!(answer["time"], newest);
    assert_eq!(answer["msgList"], serde_json::json!([]));
}
