//! Durable storage: restarts, the original's file layout and data, damaged files.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use chat_server::clock::SystemClock;
use chat_server::storage::{files, wal};
use chat_shared::Message;

use crate::support::{
    fixture, manual_clock, run_binary, spawn_app_on, test_settings, texts, times, TestApp,
};

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

/// Runs `chat-server <args>` to its end: exit status and standard output.
fn run_tool(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let output = run_binary(args);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every file of `dir` (recursively) with its bytes, for "never written to" checks.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                found.push((path, bytes));
            }
        }
    }
    found.sort();
    found
}

/// What a compaction retried by an older version left: messages 1..=100 in one chunk file,
/// 101..=200 in six (each retry wrote them again), and the newest 6 in data.json.
fn folder_left_by_retried_compactions(dir: &Path) -> Vec<Message> {
    let all: Vec<Message> = (1..=206)
        .map(|n| message("a", &format!("m{n}"), 1_700_000_000_000 + n))
        .collect();
    write_messages(&dir.join("data/1700000000101-0.json"), &all[..100]);
    for retry in 0..6u64 {
        let name = format!("data/{}-{retry}.json", 1_700_000_000_201 + retry);
        write_messages(&dir.join(name), &all[100..200]);
    }
    write_messages(&dir.join("data.json"), &all[200..]);
    all
}

#[tokio::test]
async fn chunk_files_written_again_by_retried_compactions_load_each_message_once() {
    // Regression: after compactions retried while the folder fsync failed, each of the
    // messages written again came back 6 times, and /healthz counted them all.
    let dir = tempfile::tempdir().unwrap();
    let all = folder_left_by_retried_compactions(dir.path());
    let expected: Vec<String> = all.iter().map(|m| m.msg.clone()).collect();
    let mut settings = test_settings(dir.path());
    // Pages straddle the chunk files and memory.
    settings.page_size = 7;
    settings.memory_messages = 1;
    let mut app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(texts(&app.all_messages().await), expected);
    assert_eq!(app.health().await["messages"], 206);
    let next = app.push("a", "after").await;
    assert!(next > 1_700_000_000_206, "{next}");
    app.stop().await;
    let app = start_on(dir.path()).await;
    assert_eq!(
        app.all_messages().await.len(),
        207,
        "and again after a restart"
    );
}

#[tokio::test]
async fn overlapping_legacy_chunk_files_keep_a_group_sharing_a_time_and_drop_only_exact_copies() {
    // Legacy messages may share a time: only a message equal in name, msg and time to one in
    // another file is a copy.
    let dir = tempfile::tempdir().unwrap();
    let same = 1_420_037_323_074;
    write_messages(
        &dir.path().join("data/1420037323074-0.json"),
        &[
            message("a", "1", same - 5),
            message("a", "2", same),
            message("b", "3", same),
        ],
    );
    write_messages(
        &dir.path().join("data/1420037323080-0.json"),
        &[
            message("b", "3", same),
            message("c", "3", same),
            message("a", "4", same + 6),
        ],
    );
    write_messages(
        &dir.path().join("data.json"),
        &[message("a", "5", same + 7)],
    );
    let mut settings = test_settings(dir.path());
    settings.page_size = 2;
    settings.memory_messages = 1;
    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    let loaded = app.all_messages().await;
    let who_said: Vec<String> = loaded
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["name"].as_str().unwrap(),
                m["msg"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(who_said, ["a:1", "a:2", "b:3", "c:3", "a:4", "a:5"]);
    assert_eq!(app.health().await["messages"], 6);
}

/// `text` with its `nth` (from 0) `from` replaced by `to`.
fn replace_nth(text: &str, from: &str, to: &str, nth: usize) -> String {
    let (at, _) = text.match_indices(from).nth(nth).unwrap();
    format!("{}{to}{}", &text[..at], &text[at + from.len()..])
}

/// The legacy v2 fixture with `edit` applied to its text.
fn edited_v2(edit: impl Fn(&str) -> String) -> String {
    edit(&fs::read_to_string(fixture("v2-three-messages.data.json")).unwrap())
}

#[tokio::test]
async fn values_that_parse_but_cannot_be_right_stop_the_start_naming_the_file_and_record() {
    // Regression: one digit of a time changed (1000 s in the future, out of order), or
    // "name" renamed to "oame": the server started without a word and served a message out
    // of order, or one with no name.
    let v1 = fs::read_to_string(fixture("v1-full-request-objects.data.json")).unwrap();
    let cases = [
        (
            "a time 1000 s in the future",
            "data.json",
            edited_v2(|text| text.replacen("1420037325513", "1420038325513", 1)),
            "record 3 (line 12, column 5)",
            "before an earlier record",
        ),
        (
            "\"name\" renamed",
            "data.json",
            edited_v2(|text| text.replacen("\"name\"", "\"oame\"", 1)),
            "record 1 (line 2, column 5)",
            "no \"name\"",
        ),
        (
            "a time that is a string",
            "data.json",
            edited_v2(|text| text.replacen("1420037338357", "\"1420037338357\"", 1)),
            "record 3 (line 12, column 5)",
            "\"time\" is a string",
        ),
        (
            "a msg that is a number",
            "data.json",
            edited_v2(|text| text.replacen("\"我是小小静\"", "17", 1)),
            "record 3",
            "\"msg\" is a number",
        ),
        (
            "\"msg\" renamed in a chunk file of whole requests (v1)",
            "data/1420016200000-0.json",
            replace_nth(&v1, "\"msg\"", "\"mgs\"", 1),
            "record 2 (line 10, column 5)",
            "no \"msg\"",
        ),
        (
            "a record that is not an object",
            "data.json",
            "[\n    \"hello\"\n]".to_owned(),
            "record 1 (line 2, column 5)",
            "a string, not an object",
        ),
    ];
    for (case, file, contents, position, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &contents).unwrap();
        let error = match spawn_app_on(test_settings(dir.path()), Arc::new(SystemClock)).await {
            Ok(_) => panic!("{case}: the server must refuse to start"),
            Err(error) => format!("{error:#}"),
        };
        for expected in [file, position, reason] {
            assert!(error.contains(expected), "{case}: {expected:?} in {error}");
        }
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            contents,
            "{case}: untouched"
        );
    }
}

#[tokio::test]
async fn every_legacy_shape_passes_check() {
    for name in [
        "v1-full-request-objects.data.json",
        "v2-three-messages.data.json",
        "v3-empty-with-whitespace.data.json",
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(fixture(name), dir.path().join("data.json")).unwrap();
        let (ok, stdout, stderr) = run_tool(&["check".as_ref(), dir.path().as_os_str()]);
        assert!(ok, "{name}: {stdout}{stderr}");
        assert!(stdout.contains("0 problems"), "{name}: {stdout}");
    }
}

/// A folder with three problems in two files: data.json with "name" renamed (record 1) and a
/// time changed by one digit (record 3 goes back), a v1 chunk file with a time as a string
/// (record 2).
fn folder_with_three_problems(dir: &Path) {
    let data = edited_v2(|text| {
        text.replacen("\"name\"", "\"oame\"", 1)
            .replacen("1420037325513", "1420038325513", 1)
    });
    fs::write(dir.join("data.json"), data).unwrap();
    let v1 = fs::read_to_string(fixture("v1-full-request-objects.data.json")).unwrap();
    let chunk = v1.replacen("1420016155193", "\"1420016155193\"", 1);
    fs::create_dir_all(dir.join("data")).unwrap();
    fs::write(dir.join("data/1420016200000-0.json"), chunk).unwrap();
}

#[tokio::test]
async fn check_reports_every_problem_of_a_folder_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    folder_with_three_problems(dir.path());
    let before = snapshot(dir.path());
    let (ok, stdout, stderr) = run_tool(&["check".as_ref(), dir.path().as_os_str()]);
    assert!(!ok, "check exits non-zero: {stdout}");
    assert!(stderr.contains("3 problems"), "{stderr}");
    let problems: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("problem: "))
        .collect();
    assert_eq!(problems.len(), 3, "{stdout}");
    let expected = [
        ("1420016200000-0.json", "record 2 (line 10, column 5)"),
        ("data.json", "record 1 (line 2, column 5)"),
        ("data.json", "record 3 (line 12, column 5)"),
    ];
    for ((file, position), line) in expected.iter().zip(&problems) {
        assert!(
            line.contains(file) && line.contains(position),
            "{file} {position}: {line}"
        );
    }
    assert_eq!(snapshot(dir.path()), before, "check writes nothing");
}

#[tokio::test]
async fn repair_writes_a_copy_that_loads_and_passes_check_and_never_writes_in_place() {
    let dir = tempfile::tempdir().unwrap();
    folder_left_by_retried_compactions(dir.path());
    // Its data.json is replaced by one with problems.
    folder_with_three_problems(dir.path());
    let before = snapshot(dir.path());
    let new_dir = tempfile::tempdir().unwrap();
    let repaired = new_dir.path().join("repaired");
    let (ok, stdout, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        repaired.as_os_str(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "the folder read is never written to"
    );
    // Left out: the record without a name and the one whose time is a string; the one 1000 s
    // in the future is kept and sorted; the copies are gone.
    assert_eq!(stdout.matches("left out: ").count(), 2, "{stdout}");
    assert!(
        stdout.contains("1 records sorted into time order"),
        "{stdout}"
    );
    assert!(stdout.contains("500 copies"), "{stdout}");
    // 24 of the v1 chunk, 200 of the copied chunks, 2 of data.json.
    let n_expected = 24 + 200 + 2;
    assert!(
        stdout.contains(&format!("{n_expected} messages written")),
        "{stdout}"
    );

    let (ok, stdout, _) = run_tool(&["check".as_ref(), repaired.as_os_str()]);
    assert!(ok, "the repaired folder passes check: {stdout}");
    assert!(stdout.contains("0 problems, 0 notices"), "{stdout}");
    let app = start_on(&repaired).await;
    let loaded = app.all_messages().await;
    assert_eq!(loaded.len(), n_expected);
    assert!(
        times(&loaded).windows(2).all(|pair| pair[0] <= pair[1]),
        "in time order"
    );
    assert_eq!(app.health().await["messages"], n_expected);

    // Never into a folder that holds something.
    let (ok, _, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        repaired.as_os_str(),
    ]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");
    let (ok, _, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");
    let inside = dir.path().join("repaired");
    let (ok, _, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        inside.as_os_str(),
    ]);
    assert!(!ok && stderr.contains("inside the folder"), "{stderr}");
    assert_eq!(snapshot(dir.path()), before, "nothing written into it");
}

#[tokio::test]
async fn check_runs_beside_a_running_server_and_repair_refuses_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = start_on(dir.path()).await;
    app.push("a", "before").await;
    let (ok, stdout, stderr) = run_tool(&["check".as_ref(), dir.path().as_os_str()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("1 messages, 0 problems"), "{stdout}");
    let new_dir = tempfile::tempdir().unwrap();
    let repaired = new_dir.path().join("repaired");
    let (ok, _, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        repaired.as_os_str(),
    ]);
    assert!(!ok && stderr.contains("in use"), "{stderr}");
    assert!(!repaired.exists(), "nothing written");
    app.push("a", "after").await;
    assert_eq!(texts(&app.all_messages().await), ["before", "after"]);
    app.stop().await;
    // Once the server is stopped, the same repair works.
    let (ok, stdout, stderr) = run_tool(&[
        "repair".as_ref(),
        dir.path().as_os_str(),
        "--to".as_ref(),
        repaired.as_os_str(),
    ]);
    assert!(
        ok && stdout.contains("2 messages written"),
        "{stdout}{stderr}"
    );
}

#[tokio::test]
async fn compaction_retried_while_the_chunk_folder_is_write_only_never_duplicates_messages() {
    // The report, as an operator met it: run as a user other than root with
    // --compact-after 1, save 101 messages, make the data folders write-only (chmod 333: a
    // rename into them still works, their fsync fails), save 104 more (each acknowledged,
    // each retrying the compaction), make them writable again, save one, stop, start. Each
    // message written again came back 6 times and /healthz counted 706 messages.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let nobody = 65_534;
    let tmp = tempfile::tempdir().unwrap();
    if fs::metadata(tmp.path()).unwrap().uid() != 0 || run_setpriv_probe(nobody).is_err() {
        eprintln!("skipped: needs root (to switch users) and util-linux's setpriv");
        return;
    }
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("room");
    fs::create_dir_all(dir.join("data")).unwrap();
    for folder in [dir.clone(), dir.join("data")] {
        std::os::unix::fs::chown(&folder, Some(nobody), Some(nobody)).unwrap();
    }
    let set_mode = |mode: u32| {
        for folder in [dir.clone(), dir.join("data")] {
            fs::set_permissions(&folder, fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    let flags = ["--compact-after", "1"];
    let client = reqwest::Client::new();
    let server = crate::process::launch_binary_as(nobody, &dir, &flags);
    let push = |n: u32, base: String| {
        let client = client.clone();
        async move {
            let url = format!("{base}?name=a&method=push&msg=m{n}&time=1&callback=cb");
            let answer =
                crate::support::jsonp_object(&crate::support::get_text(&client, &url).await)
                    .unwrap();
            assert!(answer.get("error").is_none(), "m{n} refused: {answer}");
        }
    };
    for n in 1..=101 {
        push(n, server.base_url.clone()).await;
    }
    set_mode(0o333);
    for n in 102..=205 {
        push(n, server.base_url.clone()).await;
    }
    // The fault was met: its log line (read from the server's standard error by another
    // thread) shows up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !server.log_text().contains("compaction failed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the fsync fails while the folders are write-only:\n{}",
            server.log_text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    set_mode(0o755);
    push(206, server.base_url.clone()).await;
    let exit = server.stop_and_wait().await;
    assert_eq!(exit.0.code(), Some(0), "{}", exit.1.log_text());

    let restarted = crate::process::launch_binary_as(nobody, &dir, &flags);
    let health: serde_json::Value = serde_json::from_str(
        &crate::support::get_text(&client, &format!("{}healthz", restarted.base_url)).await,
    )
    .unwrap();
    assert_eq!(health["messages"], 206, "{health}");
    let expected: Vec<String> = (1..=206).map(|n| format!("m{n}")).collect();
    assert_eq!(
        crate::process::all_texts(&client, &restarted.base_url).await,
        expected
    );
}

/// Whether `setpriv` can run a command as `uid`.
fn run_setpriv_probe(uid: u32) -> std::io::Result<()> {
    let status = std::process::Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg("true")
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("setpriv failed"))
    }
}
