//! The writer thread: the one place that assigns message times and writes to disk.
//!
//! Saves arrive on a channel. The thread takes the first, then everything else already
//! waiting (group commit), gives each message its time (`max(now_ms, last_time + 1)`, so times
//! are unique and strictly increasing even when the wall clock steps back), appends the batch to
//! the write-ahead log with one fsync, inserts it into the room (new pops see it from then on),
//! answers the waiting requests, and then wakes every held pop. A message is therefore never
//! delivered or acknowledged before it is durable.

use std::sync::Arc;
use std::thread::JoinHandle;

use chat_shared::Message;
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::room::RoomShared;
use crate::storage::{StorageError, Store};
use crate::telemetry::Telemetry;

/// The most saves committed with one fsync.
pub const MAX_BATCH: usize = 4096;

/// A request to the writer thread.
#[derive(Debug)]
pub enum WriteCommand {
    /// Save a message; the answer carries it with its time.
    Append {
        /// Validated nickname.
        name: String,
        /// Validated text.
        msg: String,
        /// Where the saved message (or why it was not saved) goes.
        reply: oneshot::Sender<Result<Message, Arc<StorageError>>>,
    },
}

/// Starts the writer thread; each group commit's size and fsync time go to `telemetry`. It runs until every sender of `commands` is dropped, then
/// compacts the log into the JSON layout and ends.
pub fn spawn(
    mut store: Store,
    mut commands: mpsc::Receiver<WriteCommand>,
    room: Arc<RoomShared>,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("chat-writer".to_owned()).spawn(move || {
        let mut batch: Vec<WriteCommand> = Vec::with_capacity(64);
        let mut messages: Vec<Message> = Vec::with_capacity(64);
        while let Some(first) = commands.blocking_recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            let mut last_time = store.last_time();
            for WriteCommand::Append { name, msg, .. } in &batch {
                let time = clock.now_ms().max(last_time.saturating_add(1));
                last_time = time;
                messages.push(Message { name: name.clone(), msg: msg.clone(), time });
            }
            let result = store.append(&messages).map_err(Arc::new);
            let result = match result {
                Ok(report) => {
                    telemetry.committed(messages.len(), report.fsync, report.compaction);
                    room.insert(&messages, store.chunked_through());
                    Ok(())
                }
                Err(error) => {
                    tracing::error!(error = %error, n_messages = messages.len(), "could not save messages");
                    Err(error)
                }
            };
            let newest = messages.last().map(|message| message.time);
            for (WriteCommand::Append { reply, .. }, message) in batch.drain(..).zip(messages.drain(..)) {
                // The requester may have gone away; its message is saved all the same.
                let _ = reply.send(result.clone().map(|()| message));
            }
            if let (Ok(()), Some(newest)) = (&result, newest) {
                room.notify(newest);
            }
        }
        if let Err(error) = store.compact() {
            tracing::error!(error = %error, "final compaction failed; messages stay in the write-ahead log");
        }
        tracing::debug!("writer thread finished");
    })
}
