//! One request to an OpenAI-compatible server, measured.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use super::record::RequestError;

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    text: Option<String>,
    message: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    completion_tokens: u64,
}

impl Event {
    fn has_content(&self) -> bool {
        let some = |t: Option<&String>| t.is_some_and(|t| !t.is_empty());
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

/// Sends `body` to `url` and fills `out` as the answer arrives, so that a caller that stops
/// waiting (a deadline) still has everything measured so far.
pub async fn send(
    client: &reqwest::Client,
    url: reqwest::Url,
    request_id: &str,
    body: Bytes,
    stream: bool,
    timeout: Duration,
    start: Instant,
    out: &mut Measured,
) {
    let response = match client
        .post(url)
        .header("content-type", "application/json")
        .header("x-request-id", request_id)
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
        buffer.extend_from_slice(&chunk);
        if !stream {
            continue;
        }
        // Several SSE events may arrive in one read: each is counted, all at this read's time.
        let mut consumed = 0;
        let mut content_in_read = false;
        while let Some(end) = find_event_end(&buffer[consumed..]) {
            let event = &buffer[consumed..consumed + end];
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
        buffer.drain(..consumed);
        if content_in_read {
            out.content_times.push(now);
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
    buffer.windows(2).position(|w| w == b"\n\n")
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
