//! One request to an OpenAI-compatible server, measured.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::event::{self, Malformed};
use super::http::{parse_head, Chunked, Connection, Framing, Pool};
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
    fn take(&mut self, json: &[u8]) -> Result<bool, Malformed> {
        let event = event::scan(json, self.text.as_mut())?;
        if let Some((completion, prompt)) = event.usage {
            self.output_tokens = Some(completion);
            self.input_tokens = prompt;
        }
        Ok(event.content)
    }
}

fn error(code: Option<u16>, kind: &'static str, message: impl Into<String>) -> Option<RequestError> {
    Some(RequestError { code, kind, message: message.into() })
}

/// One request, ready to write: its HTTP/1.1 bytes, and whether its answer streams.
#[derive(Debug)]
pub struct Request {
    pub bytes: Vec<u8>,
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
        Request { bytes, stream }
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
enum Fail {
    BeforeAnswer(std::io::Error),
    During(&'static str, String),
}

/// What the runtime does when it runs out of work. Waking at each answer's bytes costs more
/// CPU than reading them when a thousand streams each send a token every few milliseconds, so
/// an idle runtime first pauses — and then finds the bytes of many sockets in one poll.
/// Arrival times do not move (they are the kernel's receive stamps); what a pause could cost is
/// bounded by what the reads so far showed: at most 1/10 of the time between a request's reads
/// (so a stream's consecutive tokens are not read together) and 1/100 of how long requests had
/// run when their bytes came (so a closed loop sends its next request only a little later).
#[derive(Debug, Default)]
pub struct Pace {
    /// Moving averages over reads, in ns: the time since the request's previous read (or its
    /// send), and the request's age.
    gap_ns: AtomicU64,
    age_ns: AtomicU64,
}

impl Pace {
    const LONGEST: Duration = Duration::from_micros(500);
    /// Shorter pauses cost about what they save.
    const SHORTEST: Duration = Duration::from_micros(50);

    fn observe(&self, gap: Duration, age: Duration) {
        // Averages over about 16 reads; the first sets them. Updates from several threads may
        // race; either value is a fair sample.
        let average = |slot: &AtomicU64, value: Duration| {
            let value = value.as_nanos().min(u128::from(u64::MAX >> 8)) as u64;
            let old = slot.load(Ordering::Relaxed);
            let new = if old == 0 { value } else { old - old / 16 + value / 16 };
            slot.store(new.max(1), Ordering::Relaxed);
        };
        average(&self.gap_ns, gap);
        average(&self.age_ns, age);
    }

    /// How long to pause before polling for events, if at all.
    pub fn pause(&self) -> Option<Duration> {
        let gap = self.gap_ns.load(Ordering::Relaxed) / 10;
        let age = self.age_ns.load(Ordering::Relaxed) / 100;
        let pause = Duration::from_nanos(gap.min(age)).min(Pace::LONGEST);
        (pause >= Pace::SHORTEST).then_some(pause)
    }
}

/// When a request was sent (`start`, `wall_ns` on the wall clock), and the pace its reads feed.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub start: Instant,
    pub wall_ns: u64,
    pub pace: &'a Pace,
}

impl At<'_> {
    /// When a read's bytes arrived, as an offset from `start`: the kernel's receive timestamp
    /// when there is one, else now.
    fn arrival(&self, stamp: Option<u64>) -> Duration {
        match stamp {
            Some(ns) if ns >= self.wall_ns => Duration::from_nanos(ns - self.wall_ns),
            _ => self.start.elapsed(),
        }
    }
}

/// Sends `request` (the rest of it, when it is partly `written`) and fills `out` as the answer
/// arrives (times from `at.start`), so that a caller that stops waiting (a timeout, a deadline)
/// still has everything measured so far.
pub async fn send(
    pool: &Pool,
    request: &Request,
    mut written: Option<Written>,
    at: At<'_>,
    out: &mut Measured,
) {
    let start = at.start;
    for attempt in 0..2 {
        let (connection, skip) = match written.take() {
            Some(w) => (Ok(w.connection), w.bytes),
            None if attempt == 0 => (pool.get().await, 0),
            None => (pool.connect().await, 0),
        };
        let mut connection = match connection {
            Ok(connection) => connection,
            Err(e) => {
                out.end = Some(start.elapsed());
                out.error = error(None, "transport", format!("cannot connect: {e}"));
                return;
            }
        };
        let reused = connection.served > 0;
        let rest = &request.bytes[skip.min(request.bytes.len())..];
        match exchange(&mut connection, rest, request.stream, at, out).await {
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
    at: At<'_>,
    out: &mut Measured,
) -> Result<bool, Fail> {
    // The arrival of the read before, for the pace.
    let mut last = Duration::ZERO;
    let mut arrived = |stamp: Option<u64>| {
        let now = at.arrival(stamp);
        at.pace.observe(now.saturating_sub(last), now);
        last = now;
        now
    };
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
        let now = arrived(stamp);
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
        now = arrived(stamp);
        out.end = Some(now);
        raw.extend_from_slice(&buf[..n]);
    }
    if !ok {
        let message: String = String::from_utf8_lossy(&data).chars().take(500).collect();
        out.error = error(Some(head.status), "http_error", message);
    } else if !stream {
        match out.take(&data) {
            Ok(true) => {
                out.content_events = 1;
                out.content_times.push(now);
            }
            Ok(false) => {}
            Err(e) => out.error = error(None, "malformed_response", e.to_string()),
        }
    }
    Ok(head.keep_alive)
}

/// The end of the first SSE event in `buffer` (the index of its blank line).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    // `memmem::find` would build a searcher on every call; an event has few line ends.
    memchr::memchr_iter(b'\n', buffer).find(|&at| buffer.get(at + 1) == Some(&b'\n'))
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
    fn an_idle_runtime_pauses_only_as_long_as_the_reads_seen_allow() {
        let ms = Duration::from_millis;
        let pace = Pace::default();
        assert_eq!(pace.pause(), None, "nothing read yet: no pause");
        // Tokens every 20 ms in streams seconds long: the longest pause.
        for i in 1..200 {
            pace.observe(ms(20), ms(20 * i));
        }
        assert_eq!(pace.pause(), Some(Pace::LONGEST));
        // Tokens every 2 ms: a tenth of that.
        let pace = Pace::default();
        for _ in 0..100 {
            pace.observe(ms(2), ms(1000));
        }
        assert_eq!(pace.pause(), Some(Duration::from_micros(200)));
        // Whole answers in 3 ms: a hundredth of that is too short to be worth a pause.
        let pace = Pace::default();
        for _ in 0..100 {
            pace.observe(ms(3), ms(3));
        }
        assert_eq!(pace.pause(), None);
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
