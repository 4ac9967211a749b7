//! One request to an OpenAI-compatible server, measured.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;

use super::http::{parse_head, Chunked, Connection, Framing, Pool};
use super::record::RequestError;

// Texts are borrowed from the response bytes when they hold no escapes: parsing an event then
// allocates nothing but its list of choices.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    completion_tokens: u64,
}

impl Event<'_> {
    /// Appends the event's text (answer, reasoning and completion text) to `out`.
    fn push_text(&self, out: &mut String) {
        for c in &self.choices {
            if let Some(delta) = c.delta.as_ref().or(c.message.as_ref()) {
                out.extend(delta.reasoning_content.as_deref());
                out.extend(delta.content.as_deref());
            }
            out.extend(c.text.as_deref());
        }
    }

    fn has_content(&self) -> bool {
        let some = |t: Option<&Cow<str>>| t.is_some_and(|t| !t.is_empty());
        self.choices.iter().any(|c| {
            let delta = c.delta.as_ref().or(c.message.as_ref());
            some(delta.and_then(|d| d.content.as_ref()))
                || some(delta.and_then(|d| d.reasoning_content.as_ref()))
                || some(c.text.as_ref())
        })
    }
}

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
    fn take(&mut self, event: &Event) -> bool {
        if let Some(text) = &mut self.text {
            event.push_text(text);
        }
        if let Some(usage) = &event.usage {
            self.output_tokens = Some(usage.completion_tokens);
            self.input_tokens = usage.prompt_tokens;
        }
        event.has_content()
    }
}

fn error(code: Option<u16>, kind: &'static str, message: impl Into<String>) -> Option<RequestError> {
    Some(RequestError { code, kind, message: message.into() })
}

/// One request to send.
#[derive(Debug)]
pub struct Request<'a> {
    /// The URL path, e.g. `/v1/chat/completions`.
    pub path: &'a str,
    /// Sent as `X-Request-ID`.
    pub id: &'a str,
    pub body: Bytes,
    pub stream: bool,
}

/// How an exchange failed: before any byte of an answer (a kept-alive connection the server had
/// closed: worth one retry on a new one), or during the answer.
enum Fail {
    BeforeAnswer(std::io::Error),
    During(&'static str, String),
}

/// When a read's bytes arrived, as an offset from `start`: the kernel's receive timestamp when
/// there is one, else now.
fn arrival(stamp: Option<u64>, start: Instant, start_wall_ns: u64) -> Duration {
    match stamp {
        Some(ns) if ns >= start_wall_ns => Duration::from_nanos(ns - start_wall_ns),
        _ => start.elapsed(),
    }
}

/// Sends `request` and fills `out` as the answer arrives (times from `start`, which was
/// `start_wall_ns` on the wall clock), so that a caller that stops waiting (a timeout, a
/// deadline) still has everything measured so far.
pub async fn send(pool: &Pool, request: Request<'_>, start: Instant, start_wall_ns: u64, out: &mut Measured) {
    let mut bytes = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nX-Request-ID: {}\r\nContent-Length: {}\r\n\r\n",
        request.path,
        pool.host(),
        request.id,
        request.body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&request.body);
    for attempt in 0..2 {
        let connection = if attempt == 0 { pool.get().await } else { pool.connect().await };
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("cannot connect: {e}"));
                return;
            }
        };
        let reused = connection.served > 0;
        match exchange(&mut connection, &bytes, request.stream, start, start_wall_ns, out).await {
            Ok(true) => return pool.put(connection),
            Ok(false) => return,
            Err(Fail::BeforeAnswer(_)) if reused && attempt == 0 => continue,
            Err(Fail::BeforeAnswer(e)) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("no answer: {e}"));
                return;
            }
            Err(Fail::During(kind, message)) => {
                out.error = error(None, kind, message);
                return;
            }
        }
    }
}

/// One request and its whole answer on `connection`; returns whether the connection can carry
/// another.
async fn exchange(
    connection: &mut Connection,
    request: &[u8],
    stream: bool,
    start: Instant,
    start_wall_ns: u64,
    out: &mut Measured,
) -> Result<bool, Fail> {
    connection.write_all(request).await.map_err(Fail::BeforeAnswer)?;
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let interrupted = |e: String| Fail::During("stream_interrupted", e);
    // The head.
    let (head, mut now) = loop {
        let (n, stamp) = connection.read(&mut buf).await.map_err(|e| {
            if pending.is_empty() {
                Fail::BeforeAnswer(e)
            } else {
                interrupted(e.to_string())
            }
        })?;
        if n == 0 {
            return Err(if pending.is_empty() {
                Fail::BeforeAnswer(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ))
            } else {
                interrupted("the connection closed inside the response head".into())
            });
        }
        let now = arrival(stamp, start, start_wall_ns);
        out.end = Some(now);
        pending.extend_from_slice(&buf[..n]);
        if let Some(head) =
            parse_head(&pending).map_err(|e| Fail::During("malformed_response", e.to_string()))?
        {
            pending.drain(..head.length);
            break (head, now);
        }
    };
    let ok = (200..300).contains(&head.status);
    let streaming = ok && stream;
    let mut chunked = Chunked::default();
    let mut data: Vec<u8> = Vec::new();
    let mut received = 0usize;
    // The body: what came with the head, then each read, all parsed as they arrive.
    let mut raw = std::mem::take(&mut pending);
    loop {
        let complete = match head.framing {
            Framing::Chunked => {
                let used = chunked
                    .decode(&raw, &mut data)
                    .map_err(|e| Fail::During("malformed_response", e.to_string()))?;
                raw.drain(..used);
                chunked.done
            }
            Framing::Length(n) => {
                received += raw.len();
                data.append(&mut raw);
                received >= n
            }
            Framing::Close => {
                data.append(&mut raw);
                false
            }
        };
        if streaming && !data.is_empty() {
            let consumed = parse_events(&data, now, out);
            data.drain(..consumed);
        }
        if complete {
            break;
        }
        let (n, stamp) = connection.read(&mut buf).await.map_err(|e| interrupted(e.to_string()))?;
        if n == 0 {
            if head.framing == Framing::Close {
                break;
            }
            return Err(interrupted("the connection closed before the response ended".into()));
        }
        now = arrival(stamp, start, start_wall_ns);
        out.end = Some(now);
        raw.extend_from_slice(&buf[..n]);
    }
    if !ok {
        let message: String = String::from_utf8_lossy(&data).chars().take(500).collect();
        out.error = error(Some(head.status), "http_error", message);
    } else if !stream {
        match serde_json::from_slice::<Event>(&data) {
            Ok(event) => {
                if out.take(&event) {
                    out.content_events = 1;
                    out.content_times.push(now);
                }
            }
            Err(e) => out.error = error(None, "malformed_response", e.to_string()),
        }
    }
    Ok(head.keep_alive)
}

/// The end of the first SSE event in `buffer` (the index of its blank line).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = buffer[from..].iter().position(|&b| b == b'\n') {
        let at = from + i;
        if buffer.get(at + 1) == Some(&b'\n') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Counts the complete SSE events at the start of `data`, all arrived at `now` (several events
/// in one read are counted, one content time for the read); returns the bytes consumed.
fn parse_events(data: &[u8], now: Duration, out: &mut Measured) -> usize {
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
        match serde_json::from_slice::<Event>(payload) {
            Ok(event) => {
                if out.take(&event) {
                    out.content_events += 1;
                    content_in_read = true;
                }
            }
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
