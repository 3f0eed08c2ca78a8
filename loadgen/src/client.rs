//! Talking to a server: the chat's JSONP protocol, or nchan's publisher and long-poll
//! subscriber locations.

use std::time::Duration;

use anyhow::{bail, Context};
use chat_shared::{encode_component, ChatResponse};
use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use serde::{Deserialize, Serialize};

/// The callback name the load generator asks for.
const CALLBACK: &str = "loadgen";

/// A cursor larger than any real time: a pop with it is answered at once with the newest time
/// (the protocol's "beyond the newest message" rule), which is how a poller starts.
pub const BEYOND_NEWEST: u64 = 999_999_999_999_999;

/// Builds the shared HTTP client: one connection per concurrent request, generous timeouts;
/// its connections leave from `source_address` when given (another loopback address, e.g.
/// 127.0.0.2, for more connections to one server than one address has ports).
///
/// # Errors
/// The client could not be built.
pub fn http_client(
    request_timeout: Duration,
    source_address: Option<std::net::IpAddr>,
) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(request_timeout)
        .local_address(source_address)
        .pool_max_idle_per_host(usize::MAX)
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// What a failed request failed with, as a report counts it (its JSON name in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No connection could be made (`connect`): refused, or no route.
    Connect,
    /// No connection or no answer within the request timeout (`timeout`): the client sets no
    /// separate connect timeout, so a connection that never completes ends here too.
    Timeout,
    /// The request could not be sent, or the connection closed before the answer
    /// (`request`).
    Request,
    /// The answer's body could not be read (`body`).
    Body,
    /// Everything that failed without a transport error (`answer`): an HTTP error status, an
    /// `error` object in the answer, or a body that is not a JSONP answer.
    Answer,
    /// Any other transport error (`other`).
    Other,
}

impl FailureKind {
    /// Its JSON name: `connect`, `timeout`, `request`, `body`, `answer` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Timeout => "timeout",
            FailureKind::Request => "request",
            FailureKind::Body => "body",
            FailureKind::Answer => "answer",
            FailureKind::Other => "other",
        }
    }
}

/// What `error` (from [`JsonpClient`] or [`NchanClient`]) failed with.
pub fn failure_kind(error: &anyhow::Error) -> FailureKind {
    let Some(http) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<reqwest::Error>())
    else {
        return FailureKind::Answer;
    };
    if http.is_timeout() {
        FailureKind::Timeout
    } else if http.is_connect() {
        FailureKind::Connect
    } else if http.is_body() || http.is_decode() {
        FailureKind::Body
    } else if http.is_request() {
        FailureKind::Request
    } else {
        FailureKind::Other
    }
}

/// Reads `/**/callback({...});` into the answer object.
///
/// # Errors
/// The body is not a JSONP call of an answer object.
pub fn parse_jsonp(body: &str) -> anyhow::Result<ChatResponse> {
    let (Some(open), Some(close)) = (body.find('('), body.rfind(')')) else {
        bail!("not a JSONP answer: {body:.200}");
    };
    serde_json::from_str(&body[open + 1..close])
        .with_context(|| format!("not an answer object: {body:.200}"))
}

/// A client of the chat protocol at `base_url` (e.g. `http://127.0.0.1:8973/`).
#[derive(Debug, Clone)]
pub struct JsonpClient {
    http: reqwest::Client,
    base_url: String,
}

impl JsonpClient {
    /// A client for `base_url` sharing `http`'s connection pool.
    pub fn new(http: reqwest::Client, base_url: &str) -> JsonpClient {
        let base_url = if base_url.ends_with('/') {
            base_url.to_owned()
        } else {
            format!("{base_url}/")
        };
        JsonpClient { http, base_url }
    }

    async fn get(&self, query: &str) -> anyhow::Result<ChatResponse> {
        let url = format!("{}?{query}&callback={CALLBACK}", self.base_url);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url:.120}"))?;
        let status = response.status();
        let body = response.text().await.context("reading the answer")?;
        if !status.is_success() {
            bail!("HTTP {status}: {body:.200}");
        }
        parse_jsonp(&body)
    }

    /// Saves `msg` under `name`; returns the saved message's time.
    ///
    /// # Errors
    /// A transport error, a non-200 answer, or an `error` in the answer.
    pub async fn push(&self, name: &str, msg: &str) -> anyhow::Result<u64> {
        let query = format!(
            "name={}&method=push&msg={}&time=1",
            encode_component(name),
            encode_component(msg)
        );
        let answer = self.get(&query).await?;
        if let Some(error) = answer.error {
            bail!("push refused: {} ({})", error.message, error.code.as_str());
        }
        Ok(answer.time)
    }

    /// One pop from `time`: held by the server until something newer exists or its hold time
    /// passes.
    ///
    /// # Errors
    /// A transport error, a non-200 answer, or an `error` in the answer.
    pub async fn pop(&self, name: &str, time: u64) -> anyhow::Result<ChatResponse> {
        let answer = self
            .get(&format!(
                "name={}&method=pop&time={time}",
                encode_component(name)
            ))
            .await?;
        if let Some(error) = &answer.error {
            bail!("pop refused: {} ({})", error.message, error.code.as_str());
        }
        Ok(answer)
    }

    /// The newest message's time, from a pop "beyond the newest".
    ///
    /// # Errors
    /// As [`JsonpClient::pop`].
    pub async fn newest_time(&self) -> anyhow::Result<u64> {
        Ok(self.pop("", BEYOND_NEWEST).await?.time)
    }
}

/// A client of nginx + nchan: publish by POST to `<base>/pub?id=<channel>`, long-poll
/// subscribe at `<base>/sub?id=<channel>` with `If-Modified-Since`/`If-None-Match` taken from
/// the previous answer.
#[derive(Debug, Clone)]
pub struct NchanClient {
    http: reqwest::Client,
    base_url: String,
    channel: String,
}

/// Where an nchan subscriber is in the channel: the previous answer's `Last-Modified` and `Etag`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NchanCursor {
    last_modified: Option<String>,
    etag: Option<String>,
}

/// What one nchan long poll brought.
#[derive(Debug)]
pub enum NchanPoll {
    /// A message body, and the cursor after it.
    Message(String, NchanCursor),
    /// The poll timed out without a message (nchan answers 304 or 408); poll again.
    Nothing,
}

fn header_text(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

impl NchanClient {
    /// A client for `base_url` (e.g. `http://127.0.0.1:8980`) and `channel`.
    pub fn new(http: reqwest::Client, base_url: &str, channel: &str) -> NchanClient {
        NchanClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            channel: channel.to_owned(),
        }
    }

    /// Publishes `body`; returns when nchan acknowledged it.
    ///
    /// # Errors
    /// A transport error or a non-2xx answer.
    pub async fn publish(&self, body: &str) -> anyhow::Result<()> {
        let url = format!("{}/pub?id={}", self.base_url, self.channel);
        let response = self
            .http
            .post(&url)
            .body(body.to_owned())
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("publish: HTTP {status}");
        }
        Ok(())
    }

    /// One long poll from `cursor` (`None`: wait for the next message published).
    ///
    /// # Errors
    /// A transport error or an unexpected status.
    pub async fn poll(&self, cursor: Option<&NchanCursor>) -> anyhow::Result<NchanPoll> {
        let url = format!("{}/sub?id={}", self.base_url, self.channel);
        let mut request = self.http.get(&url);
        if let Some(cursor) = cursor {
            if let Some(last_modified) = &cursor.last_modified {
                request = request.header(IF_MODIFIED_SINCE, last_modified);
            }
            if let Some(etag) = &cursor.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
        }
        let response = request.send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let next = NchanCursor {
                    last_modified: header_text(response.headers(), LAST_MODIFIED),
                    etag: header_text(response.headers(), ETAG),
                };
                Ok(NchanPoll::Message(
                    response.text().await.context("reading the message")?,
                    next,
                ))
            }
            304 | 408 => Ok(NchanPoll::Nothing),
            other => bail!("subscribe: HTTP {other}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener on a free port of 127.0.0.1, and that port.
    async fn loopback_listener() -> (tokio::net::TcpListener, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let port = listener.local_addr().expect("its address").port();
        (listener, port)
    }

    /// A pop to `127.0.0.1:<port>` with a 300 ms request timeout, which must fail.
    async fn failed_pop(port: u16) -> anyhow::Error {
        let client = JsonpClient::new(
            http_client(Duration::from_millis(300), None).expect("client"),
            &format!("http://127.0.0.1:{port}/"),
        );
        client.pop("a", 1).await.expect_err("the pop must fail")
    }

    #[test]
    fn failure_kinds_have_the_same_name_in_the_json_and_in_the_table() {
        for kind in [
            FailureKind::Connect,
            FailureKind::Timeout,
            FailureKind::Request,
            FailureKind::Body,
            FailureKind::Answer,
            FailureKind::Other,
        ] {
            let json = serde_json::to_string(&kind).expect("serializes");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn a_refusal_without_a_transport_error_is_an_answer() {
        let refused = anyhow::anyhow!("pop refused: full (too_many_polls)");
        assert_eq!(failure_kind(&refused), FailureKind::Answer, "{refused:#}");
    }

    #[tokio::test]
    async fn a_port_bound_but_not_listening_refuses_the_connection() {
        // Bound for the whole test, so no other socket takes the port; never listening.
        let closed = tokio::net::TcpSocket::new_v4().expect("a socket");
        closed
            .bind("127.0.0.1:0".parse().expect("an address"))
            .expect("bound");
        let port = closed.local_addr().expect("its address").port();
        let error = failed_pop(port).await;
        assert_eq!(failure_kind(&error), FailureKind::Connect, "{error:#}");
    }

    #[tokio::test]
    async fn a_poll_that_is_never_answered_is_a_timeout() {
        // The kernel accepts the connection into the backlog; nothing ever reads or answers.
        let (_silent, port) = loopback_listener().await;
        let error = failed_pop(port).await;
        assert_eq!(failure_kind(&error), FailureKind::Timeout, "{error:#}");
    }

    #[tokio::test]
    async fn a_connection_closed_before_the_answer_is_a_request_failure() {
        let (closing, port) = loopback_listener().await;
        let server = tokio::spawn(async move {
            // Reads the request, then closes the connection without a byte of answer.
            let (mut connection, _) = closing.accept().await.expect("a connection");
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut connection, &mut request).await;
        });
        let error = failed_pop(port).await;
        server.await.expect("the server task");
        assert_eq!(failure_kind(&error), FailureKind::Request, "{error:#}");
    }

    #[test]
    fn parses_a_jsonp_answer() {
        let answer = parse_jsonp(
            r#"/**/loadgen({"name":"a","time":5,"msgList":[{"name":"a","msg":"x(y)","time":5}]});"#,
        )
        .expect("parses");
        assert_eq!(answer.time, 5);
        assert_eq!(answer.msg_list[0].msg, "x(y)");
        assert!(parse_jsonp("invalid callback name\n").is_err());
    }
}
