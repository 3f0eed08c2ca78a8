//! Durable storage: restarts, the original's file layout and data, damaged files.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chat_server::clock::SystemClock;
use chat_server::storage::{files, wal};
use chat_shared::Message;

use crate::support::{fixture, manual_clock, spawn_app_on, test_settings, texts, times, TestApp};

async fn start_on(dir: &Path) -> TestApp {
    spawn_app_on(test_settings(dir), Arc::new(SystemClock))
        .await
        .unwrap()
}

fn message(name: &str, msg: &str, time: u64) -> Message {
    Message::new(name, msg, time)
}

fn write_messages(path: &Path, messages: &[Message]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, files::render_message_file(messages)).unwrap();
}

#[tokio::test]
async fn restart_brings_everything_back_and_new_times_are_above_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let clock = manual_clock();
    let mut app = spawn_app_on(test_settings(dir.path()), clock.clone())
        .await
        .unwrap();
    let mut last = 0;
    for text in ["one", "two", "three"] {
        last = app.push("a", text).await;
    }
    app.stop().await;
    // The wall clock is an hour behind after the restart.
    let clock = manual_clock();
    clock.set(last - 3_600_000);
    let app = spawn_app_on(test_settings(dir.path()), clock.clone())
        .await
        .unwrap();
    assert_eq!(texts(&app.all_messages().await), ["one", "two", "three"]);
    let next = app.push("a", "four").await;
    assert!(next > last, "{next} > {last}");
}

#[tokio::test]
async fn each_legacy_fixture_shape_loads() {
    let cases = [
        ("v1-full-request-objects.data.json", 25usize),
        ("v2-three-messages.data.json", 3),
        ("v3-empty-with-whitespace.data.json", 0),
    ];
    for (name, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(fixture(name), dir.path().join("data.json")).unwrap();
        let app = start_on(dir.path()).await;
        let all = app.all_messages().await;
        assert_eq!(all.len(), expected, "{name}");
        assert_eq!(app.health().await["messages"], expected, "{name}");
        if name.starts_with("v1") {
            assert_eq!(
                all[0],
                serde_json::json!({"name": "小小兵", "msg": "xaxsxa", "time": 1_420_016_009_255u64})
            );
        }
        if name.starts_with("v2") {
            assert_eq!(
                all,
                serde_json::json!([
                    {"name": "(匿名)", "msg": "加入聊天室", "time": 1_420_037_323_074u64},
                    {"name": "(匿名)", "msg": "加入聊天室", "time": 1_420_037_325_513u64},
                    {"name": "小小静", "msg": "我是小小静", "time": 1_420_037_338_357u64}
                ])
                .as_array()
                .unwrap()
                .clone()
            );
        }
        // New messages go after the old ones.
        let newest_old = times(&all).last().copied().unwrap_or(0);
        assert!(app.push("new", "after import").await > newest_old, "{name}");
    }
}

#[tokio::test]
async fn an_original_style_folder_with_chunk_files_is_imported_whole() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<Message> = (0..237)
        .map(|n| message("老用户", &format!("old {n}"), 1_420_000_000_000 + n * 1000))
        .collect();
    // The original moved the oldest 100 at a time into data/<save-time>-<n>.json.
    write_messages(&dir.path().join("data/1420000200000-0.json"), &all[..100]);
    write_messages(
        &dir.path().join("data/1420000200000-1.json"),
        &all[100..200],
    );
    write_messages(&dir.path().join("data.json"), &all[200..]);
    // Its first version stored whole requests: a chunk in that shape loads too.
    let v1_chunk = fs::read_to_string(fixture("v1-full-request-objects.data.json")).unwrap();
    fs::write(dir.path().join("data/1420016200000-0.json"), v1_chunk).unwrap();
    let mut app = start_on(dir.path()).await;
    let loaded = app.all_messages().await;
    assert_eq!(loaded.len(), 237 + 25);
    assert!(
        times(&loaded).windows(2).all(|pair| pair[0] <= pair[1]),
        "in time order"
    );
    let old: Vec<String> = texts(&loaded)
        .into_iter()
        .filter(|text| text.starts_with("old "))
        .collect();
    let expected: Vec<String> = (0..237).map(|n| format!("old {n}")).collect();
    assert_eq!(old, expected);
    app.stop().await;
    // The original's files were never rewritten into another shape.
    assert!(dir.path().join("data/1420000200000-0.json").exists());
}

#[tokio::test]
async fn a_data_file_that_cannot_be_parsed_stops_the_start_and_is_never_overwritten() {
    let broken_files = [
        ("data.json", "[\n    {\n        \"name\": \"a\",\n        \"msg\": \"b\",\n        \"time\": 1\n    },\n"),
        ("data.json", ""),
        ("data.json", "[{\"name\": \"a\", \"msg\": \"no time\"}]"),
        ("data/1420000000000-0.json", "[{\"name\": \"a\", \"msg\": \"b\", \"time\": 1}"),
    ];
    for (file, contents) in broken_files {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        let error = match spawn_app_on(test_settings(dir.path()), Arc::new(SystemClock)).await {
            Ok(_) => panic!("{file} {contents:?}: the server must refuse to start"),
            Err(error) => format!("{error:#}"),
        };
        assert!(
            error.contains(file),
            "{file}: the error names the file: {error}"
        );
        assert!(
            error.contains("line ") && error.contains("column "),
            "{file}: the error gives the position: {error}"
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            contents,
            "{file} untouched"
        );
    }
}

#[tokio::test]
async fn after_a_clean_stop_the_folder_has_the_original_layout() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start_on(dir.path()).await;
    crate::long_poll::push_many(&app, 250).await;
    app.stop().await;
    let mut chunk_names: Vec<String> = fs::read_dir(dir.path().join("data"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    chunk_names.sort();
    assert_eq!(chunk_names.len(), 2, "{chunk_names:?}");
    for name in &chunk_names {
        assert!(files::is_chunk_file_name(name), "{name}");
        let text = fs::read_to_string(dir.path().join("data").join(name)).unwrap();
        let chunk: Vec<Message> = serde_json::from_str(&text).unwrap();
        assert_eq!(chunk.len(), 100);
        assert_eq!(
            text,
            String::from_utf8(files::render_message_file(&chunk)).unwrap(),
            "4-space pretty print"
        );
        assert!(
            text.starts_with("[\n    {\n        \"name\": "),
            "{text:.40}"
        );
        assert!(
            !text.ends_with('\n'),
            "no trailing newline, as JSON.stringify wrote"
        );
    }
    let newest: Vec<Message> =
        serde_json::from_str(&fs::read_to_string(dir.path().join("data.json")).unwrap()).unwrap();
    let newest_texts: Vec<String> = newest.iter().map(|m| m.msg.clone()).collect();
    let expected: Vec<String> = (200..250).map(|n| format!("m{n}")).collect();
    assert_eq!(
        newest_texts, expected,
        "data.json holds the newest messages"
    );
    assert_eq!(
        fs::metadata(dir.path().join(wal::WAL_FILE)).unwrap().len(),
        0,
        "the log was compacted"
    );
}

#[tokio::test]
async fn a_message_copied_by_an_interrupted_compaction_counts_once() {
    // A crash after the new chunk file was renamed in, before data.json and the log were
    // rewritten: A and B are in the chunk and still in data.json; C is in data.json and the log.
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (
        message("x", "A", 1),
        message("x", "B", 2),
        message("x", "C", 3),
        message("x", "D", 4),
    );
    write_messages(&dir.path().join("data/2-0.json"), &[a.clone(), b.clone()]);
    write_messages(&dir.path().join("data.json"), &[a, b, c.clone()]);
    let log = wal::encode_batch(&[c.clone(), d]);
    fs::write(dir.path().join(wal::WAL_FILE), log).unwrap();
    let app = start_on(dir.path()).await;
    assert_eq!(texts(&app.all_messages().await), ["A", "B", "C", "D"]);
}

#[tokio::test]
async fn legacy_messages_sharing_a_millisecond_are_all_delivered_across_pages() {
    // The original saved several messages with one time and then skipped all but the first.
    let dir = tempfile::tempdir().unwrap();
    let same = 1_420_037_323_074;
    write_messages(
        &dir.path().join("data.json"),
        &[
            message("a", "1", same - 1),
            message("a", "2", same),
            message("b", "3", same),
            message("c", "4", same),
            message("a", "5", same + 1),
        ],
    );
    let mut settings = test_settings(dir.path());
    settings.page_size = 2;
    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(texts(&app.all_messages().await), ["1", "2", "3", "4", "5"]);
}

#[tokio::test]
async fn a_torn_write_ahead_log_tail_is_cut_off_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = wal::encode_batch(&[message("a", "kept", 10)]);
    let torn = wal::encode_batch(&[message("a", "torn", 11)]);
    log.extend_from_slice(&torn[..torn.len() - 5]);
    fs::write(dir.path().join(wal::WAL_FILE), log).unwrap();
    let app = start_on(dir.path()).await;
    assert_eq!(texts(&app.all_messages().await), ["kept"]);
    assert!(app.push("a", "next").await > 10);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_folder_is_refused_and_the_first_keeps_working() {
    // A second instance used to repair (cut) and then compact the first one's live log.
    let dir = tempfile::tempdir().unwrap();
    let first = start_on(dir.path()).await;
    first.push("a", "before").await;
    let error = match spawn_app_on(test_settings(dir.path()), Arc::new(SystemClock)).await {
        Ok(_) => panic!("a second server on the same data folder must refuse to start"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("in use by another chat-server"), "{error}");
    first.push("a", "after").await;
    assert_eq!(texts(&first.all_messages().await), ["before", "after"]);
}

#[tokio::test]
async fn a_legacy_group_sharing_a_time_across_a_chunk_file_and_data_json_is_delivered_whole() {
    // The original cut its chunks at 100 messages, whatever their times: a group of messages
    // saved in one millisecond can end one chunk file and begin data.json.
    let dir = tempfile::tempdir().unwrap();
    let same = 1_420_037_323_074;
    write_messages(
        &dir.path().join("data/1420037400000-0.json"),
        &[message("a", "1", same - 1), message("a", "2", same)],
    );
    write_messages(
        &dir.path().join("data.json"),
        &[message("b", "3", same), message("c", "4", same + 1)],
    );
    let mut settings = test_settings(dir.path());
    // Only what is not in a chunk stays in memory, so the first page comes from disk.
    settings.memory_messages = 1;
    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(texts(&app.all_messages().await), ["1", "2", "3", "4"]);
}
