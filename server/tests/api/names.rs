//! Names that look blank or imitate others (issue 7 A5): blank-looking characters are trimmed,
//! names are stored in NFC so the online list counts one name once, and invisible or
//! text-direction characters inside a name are refused with `invalid_name`.

use crate::support::{spawn_app, spawn_app_with_clock, texts};

/// The characters of the report, percent-encoded as a page sends them: each one alone was
/// stored as a separate "user" and listed online.
const BLANK_LOOKING: [(&str, &str); 13] = [
    ("U+200B ZERO WIDTH SPACE", "%E2%80%8B"),
    ("U+FEFF BYTE ORDER MARK", "%EF%BB%BF"),
    ("U+3164 HANGUL FILLER", "%E3%85%A4"),
    ("U+115F HANGUL CHOSEONG FILLER", "%E1%85%9F"),
    ("U+1160 HANGUL JUNGSEONG FILLER", "%E1%85%A0"),
    ("U+FFA0 HALFWIDTH HANGUL FILLER", "%EF%BE%A0"),
    ("U+2060 WORD JOINER", "%E2%81%A0"),
    ("U+180E MONGOLIAN VOWEL SEPARATOR", "%E1%A0%8E"),
    ("U+00AD SOFT HYPHEN", "%C2%AD"),
    ("U+034F COMBINING GRAPHEME JOINER", "%CD%8F"),
    ("U+200C ZERO WIDTH NON-JOINER", "%E2%80%8C"),
    ("U+200D ZERO WIDTH JOINER", "%E2%80%8D"),
    ("U+2800 BRAILLE PATTERN BLANK", "%E2%A0%80"),
];

#[tokio::test]
async fn blank_looking_names_are_saved_as_anonymous_and_never_listed_online() {
    let app = spawn_app().await;
    for (what, encoded) in BLANK_LOOKING {
        let joined = app
            .call(&format!("/?name={encoded}&presence="), "callback")
            .await;
        assert!(joined.get("error").is_none(), "{what}: {joined}");
        assert_eq!(joined["name"], "(匿名)", "{what}: {joined}");
        assert_eq!(
            (&joined["online"], &joined["onlineCount"]),
            (&serde_json::json!([]), &serde_json::json!(0)),
            "{what} is not a user: {joined}"
        );
    }
    let names: Vec<_> = app
        .all_messages()
        .await
        .iter()
        .map(|message| message["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["(匿名)"; BLANK_LOOKING.len()]);
}

#[tokio::test]
async fn a_zero_width_space_before_alice_is_saved_as_alice_as_the_protocol_document_shows() {
    let (app, _frozen_clock) = spawn_app_with_clock().await;
    let answer = app.get("/?name=%E2%80%8Balice&callback=cb").await;
    assert_eq!(
        answer.body,
        "/**/cb({\"name\":\"alice\",\"callback\":\"cb\",\"msg\":\"加入聊天室\",\"time\":1420070400000,\
         \"msgList\":[]});"
    );
}

#[tokio::test]
async fn a_zero_width_space_before_alice_is_alice_listed_once() {
    let app = spawn_app().await;
    app.call("/?name=alice", "callback").await;
    let imitation = app
        .call("/?name=%E2%80%8Balice&presence=", "callback")
        .await;
    assert_eq!(imitation["name"], "alice", "saved as alice: {imitation}");
    assert_eq!(imitation["online"], serde_json::json!(["alice"]));
    assert_eq!(imitation["onlineCount"], 1);
    let time = imitation["time"].as_u64().unwrap();
    let popped = app
        .call(
            &format!("/?name=alice%EF%BB%BF&method=pop&time={time}&__t=1&presence="),
            "callback",
        )
        .await;
    assert_eq!(popped["online"], serde_json::json!(["alice"]), "{popped}");
}

#[tokio::test]
async fn nfd_and_nfc_spellings_of_a_name_are_one_name_online() {
    let app = spawn_app().await;
    // "José": é as one code point (NFC), then as e + U+0301 COMBINING ACUTE ACCENT (NFD).
    app.call("/?name=Jos%C3%A9", "callback").await;
    let decomposed = app.call("/?name=Jose%CC%81&presence=", "callback").await;
    assert_eq!(
        decomposed["name"], "Jos\u{e9}",
        "stored in NFC: {decomposed}"
    );
    assert_eq!(decomposed["online"], serde_json::json!(["Jos\u{e9}"]));
    assert_eq!(decomposed["onlineCount"], 1);
    let names: Vec<_> = app
        .all_messages()
        .await
        .iter()
        .map(|message| message["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Jos\u{e9}", "Jos\u{e9}"]);
}

#[tokio::test]
async fn names_with_text_direction_or_inner_invisible_characters_get_invalid_name() {
    let app = spawn_app().await;
    let newest = app.push("ok", "first").await;
    let cases = [
        ("U+202E RIGHT-TO-LEFT OVERRIDE", "%E2%80%AEalice"),
        ("U+2066 LEFT-TO-RIGHT ISOLATE at the end", "alice%E2%81%A6"),
        ("U+200F RIGHT-TO-LEFT MARK inside", "al%E2%80%8Fice"),
        ("U+200B ZERO WIDTH SPACE inside", "al%E2%80%8Bice"),
        ("U+3164 HANGUL FILLER inside", "al%E3%85%A4ice"),
    ];
    for (what, name) in cases {
        for (kind, path) in [
            (
                "push",
                format!("/?name={name}&method=push&msg=hi&time=5&callback=cb"),
            ),
            ("join", format!("/?name={name}&callback=cb")),
            (
                "exit",
                format!("/?name={name}&method=exit&time=5&callback=cb"),
            ),
        ] {
            let answer = app.call(&path, "cb").await;
            assert_eq!(
                answer["error"]["code"], "invalid_name",
                "{what}, {kind}: {answer}"
            );
            assert!(
                !answer["error"]["message"].as_str().unwrap().is_empty(),
                "{what}, {kind}: a message in words"
            );
            assert_eq!(answer["msgList"], serde_json::json!([]), "{what}, {kind}");
            let expected_time = if kind == "join" { newest } else { 5 };
            assert_eq!(answer["time"], expected_time, "{what}, {kind}: {answer}");
            assert!(answer.get("online").is_none(), "{what}, {kind}: {answer}");
        }
    }
    assert_eq!(
        texts(&app.all_messages().await),
        ["first"],
        "nothing stored"
    );
}

#[tokio::test]
async fn a_message_is_stored_as_sent_even_with_invisible_or_direction_characters() {
    let app = spawn_app().await;
    let text = "e\u{301} \u{200B}x\u{202E}y";
    app.push("bob", text).await;
    assert_eq!(texts(&app.all_messages().await), [text]);
}
