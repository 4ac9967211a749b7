//! What an answer says as its bytes arrive: the measurements of one exchange, its SSE events
//! counted and read, and how it failed. Shared by the client that sends a request and the
//! reading task that reads its answer (neither imports the other's internals).

use std::time::{Duration, Instant};

use super::event::{self, Malformed};
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
    pub fn take(&mut self, json: &[u8]) -> Result<bool, Malformed> {
        let event = event::scan(json, self.text.as_mut())?;
        if let Some((completion, prompt)) = event.usage {
            self.output_tokens = Some(completion);
            self.input_tokens = prompt;
        }
        Ok(event.content)
    }
}

pub fn error(code: Option<u16>, kind: &'static str, message: impl Into<String>) -> Option<RequestError> {
    Some(RequestError { code, kind, message: message.into() })
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
    pub fn arrival(&self, stamp: Option<u64>) -> Duration {
        match stamp {
            Some(ns) if ns >= self.wall_ns => Duration::from_nanos(ns - self.wall_ns),
            _ => self.start.elapsed(),
        }
    }
}

/// The end of the first SSE event in `buffer` (the index of its blank line).
fn find_event_end(buffer: &[u8]) -> Option<usize> {
    // `memmem::find` would build a searcher on every call; an event has few line ends.
    memchr::memchr_iter(b'\n', buffer).find(|&at| buffer.get(at + 1) == Some(&b'\n'))
}

/// Counts the complete SSE events at the start of `data`, all arrived at `now` (several events
/// in one read are counted, one content time for the read); returns the bytes consumed.
pub fn parse_events(data: &[u8], now: Duration, out: &mut Measured) -> usize {
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

    /// The same events cut anywhere into reads (and glued to garbage, or to a line far longer
    /// than any event) give the same counts as one read, never panic, and consume only whole
    /// events. 100,000 cases: `cargo test --release -p sweep-load -- --ignored fuzz`.
    fn fuzz_sse(cases: u32) {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let stream: String = ["a", "b", "c\\u00e9", "d"].iter().map(|t| event(t)).collect::<String>()
            + "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":4}}\n\ndata: [DONE]\n\n";
        let whole = {
            let mut out = Measured::default();
            parse_events(stream.as_bytes(), Duration::ZERO, &mut out);
            (out.content_events, out.output_tokens, out.input_tokens)
        };
        assert_eq!(whole, (4, Some(4), Some(7)));
        let strategy = (
            prop::collection::vec(1usize..64, 1..16),
            prop::collection::vec(any::<u8>(), 0..64),
            prop_oneof![Just(0usize), Just(1 << 16), 0usize..512],
        );
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        runner
            .run(&strategy, |(cuts, garbage, long)| {
                // Split the stream at the cuts, feeding each read as the reading task does.
                let mut out = Measured::default();
                let mut buffer: Vec<u8> = Vec::new();
                let mut at = 0;
                for cut in cuts.iter().cycle() {
                    if at >= stream.len() {
                        break;
                    }
                    let end = (at + cut).min(stream.len());
                    buffer.extend_from_slice(&stream.as_bytes()[at..end]);
                    at = end;
                    let used = parse_events(&buffer, Duration::ZERO, &mut out);
                    prop_assert!(used <= buffer.len());
                    prop_assert!(used == 0 || buffer[..used].ends_with(b"\n\n"));
                    buffer.drain(..used);
                }
                prop_assert_eq!((out.content_events, out.output_tokens, out.input_tokens), whole);
                prop_assert!(out.error.is_none());
                // Garbage, and a huge line, are an error or skipped: never a panic.
                let mut noisy = Measured::default();
                let mut bytes = b"data: ".to_vec();
                bytes.extend_from_slice(&garbage);
                bytes.extend(std::iter::repeat_n(b'x', long));
                bytes.extend_from_slice(b"\n\n");
                let used = parse_events(&bytes, Duration::ZERO, &mut noisy);
                prop_assert!(used <= bytes.len());
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn fuzz_sse_events() {
        fuzz_sse(2_000);
    }

    #[test]
    #[ignore = "100,000 cases: cargo test --release -p sweep-load -- --ignored fuzz"]
    fn fuzz_sse_events_long() {
        fuzz_sse(100_000);
    }
}
