//! The OpenAI-compatible surface: request parsing, token accounting, and the bytes of responses.
//!
//! Token accounting (documented in `docs/mock-engine.md`): a prompt costs one token per
//! whitespace-separated word of its text (all message contents for chat), or one per token id
//! when the prompt is given as ids. Output tokens are the words " tok0", " tok1", …

use std::fmt::Write as _;

use serde::Deserialize;

/// Which endpoint a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
}

/// A request, resolved: how many tokens in, how many out, and how to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub endpoint: Endpoint,
    pub model: String,
    pub prompt_tokens: u32,
    pub output_tokens: u32,
    pub stream: bool,
    pub include_usage: bool,
    /// The output ends at `max_tokens` (finish reason `length`) rather than at an EOS (`stop`).
    pub hit_max_tokens: bool,
    /// The images of `image_url` parts, in order (their tokens are in `prompt_tokens`).
    pub images: Vec<Image>,
    /// The prompt's block names for the prefix cache (empty unless asked for).
    pub blocks: Vec<u64>,
    /// The prompt's words, for a router to hand to the worker that prefills (`None` unless
    /// asked for).
    pub words: Option<String>,
    /// What the output starts with (`--answers`): the result of the prompt's arithmetic.
    pub answer: Option<String>,
}

/// What [`parse`] keeps of the prompt's words for a prefix cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepWords {
    Nothing,
    /// The block names at this many words per block, for this server's own cache.
    Blocks(usize),
    /// The words themselves, for the worker behind a router (which has its own block size).
    Words,
}

/// An image a request carried: the decoded bytes of a `data:` URL, or a URL (never fetched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Data(Vec<u8>),
    Url(String),
}

impl Image {
    fn read(url: &str) -> Result<Image, ApiError> {
        let Some(rest) = url.strip_prefix("data:") else { return Ok(Image::Url(url.to_owned())) };
        let bad = || {
            ApiError::invalid("an image `data:` URL must be `data:<type>;base64,<data>`", Some("messages"))
        };
        let (_, data) = rest.split_once(";base64,").ok_or_else(bad)?;
        decode_base64(data).map(Image::Data).ok_or_else(bad)
    }
}

/// Standard base64 (padding optional); `None` when `text` is not base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut held) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(v);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

/// An error answered with an OpenAI-shaped body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub param: Option<&'static str>,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self { status: 400, kind: "invalid_request_error", code: None, param, message: message.into() }
    }

    pub fn server(status: u16, message: impl Into<String>) -> Self {
        let kind = if status == 503 { "service_unavailable" } else { "internal_server_error" };
        Self { status, kind, code: None, param: None, message: message.into() }
    }

    pub fn body(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
        .to_string()
    }
}

#[derive(Debug, Deserialize)]
struct RawRequest {
    model: Option<String>,
    messages: Option<Vec<Message>>,
    prompt: Option<Prompt>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    min_tokens: Option<i64>,
    ignore_eos: Option<bool>,
    nvext: Option<NvExt>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct NvExt {
    ignore_eos: Option<bool>,
    min_tokens: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[allow(dead_code)]
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    image_url: Option<ImageUrl>,
}

#[derive(Debug, Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn count(value: Option<i64>, name: &'static str) -> Result<Option<u32>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => u32::try_from(v).map(Some).map_err(|_| {
            ApiError::invalid(format!("`{name}` must be between 0 and {}", u32::MAX), Some(name))
        }),
    }
}

/// Parses a request body. `served` is the only model name accepted; `eos_after` is where the
/// simulated end-of-sequence falls when `ignore_eos` is not set.
pub fn parse(
    endpoint: Endpoint,
    body: &[u8],
    served: &str,
    eos_after: u32,
    image_tokens: u32,
    keep: KeepWords,
    answers: crate::config::Answers,
) -> Result<Parsed, ApiError> {
    let raw: RawRequest = serde_json::from_slice(body).map_err(|e| {
        let message = if e.is_syntax() || e.is_eof() {
            format!("the request body is not valid JSON: {e}")
        } else {
            format!("the request body does not match the API: {e}")
        };
        ApiError::invalid(message, None)
    })?;
    let model = raw.model.ok_or_else(|| ApiError::invalid("`model` is required", Some("model")))?;
    if model != served {
        return Err(ApiError {
            status: 404,
            kind: "invalid_request_error",
            code: Some("model_not_found"),
            param: Some("model"),
            message: format!("The model `{model}` does not exist; this server serves `{served}`."),
        });
    }
    let mut images = Vec::new();
    // The prompt's texts, in order, for the prefix cache.
    let mut texts: Vec<&str> = Vec::new();
    let prompt = raw.prompt;
    let messages = raw.messages;
    let prompt_tokens = match endpoint {
        Endpoint::Chat => {
            let messages = messages
                .as_ref()
                .ok_or_else(|| ApiError::invalid("`messages` is required", Some("messages")))?;
            if messages.is_empty() {
                return Err(ApiError::invalid("`messages` must not be empty", Some("messages")));
            }
            for message in messages {
                if let Some(Content::Parts(parts)) = &message.content {
                    for url in parts.iter().filter_map(|p| p.image_url.as_ref()) {
                        images.push(Image::read(&url.url)?);
                    }
                }
            }
            for message in messages.iter() {
                match &message.content {
                    Some(Content::Text(text)) => texts.push(text),
                    Some(Content::Parts(parts)) => {
                        texts.extend(parts.iter().filter_map(|p| p.text.as_deref()))
                    }
                    None => {}
                }
            }
            u64::from(image_tokens) * images.len() as u64 + texts.iter().map(|t| words(t)).sum::<u64>()
        }
        Endpoint::Completions => {
            match prompt.as_ref().ok_or_else(|| ApiError::invalid("`prompt` is required", Some("prompt")))? {
                Prompt::Text(text) => {
                    texts.push(text);
                    words(text)
                }
                Prompt::Texts(list) => {
                    texts.extend(list.iter().map(String::as_str));
                    list.iter().map(|t| words(t)).sum()
                }
                Prompt::Ids(ids) => ids.len() as u64,
                Prompt::IdLists(lists) => lists.iter().map(|l| l.len() as u64).sum(),
            }
        }
    };
    if prompt_tokens == 0 {
        return Err(ApiError::invalid("the prompt is empty", None));
    }
    let prompt_tokens =
        u32::try_from(prompt_tokens).map_err(|_| ApiError::invalid("the prompt is too long", None))?;
    let max_tokens = match count(raw.max_completion_tokens, "max_completion_tokens")? {
        Some(v) => Some(v),
        None => count(raw.max_tokens, "max_tokens")?,
    };
    if max_tokens == Some(0) {
        return Err(ApiError::invalid("`max_tokens` must be at least 1", Some("max_tokens")));
    }
    let nvext = raw.nvext.as_ref();
    let min_tokens = count(raw.min_tokens.or(nvext.and_then(|n| n.min_tokens)), "min_tokens")?.unwrap_or(0);
    if let Some(max) = max_tokens {
        if min_tokens > max {
            return Err(ApiError::invalid("`min_tokens` must not exceed `max_tokens`", Some("min_tokens")));
        }
    }
    let ignore_eos = raw.ignore_eos.or(nvext.and_then(|n| n.ignore_eos)).unwrap_or(false);
    let output_tokens = match (ignore_eos, max_tokens) {
        (true, Some(max)) => max,
        (true, None) => eos_after.max(min_tokens).max(1),
        (false, max) => eos_after.max(min_tokens).min(max.unwrap_or(u32::MAX)).max(1),
    };
    Ok(Parsed {
        endpoint,
        model,
        prompt_tokens,
        output_tokens,
        stream: raw.stream,
        include_usage: raw.stream_options.is_some_and(|o| o.include_usage),
        hit_max_tokens: max_tokens == Some(output_tokens),
        blocks: match keep {
            KeepWords::Blocks(block) if block > 0 => {
                crate::prefix::block_names(texts.iter().flat_map(|t| t.split_whitespace()), block)
            }
            _ => Vec::new(),
        },
        words: (keep == KeepWords::Words).then(|| texts.join("\n")),
        answer: match answers {
            crate::config::Answers::None => None,
            crate::config::Answers::Arithmetic => texts.iter().rev().find_map(|t| arithmetic(t)),
        },
        images,
    })
}

/// The result of the last `A op B` in `text` (`op` one of `+ - * ×`), as the built-in accuracy
/// questions ask it: "What is 37 + 58? Answer with the number only."
pub fn arithmetic(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let int = |w: &str| w.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<i64>().ok();
    words.windows(3).rev().find_map(|w| {
        let (a, b) = (int(w[0])?, int(w[2])?);
        let value = match w[1] {
            "+" => a.checked_add(b),
            "-" => a.checked_sub(b),
            "*" | "×" => a.checked_mul(b),
            _ => None,
        }?;
        Some(value.to_string())
    })
}

/// The text of output tokens `first..first + count`: ` tok<i>` each, except a first token that
/// is the `answer` when there is one.
pub fn token_text(answer: Option<&str>, first: u32, count: u32) -> String {
    let mut text = String::with_capacity(count as usize * 6);
    for i in first..first + count {
        match answer {
            Some(answer) if i == 0 => {
                let _ = write!(text, " {answer}");
            }
            _ => {
                let _ = write!(text, " tok{}", i % 1000);
            }
        }
    }
    text
}

/// Renders the events of one response. The model name is escaped once, here.
#[derive(Debug)]
pub struct Renderer {
    endpoint: Endpoint,
    /// `{"id":"…","object":"…","created":…,"model":"…","choices":[{"index":0,`
    head: String,
    id: String,
    created: u64,
    model_json: String,
}

impl Renderer {
    pub fn new(endpoint: Endpoint, request_number: u64, model: &str) -> Self {
        let created =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (prefix, object) = match endpoint {
            Endpoint::Chat => ("chatcmpl", "chat.completion.chunk"),
            Endpoint::Completions => ("cmpl", "text_completion"),
        };
        let id = format!("{prefix}-mock{request_number:012}");
        let model_json = serde_json::Value::from(model).to_string();
        let head = format!(
            r#"{{"id":"{id}","object":"{object}","created":{created},"model":{model_json},"choices":[{{"index":0,"#
        );
        Self { endpoint, head, id, created, model_json }
    }

    /// One SSE event carrying `text`.
    pub fn chunk(&self, text: &str, first: bool) -> String {
        let text = serde_json::Value::from(text).to_string();
        match (self.endpoint, first) {
            (Endpoint::Chat, true) => format!(
                "data: {}\"delta\":{{\"role\":\"assistant\",\"content\":{text}}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
                self.head
            ),
            (Endpoint::Chat, false) => format!(
                "data: {}\"delta\":{{\"content\":{text}}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n",
                self.head
            ),
            (Endpoint::Completions, _) => {
                format!("data: {}\"text\":{text},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n", self.head)
            }
        }
    }

    /// The last content event: an empty delta with the finish reason.
    pub fn finish(&self, reason: &str) -> String {
        match self.endpoint {
            Endpoint::Chat => format!(
                "data: {}\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{reason}\"}}]}}\n\n",
                self.head
            ),
            Endpoint::Completions => {
                format!(
                    "data: {}\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"{reason}\"}}]}}\n\n",
                    self.head
                )
            }
        }
    }

    /// The usage event (`stream_options.include_usage`): no choices, only usage.
    pub fn usage(&self, prompt_tokens: u32, completion_tokens: u32) -> String {
        let object = match self.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completions => "text_completion",
        };
        format!(
            "data: {{\"id\":\"{}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":[],\"usage\":{}}}\n\n",
            self.id,
            self.created,
            self.model_json,
            usage_json(prompt_tokens, completion_tokens)
        )
    }

    /// A whole non-streaming response.
    pub fn complete(&self, text: &str, reason: &str, prompt_tokens: u32, completion_tokens: u32) -> String {
        let text = serde_json::Value::from(text).to_string();
        let usage = usage_json(prompt_tokens, completion_tokens);
        let (object, choice) = match self.endpoint {
            Endpoint::Chat => {
                ("chat.completion", format!("\"message\":{{\"role\":\"assistant\",\"content\":{text}}}"))
            }
            Endpoint::Completions => ("text_completion", format!("\"text\":{text}")),
        };
        format!(
            "{{\"id\":\"{}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"choices\":[{{\"index\":0,{choice},\"logprobs\":null,\"finish_reason\":\"{reason}\"}}],\"usage\":{usage}}}",
            self.id, self.created, self.model_json
        )
    }
}

fn usage_json(prompt_tokens: u32, completion_tokens: u32) -> String {
    format!(
        "{{\"prompt_tokens\":{prompt_tokens},\"completion_tokens\":{completion_tokens},\"total_tokens\":{}}}",
        u64::from(prompt_tokens) + u64::from(completion_tokens)
    )
}

pub const DONE: &str = "data: [DONE]\n\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<Parsed, ApiError> {
        parse(
            Endpoint::Chat,
            body.as_bytes(),
            "tiny",
            16,
            256,
            KeepWords::Nothing,
            crate::config::Answers::None,
        )
    }

    #[test]
    fn image_parts_are_decoded_and_cost_their_tokens() {
        // "aGk=" is "hi"; "AAEC" is [0, 1, 2].
        let p = chat(r#"{"model":"tiny","messages":[{"role":"user","content":[{"type":"text","text":"two words"},{"type":"image_url","image_url":{"url":"data:image/png;base64,aGk="}},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAEC"}},{"type":"image_url","image_url":{"url":"https://x/cat.png"}}]}]}"#)
            .expect("valid");
        assert_eq!(
            p.images,
            [Image::Data(b"hi".to_vec()), Image::Data(vec![0, 1, 2]), Image::Url("https://x/cat.png".into())]
        );
        assert_eq!(p.prompt_tokens, 2 + 3 * 256);
        let bad = chat(
            r#"{"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@"}}]}]}"#,
        );
        assert_eq!(bad.expect_err("not base64").status, 400);
    }

    #[test]
    fn counts_prompt_words_and_honours_output_controls() {
        let p = chat(r#"{"model":"tiny","messages":[{"role":"user","content":"a b  c\nd"}],"max_tokens":64,"min_tokens":64,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true}}"#)
            .expect("valid");
        assert_eq!((p.prompt_tokens, p.output_tokens, p.stream, p.include_usage), (4, 64, true, true));
        let nvext = chat(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":40,"nvext":{"ignore_eos":true}}"#)
            .expect("valid");
        assert_eq!(nvext.output_tokens, 40);
        let eos = chat(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":40}"#)
            .expect("valid");
        assert_eq!(eos.output_tokens, 16, "stops at the simulated EOS");
        let short = chat(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":4}"#)
            .expect("valid");
        assert_eq!(short.output_tokens, 4);
        let min = chat(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"min_tokens":30}"#)
            .expect("valid");
        assert_eq!(min.output_tokens, 30);
        let ids = parse(
            Endpoint::Completions,
            br#"{"model":"tiny","prompt":[1,2,3]}"#,
            "tiny",
            16,
            256,
            KeepWords::Nothing,
            crate::config::Answers::None,
        )
        .expect("valid");
        assert_eq!(ids.prompt_tokens, 3);
    }

    #[test]
    fn arithmetic_answers_lead_the_output() {
        assert_eq!(arithmetic("What is 37 + 58? Answer with the number only.").as_deref(), Some("95"));
        assert_eq!(arithmetic("What is 786 - 921?").as_deref(), Some("-135"));
        assert_eq!(arithmetic("2 * 3 then 64 * 14?").as_deref(), Some("896"), "the last one");
        assert_eq!(arithmetic("no sums here"), None);
        let body =
            r#"{"model":"tiny","prompt":"What is 64 * 14? Answer with the number only.","max_tokens":4}"#;
        let parsed = parse(
            Endpoint::Completions,
            body.as_bytes(),
            "tiny",
            16,
            256,
            KeepWords::Nothing,
            crate::config::Answers::Arithmetic,
        )
        .expect("valid");
        assert_eq!(token_text(parsed.answer.as_deref(), 0, 3), " 896 tok1 tok2");
        assert_eq!(token_text(parsed.answer.as_deref(), 1, 2), " tok1 tok2", "later chunks are filler");
        assert_eq!(token_text(None, 0, 2), " tok0 tok1");
    }

    #[test]
    fn bad_requests_get_openai_errors() {
        let status = |body: &str| chat(body).expect_err(body).status;
        assert_eq!(status("{not json"), 400);
        assert_eq!(status(r#"{"messages":[{"role":"user","content":"x"}]}"#), 400);
        assert_eq!(status(r#"{"model":"other","messages":[{"role":"user","content":"x"}]}"#), 404);
        assert_eq!(status(r#"{"model":"tiny"}"#), 400);
        assert_eq!(status(r#"{"model":"tiny","messages":[]}"#), 400);
        assert_eq!(status(r#"{"model":"tiny","messages":[{"role":"user","content":""}]}"#), 400);
        assert_eq!(
            status(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#),
            400
        );
        assert_eq!(
            status(r#"{"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":0}"#),
            400
        );
        let body: serde_json::Value =
            serde_json::from_str(&chat("[]").expect_err("array").body()).expect("json");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn chunks_are_valid_json_events() {
        let r = Renderer::new(Endpoint::Chat, 7, "ti\"ny");
        for event in [r.chunk(" a", true), r.chunk(" b", false), r.finish("length"), r.usage(3, 2)] {
            let json = event.strip_prefix("data: ").and_then(|e| e.strip_suffix("\n\n")).expect("framed");
            let value: serde_json::Value = serde_json::from_str(json).expect(json);
            assert_eq!(value["model"], "ti\"ny");
        }
        let full: serde_json::Value =
            serde_json::from_str(&r.complete(" a b", "length", 3, 2)).expect("json");
        assert_eq!(full["usage"]["total_tokens"], 5);
    }
}
