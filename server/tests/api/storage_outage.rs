//! The local folder's storage failing while the server runs: saves are refused, `/healthz`
//! says so, and everything works again, without a restart, once the disk is usable.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_server::clock::SystemClock;

use crate::support::{spawn_app_on, test_settings, texts, TestApp};

/// Sets or clears the immutable attribute of `path`; false where the file system or the
/// privileges do not allow it.
fn set_immutable(path: &Path, immutable: bool) -> bool {
    let flag = if immutable { "+i" } else { "-i" };
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits until `/healthz` answers `status` (at most 30 s).
async fn wait_for_health(app: &TestApp, status: u16) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = app.get("/healthz").await;
        if answer.status == status {
            return serde_json::from_str(&answer.body).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "/healthz still answers {}: {}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `chattr +i wal.log` while the server runs: before, every save failed until a restart while
/// `/healthz` said ok.
#[tokio::test]
async fn an_immutable_write_ahead_log_makes_health_degraded_and_saves_work_again_once_it_is_writable(
) {
    let dir = tempfile::tempdir().unwrap();
    let settings = test_settings(dir.path());
    let mut app = spawn_app_on(settings.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    app.push("ann", "before").await;
    let wal = dir.path().join("wal.log");
    if !set_immutable(&wal, true) {
        // Needs CAP_LINUX_IMMUTABLE and a file system with the attribute (ext4, xfs, tmpfs
        // from Linux 6.0); the same recovery is unit-tested in `storage::wal`.
        eprintln!("skipped: chattr +i is not possible here");
        return;
    }
    let refused = app
        .call("/?name=ann&method=push&msg=during&time=1", "callback")
        .await;
    assert_eq!(refused["error"]["code"], "storage_failed", "{refused}");
    let degraded = wait_for_health(&app, 503).await;
    assert_eq!(degraded["status"], "degraded");
    assert!(
        degraded["reason"].as_str().unwrap().contains("wal.log"),
        "{degraded}"
    );

    // No save is needed for the server to notice the disk is usable again.
    assert!(set_immutable(&wal, false));
    let healthy = wait_for_health(&app, 200).await;
    assert_eq!(healthy["status"], "ok");
    assert_eq!(healthy.get("reason"), None);
    app.push("ann", "after").await;
    app.stop().await;

    let app = spawn_app_on(settings, Arc::new(SystemClock)).await.unwrap();
    assert_eq!(
        texts(&app.all_messages().await),
        ["before", "after"],
        "the refused save was not stored, the others were"
    );
}
