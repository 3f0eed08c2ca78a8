//! The `chat-server` binary: parse the settings, take the listeners (bound, inherited through
//! socket activation, or taken over from a running process), serve, and stop cleanly on SIGINT
//! or SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chat_server::backend::redis;
use chat_server::clock::SystemClock;
use chat_server::config::Command;
use chat_server::startup::{raise_open_file_limit, Handover};
use chat_server::storage::{check, LockWait, StorageError, Store};
use chat_server::{Application, ListenerSource, Listeners, Settings};
use clap::Parser;

fn main() -> ExitCode {
    let settings = Settings::parse();
    if let Some(command) = settings.command.clone() {
        let _client_faults = chat_server::logging::init(settings.log_format);
        let result = actix_web::rt::System::new().block_on(run_tool(command, settings));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("chat-server: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    // Read before any other thread starts: listenfd clears the variables it reads, so that
    // child processes do not inherit them.
    let inherited = listenfd::ListenFd::from_env().take_tcp_listener(0);
    let client_faults = chat_server::logging::init(settings.log_format);
    raise_open_file_limit(settings.max_polls as u64 + 1024);
    let result = actix_web::rt::System::new().block_on(async move {
        let inherited = anyhow::Context::context(
            inherited,
            "the socket passed in LISTEN_FDS is not a TCP listener",
        )?;
        run(settings, inherited).await
    });
    client_faults.summarize();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("chat-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings, inherited: Option<TcpListener>) -> anyhow::Result<()> {
    let listeners = if settings.takeover {
        if inherited.is_some() {
            tracing::warn!("--takeover given: the socket passed in LISTEN_FDS is not used");
        }
        let for_takeover = settings.clone();
        tokio::task::spawn_blocking(move || Listeners::take_over(&for_takeover)).await??
    } else if let Some(listener) = inherited {
        Listeners::inherited(listener, &settings)?
    } else {
        Listeners::bind(&settings)?
    };
    // A socket kept by a supervisor (systemd) outlives this process: its next process answers.
    let on_stop = if listeners.source == ListenerSource::Inherited {
        Handover::SocketKept
    } else {
        Handover::None
    };
    let app = Application::build_on(settings, Arc::new(SystemClock), listeners).await?;
    let handle = app.shutdown_handle();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!(
            step = "stop",
            "stop signal received: answering held pops and flushing"
        );
        handle.shutdown(on_stop).await;
    });
    app.run_until_stopped().await
}

/// Runs a tool: moves a room between the local folder and Redis, or checks or repairs a data
/// folder.
async fn run_tool(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Import { from, to } => {
            let compact_after = settings.compact_after;
            let folder = from.clone();
            let messages = tokio::task::spawn_blocking(move || {
                let loaded = Store::open(&folder, compact_after, LockWait::Refuse)?;
                loaded.store.all_messages()
            })
            .await?
            .with_context(|| format!("cannot read {}", from.display()))?;
            let n = redis::import(&to, &settings.redis_prefix, &messages).await?;
            println!("imported {n} messages from {} into {to}", from.display());
        }
        Command::Export { from, to } => {
            let messages = redis::export(&from, &settings.redis_prefix).await?;
            let n = messages.len();
            let folder = to.clone();
            tokio::task::spawn_blocking(move || {
                let mut loaded = Store::open(&folder, 1000, LockWait::Refuse)?;
                if loaded.n_messages > 0 {
                    return Err(StorageError::io(
                        &folder,
                        std::io::Error::other(
                            "the folder already holds messages; export into a new or empty folder",
                        ),
                    ));
                }
                loaded.store.write_all(&messages)
            })
            .await?
            .with_context(|| format!("cannot write {}", to.display()))?;
            println!("exported {n} messages from {from} into {}", to.display());
        }
        Command::Check { dir } => {
            let folder = dir.clone();
            let report = tokio::task::spawn_blocking(move || check::check_folder(&folder))
                .await?
                .with_context(|| format!("cannot check {}", dir.display()))?;
            for notice in &report.notices {
                println!("note: {notice}");
            }
            for problem in &report.problems {
                println!("problem: {problem}");
            }
            println!(
                "{}: {} messages, {} problems, {} notices",
                dir.display(),
                report.n_messages,
                report.problems.len(),
                report.notices.len()
            );
            if !report.problems.is_empty() {
                anyhow::bail!(
                    "{} has {} problems: the server would refuse to start (see `chat-server repair`)",
                    dir.display(),
                    report.problems.len()
                );
            }
        }
        Command::Repair { dir, to } => {
            let (from, into) = (dir.clone(), to.clone());
            let report = tokio::task::spawn_blocking(move || check::repair_folder(&from, &into))
                .await?
                .with_context(|| {
                    format!("cannot repair {} into {}", dir.display(), to.display())
                })?;
            for problem in &report.dropped {
                println!("left out: {problem}");
            }
            for notice in &report.notices {
                println!("note: {notice}");
            }
            println!(
                "repaired {} into {}: {} messages written, {} records left out, {} records sorted into time order",
                dir.display(),
                to.display(),
                report.n_written,
                report.dropped.len(),
                report.n_moved
            );
        }
    }
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// jemalloc instead of glibc's allocator. Most of a held poll's memory is the 8 KiB read and
/// 8 KiB write buffer actix-http allocates per connection, of which a held poll writes a few
/// hundred bytes; with jemalloc (its 8 KiB size class is page-aligned, with no chunk header
/// between two buffers) fewer of their pages become resident: 11.6 KiB per held poll at 10 000
/// against 15.5 KiB with glibc, at the same CPU per delivery and push rate (BENCHMARKS.md,
/// issue 11, change 17).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
