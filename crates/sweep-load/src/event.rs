//! What one event of an answer says — whether it carries content, its text, its usage — read by
//! a scan of its JSON that looks only at the keys that matter (OpenAI chat and completions
//! answers and chunks) and steps over everything else without decoding it. A full JSON parse
//! of each streamed token was a tenth of the load generator's CPU, most of it decoding fields
//! (`id`, `model`, …) nobody reads.
//!
//! The scan still checks the JSON's structure, so a truncated or garbled event is an error.

use std::fmt;

/// What an event says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    /// Some choice has non-empty `content`, `reasoning_content` or (completions) `text`.
    pub content: bool,
    /// `usage`: `completion_tokens` and, when given, `prompt_tokens`.
    pub usage: Option<(u64, Option<u64>)>,
}

/// Why an event is not valid JSON of the expected shape, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub what: &'static str,
    pub at: usize,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

type Result<T> = std::result::Result<T, Malformed>;

/// Reads an event; with `text`, appends its texts to it (reasoning, then answer, then
/// completion text, choice by choice).
pub fn scan(json: &[u8], mut text: Option<&mut String>) -> Result<Event> {
    let mut s = Scanner { b: json, i: 0, depth: 0 };
    let mut event = Event::default();
    if s.peek() != Some(b'{') {
        return Err(s.fail("not a JSON object"));
    }
    s.object(|s, key| match key {
        b"choices" => s.array_or_null(|s| choice(s, &mut event.content, text.as_deref_mut())),
        b"usage" => {
            let (mut completion, mut prompt) = (None, None);
            let present = s.object_or_null(|s, key| match key {
                b"completion_tokens" => s.count().map(|n| completion = n),
                b"prompt_tokens" => s.count().map(|n| prompt = n),
                _ => s.skip_value(),
            })?;
            if present {
                let completion = completion.ok_or_else(|| s.fail("usage without completion_tokens"))?;
                event.usage = Some((completion, prompt));
            }
            Ok(())
        }
        _ => s.skip_value(),
    })?;
    s.whitespace();
    if s.i < json.len() {
        return Err(s.fail("trailing characters after the JSON object"));
    }
    Ok(event)
}

/// One element of `choices`.
fn choice(s: &mut Scanner, content: &mut bool, mut text: Option<&mut String>) -> Result<()> {
    // Reasoning comes before the answer in a message, whatever the order of the keys.
    let (mut reasoning, mut answer, mut completion) = (None, None, None);
    s.object_or_null(|s, key| match key {
        b"delta" | b"message" => {
            s.object_or_null(|s, key| match key {
                b"content" => s.string_or_null().map(|t| answer = t),
                b"reasoning_content" => s.string_or_null().map(|t| reasoning = t),
                _ => s.skip_value(),
            })?;
            Ok(())
        }
        b"text" => s.string_or_null().map(|t| completion = t),
        _ => s.skip_value(),
    })?;
    for part in [reasoning, answer, completion].into_iter().flatten() {
        *content |= !part.raw.is_empty();
        if let Some(text) = text.as_deref_mut() {
            part.decode_into(s.b, text)?;
        }
    }
    Ok(())
}

/// A string's place in the input: its bytes between the quotes, and whether it has escapes.
#[derive(Debug, Clone, Copy)]
struct Str<'a> {
    raw: &'a [u8],
    /// Offset of the opening quote.
    at: usize,
    escaped: bool,
}

impl Str<'_> {
    fn decode_into(&self, json: &[u8], out: &mut String) -> Result<()> {
        let malformed = || Malformed { what: "a string that is not valid UTF-8 JSON text", at: self.at };
        if self.escaped {
            let quoted = &json[self.at..self.at + self.raw.len() + 2];
            let decoded: String = serde_json::from_slice(quoted).map_err(|_| malformed())?;
            out.push_str(&decoded);
        } else {
            out.push_str(std::str::from_utf8(self.raw).map_err(|_| malformed())?);
        }
        Ok(())
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

impl<'a> Scanner<'a> {
    /// Deeper nesting than any answer has is refused rather than recursed into.
    const MAX_DEPTH: u32 = 128;

    fn fail(&self, what: &'static str) -> Malformed {
        Malformed { what, at: self.i }
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.whitespace();
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<()> {
        match self.peek() {
            Some(b) if b == byte => {
                self.i += 1;
                Ok(())
            }
            Some(_) => Err(self.fail(what)),
            None => Err(self.fail("the event ends early")),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(self.fail("an unknown literal"))
        }
    }

    /// Consumes `null` if it comes next.
    fn null(&mut self) -> Result<bool> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn string(&mut self) -> Result<Str<'a>> {
        self.expect(b'"', "expected a string")?;
        let (at, from) = (self.i - 1, self.i);
        let mut escaped = false;
        loop {
            let Some(k) = memchr::memchr2(b'"', b'\\', &self.b[self.i..]) else {
                self.i = self.b.len();
                return Err(self.fail("an unterminated string"));
            };
            self.i += k;
            if self.b[self.i] == b'"' {
                self.i += 1;
                return Ok(Str { raw: &self.b[from..self.i - 1], at, escaped });
            }
            // A backslash escapes the byte after it (a `\uXXXX`'s digits need no care).
            escaped = true;
            self.i += 2;
            if self.i > self.b.len() {
                return Err(self.fail("an unterminated string"));
            }
        }
    }

    fn string_or_null(&mut self) -> Result<Option<Str<'a>>> {
        if self.null()? {
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// A number, stepped over; its text.
    fn number(&mut self) -> Result<&'a [u8]> {
        let from = self.i;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
        }
        let text = &self.b[from..self.i];
        if !text.iter().any(u8::is_ascii_digit) {
            return Err(self.fail("expected a value"));
        }
        Ok(text)
    }

    /// A token count: a whole number, or `null`.
    fn count(&mut self) -> Result<Option<u64>> {
        if self.null()? {
            return Ok(None);
        }
        let at = self.i;
        let text = self.number()?;
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse().ok())
            .map(Some)
            .ok_or(Malformed { what: "a token count that is not a whole number", at })
    }

    /// Calls `value` with each key, which must consume the key's value.
    fn object(&mut self, mut value: impl FnMut(&mut Self, &'a [u8]) -> Result<()>) -> Result<()> {
        self.expect(b'{', "expected an object")?;
        self.nest()?;
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key = self.string()?.raw;
                self.expect(b':', "expected `:` after a key")?;
                self.whitespace();
                value(self, key)?;
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.fail("expected `,` or `}` in an object")),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// An object, or `null`; whether it was an object.
    fn object_or_null(&mut self, value: impl FnMut(&mut Self, &'a [u8]) -> Result<()>) -> Result<bool> {
        if self.null()? {
            return Ok(false);
        }
        self.object(value).map(|()| true)
    }

    /// Calls `element` at each element of an array (or none, for `null`).
    fn array_or_null(&mut self, mut element: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        if self.null()? {
            return Ok(());
        }
        self.expect(b'[', "expected an array")?;
        self.nest()?;
        if self.peek() == Some(b']') {
            self.i += 1;
        } else {
            loop {
                self.whitespace();
                element(self)?;
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b']') => {
                        self.i += 1;
                        break;
                    }
                    _ => return Err(self.fail("expected `,` or `]` in an array")),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn nest(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > Self::MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        Ok(())
    }

    fn skip_value(&mut self) -> Result<()> {
        match self.peek() {
            Some(b'{') => self.object(|s, _| s.skip_value()),
            Some(b'[') => self.array_or_null(Self::skip_value),
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(_) => self.number().map(drop),
            None => Err(self.fail("the event ends early")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a full JSON parse says of `json`: content, texts, usage.
    fn by_serde(json: &str) -> Option<(Event, String)> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let mut event = Event::default();
        let mut text = String::new();
        for c in v.get("choices").and_then(|c| c.as_array()).into_iter().flatten() {
            let message = c.get("delta").or_else(|| c.get("message")).filter(|m| !m.is_null());
            let texts = [
                message.and_then(|m| m.get("reasoning_content")),
                message.and_then(|m| m.get("content")),
                c.get("text"),
            ];
            for t in texts.into_iter().flatten().filter_map(|t| t.as_str()) {
                event.content |= !t.is_empty();
                text.push_str(t);
            }
        }
        if let Some(usage) = v.get("usage").filter(|u| !u.is_null()) {
            let completion = usage.get("completion_tokens")?.as_u64()?;
            event.usage = Some((completion, usage.get("prompt_tokens").and_then(|p| p.as_u64())));
        }
        Some((event, text))
    }

    fn scanned(json: &str) -> Result<(Event, String)> {
        let mut text = String::new();
        scan(json.as_bytes(), Some(&mut text)).map(|e| (e, text))
    }

    #[test]
    fn the_scan_says_what_a_full_parse_says() {
        let events = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"content":" tok1"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"delta":{"content":"caf\u00e9 \"quoted\" \\ back"}}]}"#,
            r#"{"choices":[{"delta":{"content":"naïve — ünïcödé 🙂"}}]}"#,
            r#"{"choices":[{"delta":{"content":"answer","reasoning_content":"think "}}]}"#,
            r#"{"choices":[{"delta":{"reasoning_content":"only thinking","content":null}}]}"#,
            r#"{"choices":[{"text":" completion","index":0,"logprobs":{"tokens":["a"],"top":[{"a":-0.5e-3}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}"#,
            r#"{"choices":[],"usage":{"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"id":"x","function":{"arguments":"{\"a\":[1,2]}"}}]}}],"usage":null}"#,
            r#"{"choices":[{"message":{"role":"assistant","content":"whole answer"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            r#" { "choices" : [ { "delta" : { "content" : "spaced" } } , { "delta" : { "content" : "two" } } ] } "#,
            r#"{"choices":[{"delta":null}],"extra":[true,false,null,-1,2.5E+3,{"deep":[[[]]]}]}"#,
            r#"{}"#,
        ];
        for json in events {
            let expected = by_serde(json).expect("the fixture is valid");
            assert_eq!(scanned(json).expect(json), expected, "{json}");
            let without_text = scan(json.as_bytes(), None).expect(json);
            assert_eq!(without_text, expected.0, "{json}");
        }
    }

    #[test]
    fn broken_events_are_errors_that_say_where() {
        for (json, what) in [
            (r#"{"choices":[{"delta":{"content":"#, "the event ends early"),
            (r#"{"choices":[{"delta":{"x":"#, "the event ends early"),
            (r#"{"choices":[{"delta":{"content":"unterminated}}]}"#, "an unterminated string"),
            (
                r#"{"choices":[{"delta":{"content":"x"}}]} trailing"#,
                "trailing characters after the JSON object",
            ),
            (r#"{"choices":[{"delta" {"content":"x"}}]}"#, "expected `:` after a key"),
            (r#"{"logprobs":[1 2]}"#, "expected `,` or `]` in an array"),
            (r#"{"choices":[1]}"#, "expected an object"),
            (r#"{"usage":{"completion_tokens":2.5}}"#, "a token count that is not a whole number"),
            (r#"{"usage":{"prompt_tokens":2}}"#, "usage without completion_tokens"),
            (r#"{"choices":[{"delta":{"content":"x"}}],"ok":nope}"#, "an unknown literal"),
            (r#"[1]"#, "not a JSON object"),
            ("", "not a JSON object"),
        ] {
            let error = scan(json.as_bytes(), None).expect_err(json);
            assert_eq!(error.what, what, "{json}");
            assert!(error.at <= json.len(), "{json}: {error}");
        }
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(scan(deep.as_bytes(), None).expect_err("deep").what, "nested too deeply");
        // Bytes that are not UTF-8 inside a text are an error only when the text is wanted.
        let mut bad = br#"{"choices":[{"delta":{"content":"#.to_vec();
        bad.extend_from_slice(b"\"\xff\"}}]}");
        assert!(scan(&bad, None).expect("not decoded").content);
        assert!(scan(&bad, Some(&mut String::new())).is_err());
    }
}
