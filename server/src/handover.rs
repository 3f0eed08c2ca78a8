//! Takeover: a new `chat-server` process receives the running one's listening sockets, so
//! that a restart or an upgrade refuses no connection (as HAProxy, nginx and Envoy hand their
//! listeners over).
//!
//! The running process listens on a Unix socket in its data folder, [`HANDOVER_SOCKET`],
//! created only once it holds the folder's lock. A process started with `--takeover` connects
//! to it and sends [`HELLO`]. The running process answers with one message carrying its
//! listening sockets as `SCM_RIGHTS` file descriptors and a payload naming them ([`CHAT_ONLY`]
//! or [`CHAT_AND_METRICS`]), then stops accepting, answers its held pops, flushes and releases
//! the folder. Both processes now hold the same kernel socket: connections that arrive in
//! between wait in its accept queue instead of being refused, and the new process accepts them
//! once it has loaded the folder.

use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::AsyncReadExt;

/// The Unix socket in the data folder on which the running process hands its listeners over.
pub const HANDOVER_SOCKET: &str = ".chat-server.handover";

/// What a process taking over sends first (protocol version 1).
pub const HELLO: &[u8] = b"chat-server takeover 1\n";

/// Payload of the answer carrying one descriptor: the chat listener.
pub const CHAT_ONLY: &[u8] = b"chat\n";

/// Payload of the answer carrying two descriptors: the chat listener, then the metrics one.
pub const CHAT_AND_METRICS: &[u8] = b"chat+metrics\n";

/// How long either side waits for the other's message.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a takeover could not get the listeners.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// No process answers on the hand-over socket (none runs on this data folder, or it is
    /// older than takeovers).
    #[error("no running chat-server answers on {path}: {source}")]
    NotRunning {
        /// The hand-over socket.
        path: PathBuf,
        /// What connecting said.
        source: std::io::Error,
    },
    /// The exchange failed half way.
    #[error("the hand-over on {path} failed: {source}")]
    Exchange {
        /// The hand-over socket.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The running process answered something this version does not understand.
    #[error(
        "the running chat-server answered the hand-over with {payload:?} and {n_fds} descriptors"
    )]
    Unexpected {
        /// Its payload.
        payload: String,
        /// How many descriptors came with it.
        n_fds: usize,
    },
}

/// The listening sockets handed over.
#[derive(Debug)]
pub struct HandedOver {
    /// The chat listener (the address clients use).
    pub chat: TcpListener,
    /// The operators' metrics listener, when the running process had one.
    pub metrics: Option<TcpListener>,
}

/// The path of the hand-over socket of `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(HANDOVER_SOCKET)
}

/// Asks the process running on `data_dir` for its listeners (blocking, at most a few seconds).
/// From the moment this returns, that process is stopping: it releases the data folder once
/// it has answered its held pops and flushed.
///
/// # Errors
/// [`HandoverError`]: nobody answers, or the exchange fails.
pub fn request_listeners(data_dir: &Path) -> Result<HandedOver, HandoverError> {
    let path = socket_path(data_dir);
    let mut stream = StdUnixStream::connect(&path).map_err(|source| HandoverError::NotRunning {
        path: path.clone(),
        source,
    })?;
    let exchange = |source| HandoverError::Exchange {
        path: path.clone(),
        source,
    };
    stream
        .set_read_timeout(Some(EXCHANGE_TIMEOUT))
        .map_err(exchange)?;
    stream.write_all(HELLO).map_err(exchange)?;
    let mut payload = [0u8; 64];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut payload)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|errno| exchange(errno.into()))?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    let payload = &payload[..received.bytes];
    let unexpected = |fds: &[OwnedFd]| HandoverError::Unexpected {
        payload: String::from_utf8_lossy(payload).into_owned(),
        n_fds: fds.len(),
    };
    let mut fds = fds.into_iter();
    let handed = match (payload, fds.len()) {
        (CHAT_ONLY, 1) => HandedOver {
            chat: fds
                .next()
                .map(TcpListener::from)
                .ok_or_else(|| unexpected(&[]))?,
            metrics: None,
        },
        (CHAT_AND_METRICS, 2) => HandedOver {
            chat: fds
                .next()
                .map(TcpListener::from)
                .ok_or_else(|| unexpected(&[]))?,
            metrics: fds.next().map(TcpListener::from),
        },
        _ => return Err(unexpected(&fds.collect::<Vec<_>>())),
    };
    Ok(handed)
}

/// The running process's side: the hand-over socket, listening in the data folder.
#[derive(Debug)]
pub struct HandoverSocket {
    listener: tokio::net::UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file this process made, so that dropping it never
    /// removes a successor's.
    file_id: Option<(u64, u64)>,
}

/// The device and inode of `path`.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|meta| (meta.dev(), meta.ino()))
}

impl HandoverSocket {
    /// Listens on the hand-over socket of `data_dir`, connectable by this user only (mode
    /// 0600: whoever connects can stop this server). Call it only while holding the data
    /// folder's lock: a socket file left there is then a dead process's and is replaced.
    ///
    /// # Errors
    /// The socket cannot be created (for example a data folder path longer than a Unix socket
    /// path may be, about 100 bytes).
    pub fn bind(data_dir: &Path) -> std::io::Result<HandoverSocket> {
        use std::os::unix::fs::PermissionsExt;
        let path = socket_path(data_dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
        let listener = tokio::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let file_id = file_id(&path);
        Ok(HandoverSocket {
            listener,
            path,
            file_id,
        })
    }

    /// Waits for a process that asks to take over (a connection that sends [`HELLO`]);
    /// connections that send anything else are closed and waited past.
    ///
    /// # Errors
    /// Accepting on the socket failed.
    pub async fn next_request(&self) -> std::io::Result<TakeoverRequest> {
        loop {
            let (mut stream, _) = self.listener.accept().await?;
            let mut hello = [0u8; HELLO.len()];
            match tokio::time::timeout(EXCHANGE_TIMEOUT, stream.read_exact(&mut hello)).await {
                Ok(Ok(_)) if hello == HELLO => return Ok(TakeoverRequest { stream }),
                _ => tracing::warn!(
                    path = %self.path.display(),
                    "ignored a connection to the hand-over socket that did not ask for a takeover"
                ),
            }
        }
    }
}

impl Drop for HandoverSocket {
    fn drop(&mut self) {
        // Only our own file: a successor may have bound its own there already.
        if self.file_id.is_some() && file_id(&self.path) == self.file_id {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A process asking to take over, waiting for the listeners.
#[derive(Debug)]
pub struct TakeoverRequest {
    stream: tokio::net::UnixStream,
}

impl TakeoverRequest {
    /// Sends `chat` (and `metrics`, when there is one) to the process taking over. The sockets
    /// stay open here too; the caller stops accepting on them next.
    ///
    /// # Errors
    /// The message could not be sent (the requester went away): nothing was handed over.
    pub fn hand_over(self, chat: &impl AsFd, metrics: Option<&impl AsFd>) -> std::io::Result<()> {
        let stream: StdUnixStream = self.stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_write_timeout(Some(EXCHANGE_TIMEOUT))?;
        let mut fds = vec![chat.as_fd()];
        fds.extend(metrics.map(AsFd::as_fd));
        let payload = if fds.len() == 2 {
            CHAT_AND_METRICS
        } else {
            CHAT_ONLY
        };
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(std::io::Error::other(
                "the descriptors do not fit the message",
            ));
        }
        let sent = rustix::net::sendmsg(
            &stream,
            &[IoSlice::new(payload)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        if sent != payload.len() {
            return Err(std::io::Error::other("the hand-over message was cut short"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_cross_the_handover_socket_and_accept_the_same_connections() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = HandoverSocket::bind(dir.path()).expect("binds");
        let chat = TcpListener::bind("127.0.0.1:0").expect("binds");
        let addr = chat.local_addr().expect("address");
        let data_dir = dir.path().to_owned();
        let asking = tokio::task::spawn_blocking(move || request_listeners(&data_dir));
        let request = socket.next_request().await.expect("a request");
        request
            .hand_over(&chat, None::<&TcpListener>)
            .expect("sent");
        let handed = asking.await.expect("joins").expect("received");
        assert!(handed.metrics.is_none());
        assert_eq!(handed.chat.local_addr().expect("address"), addr);
        // A connection made now waits in the shared queue; the receiver accepts it.
        drop(chat);
        let _client = std::net::TcpStream::connect(addr).expect("connects");
        let (_, from) = handed.chat.accept().expect("accepted by the new owner");
        assert!(from.ip().is_loopback());
    }

    #[tokio::test]
    async fn the_socket_is_for_this_user_only_and_dropping_it_leaves_a_successor_s_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let first = HandoverSocket::bind(dir.path()).expect("binds");
        let mode = std::fs::metadata(socket_path(dir.path()))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let successor = HandoverSocket::bind(dir.path()).expect("replaces the file");
        drop(first);
        assert!(
            socket_path(dir.path()).exists(),
            "the successor's socket file stays"
        );
        drop(successor);
        assert!(!socket_path(dir.path()).exists());
    }

    #[tokio::test]
    async fn both_listeners_cross_and_keep_their_roles() {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = HandoverSocket::bind(dir.path()).expect("binds");
        let chat = TcpListener::bind("127.0.0.1:0").expect("binds");
        let metrics = TcpListener::bind("127.0.0.1:0").expect("binds");
        let data_dir = dir.path().to_owned();
        let asking = tokio::task::spawn_blocking(move || request_listeners(&data_dir));
        let request = socket.next_request().await.expect("a request");
        request.hand_over(&chat, Some(&metrics)).expect("sent");
        let handed = asking.await.expect("joins").expect("received");
        assert_eq!(
            handed.chat.local_addr().expect("address"),
            chat.local_addr().expect("address")
        );
        assert_eq!(
            handed
                .metrics
                .expect("a metrics listener")
                .local_addr()
                .expect("address"),
            metrics.local_addr().expect("address")
        );
    }

    #[test]
    fn nobody_running_is_reported_with_the_socket_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = request_listeners(dir.path()).expect_err("nobody answers");
        assert!(matches!(error, HandoverError::NotRunning { .. }), "{error}");
        assert!(error.to_string().contains(HANDOVER_SOCKET), "{error}");
    }
}
