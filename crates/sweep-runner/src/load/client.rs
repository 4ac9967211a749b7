//! One request to an OpenAI-compatible server, measured.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

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
    pub error: Option<RequestError>,
}

fn error(code: Option<u16>, kind: &'static str, message: impl Into<String>) -> Option<RequestError> {
    Some(RequestError { code, kind, message: message.into() })
}

/// One request to send.
#[derive(Debug)]
pub struct Request<'a> {
    pub url: reqwest::Url,
    /// Sent as `X-Request-ID`.
    pub id: &'a str,
    pub body: Bytes,
    pub stream: bool,
    pub timeout: Duration,
}

/// Sends `request` and fills `out` as the answer arrives (times from `start`), so that a caller
/// that stops waiting (a deadline) still has everything measured so far.
pub async fn send(client: &reqwest::Client, request: Request<'_>, start: Instant, out: &mut Measured) {
    let Request { url, id, body, stream, timeout } = request;
    let response = match client
        .post(url)
        .header("content-type", "application/json")
        .header("x-request-id", id)
        .body(body)
        .timeout(timeout)
        .send()
        .await
    {
        Ok(response) => response,
        Err(e) => {
            out.end = Some(start.elapsed());
            out.error = if e.is_timeout() {
                error(None, "timeout", format!("no answer within {timeout:?}"))
            } else {
                error(None, "transport", format!("{e}: {}", source_chain(&e)))
            };
            return;
        }
    };
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        out.end = Some(start.elapsed());
        let message: String = text.chars().take(500).collect();
        out.error = error(Some(status.as_u16()), "http_error", message);
        return;
    }
    let mut chunks = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    while let Some(chunk) = chunks.next().await {
        // The arrival time, before anything is parsed.
        let now = start.elapsed();
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                out.end = Some(now);
                out.error = if e.is_timeout() {
                    error(None, "timeout", format!("the response did not finish within {timeout:?}"))
                } else {
                    error(None, "stream_interrupted", format!("{e}: {}", source_chain(&e)))
                };
                return;
            }
        };
        out.end = Some(now);
        if !stream {
            buffer.extend_from_slice(&chunk);
            continue;
        }
        // Usually a read holds whole events: parse them from the read itself, and keep only an
        // unfinished tail for the next one.
        if buffer.is_empty() {
            let consumed = parse_events(&chunk, now, out);
            buffer.extend_from_slice(&chunk[consumed..]);
        } else {
            buffer.extend_from_slice(&chunk);
            let consumed = parse_events(&buffer, now, out);
            buffer.drain(..consumed);
        }
    }
    if !stream {
        match serde_json::from_slice::<Event>(&buffer) {
            Ok(event) => {
                if event.has_content() {
                    out.content_events = 1;
                    out.content_times.push(out.end.unwrap_or_default());
                }
                if let Some(usage) = event.usage {
                    out.output_tokens = Some(usage.completion_tokens);
                    out.input_tokens = usage.prompt_tokens;
                }
            }
            Err(e) => out.error = error(None, "malformed_response", e.to_string()),
        }
    }
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
                if event.has_content() {
                    out.content_events += 1;
                    content_in_read = true;
                }
                if let Some(usage) = event.usage {
                    out.output_tokens = Some(usage.completion_tokens);
                    out.input_tokens = usage.prompt_tokens;
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

fn source_chain(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
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
