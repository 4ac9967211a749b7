//! One request to an OpenAI-compatible server, measured.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::event::{self, Malformed};
use super::http::{Connection, Pool};
use super::reader::{Exchange, Readers};
use super::record::RequestError;

/// What a request measured; times are offsets from `start`.
#[derive(Debug, Default)]
pub struct Measured {
    pub content_times: Vec<Duration>,
    pub end: Option<Duration>,
    pub output_tokens: Option<u64>,
    pub input_tokens: Option<u64>,
    pub content_events: u64,
    /// The streamed text, collected only when it is `Some` at the start (to count its tokens).
    pub text: Option<String>,
    pub error: Option<RequestError>,
}

impl Measured {
    /// Keeps what an event (a streamed chunk or a whole answer) says: its usage and, when
    /// collected, its text; returns whether it carried content.
    pub(super) fn take(&mut self, json: &[u8]) -> Result<bool, Malformed> {
        let event = event::scan(json, self.text.as_mut())?;
        if let Some((completion, prompt)) = event.usage {
            self.output_tokens = Some(completion);
            self.input_tokens = prompt;
        }
        Ok(event.content)
    }
}

pub(super) fn error(
    code: Option<u16>,
    kind: &'static str,
    message: impl Into<String>,
) -> Option<RequestError> {
    Some(RequestError { code, kind, message: message.into() })
}

/// One request, ready to write: its HTTP/1.1 bytes, and whether its answer streams.
#[derive(Debug)]
pub struct Request {
    pub bytes: Arc<[u8]>,
    pub stream: bool,
}

impl Request {
    /// A POST of `body` to `path` on `host`, with `id` as its `X-Request-ID`.
    pub fn new(path: &str, host: &str, id: &str, body: &[u8], stream: bool) -> Self {
        let mut bytes = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nX-Request-ID: {id}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(body);
        Request { bytes: bytes.into(), stream }
    }
}

/// A request whose first `bytes` were already written on `connection` (by the open loop's
/// timing thread, at the request's slot).
#[derive(Debug)]
pub struct Written {
    pub connection: Connection,
    pub bytes: usize,
}

/// How an exchange failed: before any byte of an answer (a kept-alive connection the server had
/// closed: worth one retry on a new one), or during the answer.
#[derive(Debug)]
pub enum Fail {
    BeforeAnswer(std::io::Error),
    During(&'static str, String),
}

/// When a request was sent: `start`, and `wall_ns` on the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub start: Instant,
    pub wall_ns: u64,
}

impl At {
    /// When a read's bytes arrived, as an offset from `start`: the kernel's receive timestamp
    /// when there is one, else now.
    pub(super) fn arrival(&self, stamp: Option<u64>) -> Duration {
        match stamp {
            Some(ns) if ns >= self.wall_ns => Duration::from_nanos(ns - self.wall_ns),
            _ => self.start.elapsed(),
        }
    }
}

/// Sends `request` (the rest of it, when it is partly `written`) and has `readers` read the
/// answer into `out` (times from `at.start`). When `stop` finishes first, the exchange is
/// abandoned and its output returned, with `out` holding everything measured until then.
pub async fn send<T>(
    readers: &Readers,
    pool: &Pool,
    request: &Request,
    mut written: Option<Written>,
    at: At,
    out: &mut Measured,
    stop: impl Future<Output = T>,
) -> Option<T> {
    tokio::pin!(stop);
    let start = at.start;
    for attempt in 0..2 {
        let connected = match written.take() {
            Some(w) => Ok((w.connection, w.bytes)),
            None => {
                let connect = async {
                    match attempt {
                        0 => pool.get().await,
                        _ => pool.connect().await,
                    }
                };
                tokio::select! {
                    c = connect => c.map(|c| (c, 0)),
                    t = &mut stop => return Some(t),
                }
            }
        };
        let (connection, mut sent) = match connected {
            Ok(connected) => connected,
            Err(e) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("cannot connect: {e}"));
                return None;
            }
        };
        let reused = connection.served > 0;
        // What the socket takes now goes out now; the reading task writes any rest.
        if sent < request.bytes.len() {
            match connection.try_write(&request.bytes[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) if reused && attempt == 0 => continue,
                Err(e) => {
                    out.end = Some(start.elapsed());
                    out.error = error(None, "transport", format!("no answer: {e}"));
                    return None;
                }
            }
        }
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let measured = std::mem::take(out);
        let exchange =
            Exchange::new(connection, request.bytes.clone(), sent, request.stream, at, measured, reply);
        let ticket = match readers.submit(exchange) {
            Ok(ticket) => ticket,
            Err(e) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("cannot watch the connection: {e}"));
                return None;
            }
        };
        let mut outcome = outcome;
        let (outcome, stopped) = tokio::select! {
            outcome = &mut outcome => (outcome, None),
            t = &mut stop => {
                readers.abandon(ticket);
                (outcome.await, Some(t))
            }
        };
        let Ok(outcome) = outcome else {
            out.end = Some(start.elapsed());
            out.error = error(None, "transport", "the reading task stopped");
            return stopped;
        };
        *out = outcome.measured;
        if stopped.is_some() {
            return stopped;
        }
        match outcome.result {
            Ok(_) => {
                if let Some(connection) = outcome.connection {
                    pool.put(connection);
                }
                return None;
            }
            Err(Fail::BeforeAnswer(_)) if reused && attempt == 0 => continue,
            Err(Fail::BeforeAnswer(e)) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("no answer: {e}"));
                return None;
            }
            Err(Fail::During(kind, message)) => {
                out.error = error(None, kind, message);
                return None;
            }
        }
    }
    None
}

/// The end of the first SSE event in `buffer` (the index of its blank line).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    // `memmem::find` would build a searcher on every call; an event has few line ends.
    memchr::memchr_iter(b'\n', buffer).find(|&at| buffer.get(at + 1) == Some(&b'\n'))
}

/// Counts the complete SSE events at the start of `data`, all arrived at `now` (several events
/// in one read are counted, one content time for the read); returns the bytes consumed.
pub(super) fn parse_events(data: &[u8], now: Duration, out: &mut Measured) -> usize {
    let mut consumed = 0;
    let mut content_in_read = false;
    while let Some(end) = find_event_end(&data[consumed..]) {
        let event = &data[consumed..consumed + end];
        consumed += end + 2;
        let Some(payload) = event.strip_prefix(b"data:") else { continue };
        let payload = payload.trim_ascii();
        if payload == b"[DONE]" {
            continue;
        }
        match out.take(payload) {
            Ok(true) => {
                out.content_events += 1;
                content_in_read = true;
            }
            Ok(false) => {}
            Err(e) => {
                if out.error.is_none() {
                    out.error = error(
                        None,
                        "malformed_stream",
                        format!("{e}: {}", String::from_utf8_lossy(&payload[..payload.len().min(200)])),
                    );
                }
            }
        }
    }
    if content_in_read {
        out.content_times.push(now);
    }
    consumed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> String {
        format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
    }

    #[test]
    fn events_in_one_read_share_its_time_and_split_events_wait_for_their_end() {
        let mut out = Measured::default();
        let t = |ms| Duration::from_millis(ms);
        // Three events in one read: three tokens, one content time.
        let read = format!("{}{}{}", event("a"), event("b"), event("c"));
        assert_eq!(parse_events(read.as_bytes(), t(10), &mut out), read.len());
        assert_eq!((out.content_events, out.content_times.clone()), (3, vec![t(10)]));
        // An event cut in two reads counts when its end arrives.
        let e = event("d");
        let (head, tail) = e.as_bytes().split_at(9);
        assert_eq!(parse_events(head, t(20), &mut out), 0);
        let joined = [head, tail].concat();
        assert_eq!(parse_events(&joined, t(30), &mut out), joined.len());
        assert_eq!(out.content_times, vec![t(10), t(30)]);
        // Role-only and usage events are not content; usage gives the token counts; [DONE] ends.
        let rest = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
                    data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
        parse_events(rest.as_bytes(), t(40), &mut out);
        assert_eq!((out.content_events, out.output_tokens, out.input_tokens), (4, Some(4), Some(7)));
        assert_eq!(out.content_times.len(), 2);
        // Escaped text still parses (it cannot be borrowed) and a broken event is an error.
        parse_events(event("caf\\u00e9 \\\"x\\\"").as_bytes(), t(50), &mut out);
        assert_eq!(out.content_events, 5);
        assert!(out.error.is_none());
        parse_events(b"data: {\"choices\":[{\"delta\":{\"content\":\n\n", t(60), &mut out);
        assert_eq!(out.error.as_ref().map(|e| e.kind), Some("malformed_stream"));
    }
}
