//! One request to an OpenAI-compatible server, measured.

use std::future::Future;
use std::sync::Arc;

use super::answer::{error, Fail};
pub use super::answer::{At, Measured};
use super::http::{Connection, Pool};
use super::reader::{Exchange, Readers};

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
