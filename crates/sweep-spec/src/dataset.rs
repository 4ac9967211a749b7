//! Datasets (`workload.dataset`), parsed from their text in one of aiperf's input-file formats,
//! so that users' files work as they are:
//! - `single_turn`: one request per line — `text` (or `texts`), or OpenAI `messages` — with
//!   optional `image`/`images`, `output_length` and `extra` (fields shallow-merged into the
//!   request's body: per-request sampling parameters);
//! - `multi_turn`: one session per line, `{session_id, turns: [...]}`, each turn shaped like a
//!   single-turn line plus an optional `delay` (ms) or `timestamp` (ms) before it. A first turn
//!   of `role: system` with text only is the session's system prompt, as aiperf reads it: sent as
//!   a system message before every turn's messages, and not a turn of its own;
//! - `mooncake_trace`: one request per line, `input_length` (with `hash_ids`), `text_input`, or
//!   OpenAI `messages` (with `tools`, sent beside them);
//!   lines with the same `session_id` are the turns of one session, in file order.
//!
//! Pure: the callers read the files (`sweep submit` on the login node, to refuse a bad file
//! before anything is submitted; the benchmark step on the compute node, which uses it), so
//! both judge a dataset by the same rules.

use std::collections::HashMap;

use serde::Deserialize;

pub use crate::model::DatasetFormat;

/// A parsed dataset: sessions of one or more turns (a single-turn dataset is sessions of one).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub sessions: Vec<Session>,
}

impl Dataset {
    /// Whether any session has more than one turn (its turns then run in order, with history).
    pub fn multi_turn(&self) -> bool {
        self.sessions.iter().any(|s| s.turns.len() > 1)
    }

    pub fn turns(&self) -> usize {
        self.sessions.iter().map(|s| s.turns.len()).sum()
    }

    /// Every image a turn names, with the turn's line.
    pub fn images(&self) -> impl Iterator<Item = (usize, &str)> {
        self.sessions
            .iter()
            .flat_map(|s| &s.turns)
            .flat_map(|t| t.images.iter().map(|i| (t.line, i.as_str())))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// As written (`session_id`), when given.
    pub id: Option<String>,
    /// A leading `role: system` turn's text: the system message of every turn.
    pub system: Option<String>,
    pub turns: Vec<Turn>,
}

/// One request of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The 1-based line it was read from.
    pub line: usize,
    pub content: Content,
    /// Images as written: a path (relative ones are read from the dataset's folder), an
    /// `http(s)://` URL or a `data:` URL.
    pub images: Vec<String>,
    /// Tokens to generate; the point's OSL when unset.
    pub output_length: Option<u32>,
    /// How long to wait before sending it, in ms after the previous turn's answer (0 for a
    /// session's first turn).
    pub delay_ms: f64,
    /// Fields merged into its request's body, over the spec's `workload.extra_body`.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Sent as the user message (chat) or the prompt (completions).
    Text(String),
    /// OpenAI chat messages, sent as they are (their contents joined by new lines for the
    /// completions endpoint).
    Messages(serde_json::Value),
    /// A mooncake line's length and block ids: a seeded prompt of that many tokens, whose
    /// blocks with equal ids are equal text. It is the whole prompt: a session adds no history.
    Synthetic { input_length: u32, hash_ids: Vec<u64> },
}

impl Content {
    /// The words of the prompt: the token count the load generator assumes without a
    /// tokenizer (the server's own count is used when it reports one).
    pub fn words(&self) -> u64 {
        match self {
            Content::Text(text) => text.split_whitespace().count() as u64,
            Content::Messages(messages) => messages_text(messages).split_whitespace().count() as u64,
            Content::Synthetic { input_length, .. } => u64::from(*input_length),
        }
    }
}

/// Every text content of `messages`, one per line.
pub fn messages_text(messages: &serde_json::Value) -> String {
    messages.as_array().map_or_else(String::new, |list| list_text(list))
}

/// [`messages_text`] of a list of messages.
pub fn list_text(messages: &[serde_json::Value]) -> String {
    let mut out = Vec::new();
    for message in messages {
        match &message["content"] {
            serde_json::Value::String(text) => out.push(text.clone()),
            serde_json::Value::Array(parts) => {
                out.extend(parts.iter().filter_map(|p| p["text"].as_str().map(str::to_owned)));
            }
            _ => {}
        }
    }
    out.join("\n")
}

/// Why a dataset cannot be used, with the 1-based line it is about (0: the whole file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DatasetError {
    pub line: usize,
    pub message: String,
}

/// A single-turn line, a multi-turn turn, or a mooncake line: the union of their keys, sorted
/// out by [`turn`]. `type` changes nothing here; `role` only marks a session's system prompt.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTurn {
    text: Option<String>,
    texts: Option<Vec<serde_json::Value>>,
    messages: Option<serde_json::Value>,
    image: Option<String>,
    images: Option<Vec<serde_json::Value>>,
    audio: Option<serde_json::Value>,
    audios: Option<serde_json::Value>,
    video: Option<serde_json::Value>,
    videos: Option<serde_json::Value>,
    output_length: Option<u32>,
    delay: Option<f64>,
    timestamp: Option<f64>,
    // mooncake_trace
    input_length: Option<u32>,
    text_input: Option<String>,
    hash_ids: Option<Vec<u64>>,
    session_id: Option<serde_json::Value>,
    extra: Option<serde_json::Value>,
    tools: Option<serde_json::Value>,
    #[serde(rename = "type")]
    _kind: Option<serde_json::Value>,
    role: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    session_id: Option<serde_json::Value>,
    turns: Vec<serde_json::Value>,
    #[serde(rename = "type")]
    _kind: Option<serde_json::Value>,
}

/// `what`'s JSON error without serde's "at line 1" (the position is within one line).
fn json_error(what: &str, e: &serde_json::Error) -> String {
    let text = e.to_string();
    let core = text.split(" at line ").next().unwrap_or(&text);
    format!("{what}: {core} (column {})", e.column())
}

/// aiperf's `texts`/`images` take strings or `{name, contents: [..]}` objects.
fn strings(key: &str, list: &[serde_json::Value]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in list {
        match item {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Object(o) => match o.get("contents").and_then(|c| c.as_array()) {
                Some(contents) => {
                    for c in contents {
                        out.push(
                            c.as_str().ok_or_else(|| format!("`{key}` contents must be strings"))?.into(),
                        );
                    }
                }
                None => return Err(format!("a `{key}` object needs `contents`, a list of strings")),
            },
            _ => return Err(format!("`{key}` must list strings or {{name, contents}} objects")),
        }
    }
    Ok(out)
}

fn session_id(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// One turn from its raw keys; `timestamp` is left to the caller (its meaning is the format's).
fn turn(raw: RawTurn, format: DatasetFormat, line: usize) -> Result<(Turn, Option<f64>), String> {
    for (key, given) in [
        ("audio", raw.audio.is_some() || raw.audios.is_some()),
        ("video", raw.video.is_some() || raw.videos.is_some()),
    ] {
        if given {
            return Err(format!("`{key}` inputs are not supported; give text and images"));
        }
    }
    if raw.output_length == Some(0) {
        return Err("`output_length` must be at least 1".into());
    }
    if raw.delay.is_some() && raw.timestamp.is_some() {
        return Err("give `delay` or `timestamp`, not both".into());
    }
    for (key, value) in [("delay", raw.delay), ("timestamp", raw.timestamp)] {
        if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(format!("`{key}` must be a number of milliseconds ≥ 0"));
        }
    }
    let mooncake = format == DatasetFormat::MooncakeTrace;
    let content = if mooncake {
        for (key, given) in [
            ("text", raw.text.is_some()),
            ("texts", raw.texts.is_some()),
            ("image", raw.image.is_some() || raw.images.is_some()),
        ] {
            if given {
                return Err(format!(
                    "`{key}` is not a mooncake_trace key; give `input_length`, `text_input` or `messages`"
                ));
            }
        }
        match (raw.input_length, raw.text_input, raw.messages, raw.hash_ids) {
            (Some(0), _, _, _) => return Err("`input_length` must be at least 1".into()),
            (Some(input_length), None, None, hash_ids) => {
                Content::Synthetic { input_length, hash_ids: hash_ids.unwrap_or_default() }
            }
            (None, Some(text), None, None) => Content::Text(text),
            (None, None, Some(messages), None) => Content::Messages(chat_messages(messages)?),
            (None, _, _, Some(_)) => {
                return Err("`hash_ids` go with `input_length`, not `text_input` or `messages`".into())
            }
            (None, None, None, _) => {
                return Err("no prompt: give `input_length`, `text_input` or `messages`".into())
            }
            _ => return Err("give one of `input_length`, `text_input` and `messages`".into()),
        }
    } else {
        for (key, given) in [
            ("input_length", raw.input_length.is_some()),
            ("text_input", raw.text_input.is_some()),
            ("hash_ids", raw.hash_ids.is_some()),
            ("tools", raw.tools.is_some()),
        ] {
            if given {
                return Err(format!(
                    "`{key}` belongs to the mooncake_trace format; set `format: mooncake_trace`"
                ));
            }
        }
        if format == DatasetFormat::MultiTurn && raw.session_id.is_some() {
            return Err("`session_id` belongs to the session, not to one of its turns".into());
        }
        let texts = raw.texts.as_deref().map(|t| strings("texts", t)).transpose()?;
        match (raw.text, texts, raw.messages) {
            (Some(text), None, None) => Content::Text(text),
            (None, Some(texts), None) if !texts.is_empty() => Content::Text(texts.join("\n")),
            (None, None, Some(messages)) => Content::Messages(chat_messages(messages)?),
            (None, None, None) | (None, Some(_), None) => {
                return Err("no prompt: give `text`, `texts` or `messages`".into())
            }
            _ => return Err("give one of `text`, `texts` and `messages`".into()),
        }
    };
    let mut images: Vec<String> = raw.image.into_iter().collect();
    if let Some(list) = &raw.images {
        if !images.is_empty() {
            return Err("give `image` or `images`, not both".into());
        }
        images = strings("images", list)?;
    }
    if images.iter().any(|i| i.trim().is_empty()) {
        return Err("an empty image".into());
    }
    if !images.is_empty() && matches!(content, Content::Messages(_)) {
        return Err("images go inside `messages` as image_url parts, or with `text`".into());
    }
    let mut extra = match raw.extra {
        None => None,
        Some(serde_json::Value::Object(map)) => Some(map),
        Some(_) => {
            return Err("`extra` must be an object of request-body fields, e.g. {\"temperature\": 0.7}".into())
        }
    };
    // aiperf's mooncake `tools`: OpenAI tool definitions, sent with the messages they go with.
    if let Some(tools) = raw.tools {
        if !matches!(content, Content::Messages(_)) {
            return Err("`tools` go with `messages`".into());
        }
        if tools.as_array().is_none_or(|list| list.is_empty()) {
            return Err("`tools` must be a non-empty list of tool definitions".into());
        }
        extra.get_or_insert_with(Default::default).insert("tools".to_owned(), tools);
    }
    let turn = Turn {
        line,
        content,
        images,
        output_length: raw.output_length,
        delay_ms: raw.delay.unwrap_or(0.0),
        extra,
    };
    Ok((turn, raw.timestamp))
}

/// OpenAI chat `messages`, checked: a non-empty list of `{role, content}` objects.
fn chat_messages(messages: serde_json::Value) -> Result<serde_json::Value, String> {
    let valid = messages.as_array().is_some_and(|list| {
        !list.is_empty() && list.iter().all(|m| m["role"].is_string() && !m["content"].is_null())
    });
    if valid {
        Ok(messages)
    } else {
        Err("`messages` must be a list of {role, content} objects".into())
    }
}

/// A session's leading `role: system` turn: its text, which must be all it has.
fn system_prompt(raw: RawTurn) -> Result<String, String> {
    let other = raw.texts.is_some()
        || raw.messages.is_some()
        || raw.tools.is_some()
        || raw.image.is_some()
        || raw.images.is_some()
        || raw.output_length.is_some()
        || raw.extra.is_some();
    match raw.text {
        Some(text) if !other => Ok(text),
        _ => Err("a `role: system` turn is the session's system prompt: give it `text` only".into()),
    }
}

/// Parses a dataset in `format`. Blank lines are skipped; a dataset without any request is an
/// error. A session's turns must be in order: timestamps never go back.
pub fn parse(text: &str, format: DatasetFormat) -> Result<Dataset, DatasetError> {
    let mut sessions: Vec<Session> = Vec::new();
    // mooncake: a session id → its index in `sessions` and its last timestamp.
    let mut open: HashMap<String, (usize, Option<f64>, usize)> = HashMap::new();
    // multi_turn: a session id → the line it was on.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let number = n + 1;
        let at = |message: String| DatasetError { line: number, message };
        if line.trim().is_empty() {
            continue;
        }
        match format {
            DatasetFormat::SingleTurn | DatasetFormat::MooncakeTrace => {
                let raw: RawTurn =
                    serde_json::from_str(line).map_err(|e| at(json_error("not a JSON object", &e)))?;
                let id = session_id(raw.session_id.as_ref());
                if format == DatasetFormat::SingleTurn && id.is_some() {
                    return Err(at(
                        "`session_id` makes this a multi-turn dataset; set `format: multi_turn`".into()
                    ));
                }
                let (mut turn, timestamp) = turn(raw, format, number).map_err(at)?;
                let Some(id) = id else {
                    sessions.push(Session { id: None, system: None, turns: vec![turn] });
                    continue;
                };
                match open.get_mut(&id) {
                    None => {
                        turn.delay_ms = 0.0;
                        open.insert(id.clone(), (sessions.len(), timestamp, number));
                        sessions.push(Session { id: Some(id), system: None, turns: vec![turn] });
                    }
                    Some((index, last, last_line)) => {
                        if let (Some(t), Some(previous)) = (timestamp, *last) {
                            if t < previous {
                                return Err(at(format!(
                                    "session `{id}` is out of order: this turn's timestamp {t} ms is before \
                                     {previous} ms on line {last_line}; a session's turns run in order"
                                )));
                            }
                            if turn.delay_ms == 0.0 {
                                turn.delay_ms = t - previous;
                            }
                        }
                        *last = timestamp.or(*last);
                        *last_line = number;
                        sessions[*index].turns.push(turn);
                    }
                }
            }
            DatasetFormat::MultiTurn => {
                let raw: RawSession = serde_json::from_str(line)
                    .map_err(|e| at(json_error("not a session ({session_id, turns: [...]})", &e)))?;
                let id = session_id(raw.session_id.as_ref());
                if let Some(id) = &id {
                    if let Some(first) = seen.insert(id.clone(), number) {
                        return Err(at(format!(
                            "session `{id}` is already on line {first}; give each session's turns on one line"
                        )));
                    }
                }
                if raw.turns.is_empty() {
                    return Err(at("a session needs at least one turn".into()));
                }
                let mut turns = Vec::with_capacity(raw.turns.len());
                let mut system = None;
                // A session without a first timestamp starts at 0.
                let mut last: Option<f64> = Some(0.0);
                for (i, value) in raw.turns.into_iter().enumerate() {
                    let within = |m: String| at(format!("turn {}: {m}", i + 1));
                    let raw: RawTurn =
                        serde_json::from_value(value).map_err(|e| within(format!("not a turn: {e}")))?;
                    let is_system = raw.role.as_ref().and_then(|r| r.as_str()) == Some("system");
                    if is_system && i == 0 {
                        system = Some(system_prompt(raw).map_err(within)?);
                        continue;
                    }
                    let (mut turn, timestamp) = turn(raw, format, number).map_err(within)?;
                    if let (Some(t), Some(previous)) = (timestamp, last) {
                        if t < previous {
                            return Err(within(format!(
                                "out of order: its timestamp {t} ms is before the previous turn's {previous} ms; \
                                 a session's turns run in order"
                            )));
                        }
                        turn.delay_ms = t - previous;
                    }
                    if turns.is_empty() {
                        turn.delay_ms = 0.0;
                    }
                    last = timestamp.or(last);
                    turns.push(turn);
                }
                if turns.is_empty() {
                    return Err(at("a session needs a turn after its system prompt".into()));
                }
                sessions.push(Session { id, system, turns });
            }
        }
    }
    if sessions.is_empty() {
        return Err(DatasetError { line: 0, message: "the dataset has no entry".into() });
    }
    Ok(Dataset { sessions })
}

/// Whether an image reference is sent as it is (a URL) rather than read from a file.
pub fn is_url(image: &str) -> bool {
    image.starts_with("http://") || image.starts_with("https://") || image.starts_with("data:")
}

/// Where an image path is read from: relative paths are taken from the dataset's folder.
pub fn image_path(dataset: &str, image: &str) -> std::path::PathBuf {
    let image = std::path::Path::new(image);
    match std::path::Path::new(dataset).parent() {
        Some(folder) if image.is_relative() => folder.join(image),
        _ => image.to_path_buf(),
    }
}

/// The media type of an image file, from its name; `None` for a type servers do not take.
pub fn image_mime(path: &str) -> Option<&'static str> {
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => return None,
    })
}

/// Checks the spec's `workload.dataset` (unless `check: false`) with `read` (the file system,
/// for the CLI): a missing file, a bad line, sessions the spec cannot run or an image that
/// cannot be read is a spec error pointing at the key and naming the dataset's line, before
/// anything is written or submitted.
pub fn check(
    spec: &crate::Spec,
    read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<(), crate::SpecError> {
    let Some(dataset) = spec.workload.load.dataset.as_ref().filter(|d| d.check) else { return Ok(()) };
    let at = crate::KeyPath::keys("workload.dataset.path");
    let compute_only =
        "a relative path is read from where `sweep` runs; if the file is only on the compute nodes, \
                        set `workload.dataset.check: false`";
    let bytes = read(&dataset.path).map_err(|e| {
        crate::SpecError::invalid(at.clone(), format!("cannot read the dataset {}: {e}", dataset.path))
            .with_help(compute_only)
    })?;
    let bad = |message: String| {
        crate::SpecError::invalid(
            at.clone(),
            format!("the dataset {} does not parse: {message}", dataset.path),
        )
    };
    let text = std::str::from_utf8(&bytes).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    let parsed =
        parse(text, dataset.format).map_err(|e| bad(e.to_string()).with_help(dataset.format.help()))?;
    if parsed.multi_turn() && spec.workload.load.arrival != crate::ArrivalKind::Closed {
        return Err(crate::SpecError::rule(
            crate::KeyPath::keys("workload.dataset"),
            format!("the dataset {} has multi-turn sessions, which run in a closed loop", dataset.path),
        )
        .with_help("sweep `workload.concurrency` (the sessions in flight) instead of a request rate"));
    }
    for (line, image) in parsed.images().filter(|(_, i)| !is_url(i)) {
        let path = image_path(&dataset.path, image);
        let bad_image = |message: String| {
            crate::SpecError::invalid(
                at.clone(),
                format!("the dataset {}, line {line}: image `{image}` {message}", dataset.path),
            )
        };
        if image_mime(image).is_none() {
            return Err(bad_image("is not a .png, .jpg, .gif or .webp file".into()));
        }
        read(&path.display().to_string()).map_err(|e| {
            bad_image(format!("cannot be read ({}: {e})", path.display()))
                .with_help("a relative image path is read from the dataset's folder")
        })?;
    }
    Ok(())
}

impl DatasetFormat {
    /// What each line of the format holds, for errors.
    pub fn help(self) -> &'static str {
        match self {
            DatasetFormat::SingleTurn => {
                "each line is a JSON object with `text` (or `texts`) or `messages`, and optionally `image`/`images` and `output_length`"
            }
            DatasetFormat::MultiTurn => {
                "each line is a session, {\"session_id\": ..., \"turns\": [...]}, each turn with `text` or `messages`, and optionally `delay` or `timestamp` (ms), images and `output_length`"
            }
            DatasetFormat::MooncakeTrace => {
                "each line is a JSON object with `input_length` (and `hash_ids`) or `text_input`, and optionally `output_length`, `timestamp`, `delay` and `session_id`"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(text: &str) -> Result<Dataset, DatasetError> {
        parse(text, DatasetFormat::SingleTurn)
    }

    #[test]
    fn reads_text_and_messages_with_their_lengths() {
        let text = concat!(
            "{\"text\": \"What is machine learning?\"}\n",
            "\n",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi there\"}], \"output_length\": 7}\n",
            "{\"type\": \"single_turn\", \"texts\": [\"a b\", {\"name\": \"q\", \"contents\": [\"c\"]}], \"image\": \"cat.png\"}\n",
        );
        let dataset = single(text).expect("parses");
        assert_eq!(dataset.sessions.len(), 3);
        assert!(!dataset.multi_turn());
        let turns: Vec<&Turn> = dataset.sessions.iter().map(|s| &s.turns[0]).collect();
        assert_eq!(turns[0].content, Content::Text("What is machine learning?".into()));
        assert_eq!((turns[0].line, turns[0].output_length), (1, None));
        assert_eq!((turns[1].line, turns[1].output_length), (3, Some(7)));
        assert_eq!(turns[1].content.words(), 4);
        assert_eq!(turns[2].content, Content::Text("a b\nc".into()));
        assert_eq!(turns[2].images, ["cat.png"]);
        assert_eq!(dataset.images().collect::<Vec<_>>(), [(4, "cat.png")]);
    }

    #[test]
    fn a_bad_line_is_named() {
        let cases = [
            ("{\"text\": \"a\"}\n{\"text\": \"b\"\n", 2, "not a JSON object"),
            ("{\"text\": \"a\", \"messages\": []}\n", 1, "one of"),
            ("{\"prompt\": \"a\"}\n", 1, "unknown field `prompt`"),
            ("{\"image\": \"a.png\"}\n", 1, "no prompt"),
            ("{\"text\": \"a\"}\n{\"messages\": [{\"content\": \"x\"}]}\n", 2, "{role, content}"),
            ("{\"text\": \"a\", \"output_length\": 0}\n", 1, "at least 1"),
            ("{\"text\": \"a\", \"audio\": \"x.wav\"}\n", 1, "not supported"),
            ("{\"text\": \"a\", \"session_id\": \"s\"}\n", 1, "format: multi_turn"),
            ("{\"input_length\": 5}\n", 1, "format: mooncake_trace"),
            ("{\"text\": \"a\", \"delay\": 1, \"timestamp\": 2}\n", 1, "not both"),
        ];
        for (text, line, message) in cases {
            let error = single(text).expect_err(text);
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
        assert!(single("\n\n").expect_err("empty").message.contains("no entry"));
    }

    #[test]
    fn multi_turn_sessions_keep_their_turns_in_order_with_delays() {
        let text = concat!(
            "{\"session_id\": \"a\", \"turns\": [{\"text\": \"hi\"}, {\"text\": \"more\", \"delay\": 250}]}\n",
            "{\"session_id\": \"b\", \"turns\": [{\"text\": \"x\", \"timestamp\": 1000}, {\"text\": \"y\", \"timestamp\": 1600, \"output_length\": 3}]}\n",
        );
        let dataset = parse(text, DatasetFormat::MultiTurn).expect("parses");
        assert!(dataset.multi_turn());
        assert_eq!(dataset.turns(), 4);
        let b = &dataset.sessions[1];
        assert_eq!(b.id.as_deref(), Some("b"));
        assert_eq!(dataset.sessions[0].turns[1].delay_ms, 250.0);
        // Timestamps become the gaps between turns; the first turn starts with its session.
        assert_eq!((b.turns[0].delay_ms, b.turns[1].delay_ms), (0.0, 600.0));
        assert_eq!(b.turns[1].output_length, Some(3));
    }

    /// aiperf 0.13's `extra` (per line, per turn) and a session's leading system turn, which
    /// aiperf lifts into a system message and does not count as a turn.
    #[test]
    fn extra_fields_and_a_leading_system_turn_are_read_as_aiperf_reads_them() {
        let line = single("{\"text\": \"hi\", \"extra\": {\"temperature\": 0.2, \"top_p\": 0.9}}\n")
            .expect("parses");
        let extra = line.sessions[0].turns[0].extra.as_ref().expect("extra");
        assert_eq!(
            serde_json::Value::Object(extra.clone()),
            serde_json::json!({"temperature": 0.2, "top_p": 0.9})
        );
        let text = concat!(
            "{\"session_id\": \"s\", \"turns\": [{\"role\": \"system\", \"text\": \"Be terse.\"}, ",
            "{\"text\": \"one\", \"timestamp\": 100}, {\"text\": \"two\", \"extra\": {\"seed\": 7}, \"timestamp\": 300}]}\n",
        );
        let dataset = parse(text, DatasetFormat::MultiTurn).expect("parses");
        let session = &dataset.sessions[0];
        assert_eq!(session.system.as_deref(), Some("Be terse."));
        assert_eq!(dataset.turns(), 2, "the system prompt is not a turn");
        assert_eq!(session.turns[0].content, Content::Text("one".into()));
        assert_eq!((session.turns[0].delay_ms, session.turns[1].delay_ms), (0.0, 200.0));
        assert_eq!(session.turns[1].extra.as_ref().and_then(|e| e.get("seed")), Some(&serde_json::json!(7)));
        for (text, message) in [
            ("{\"text\": \"a\", \"extra\": [1]}\n", "`extra` must be an object"),
            ("{\"turns\": [{\"role\": \"system\", \"text\": \"s\", \"image\": \"a.png\"}, {\"text\": \"a\"}]}\n", "`text` only"),
            ("{\"turns\": [{\"role\": \"system\", \"text\": \"s\"}]}\n", "a turn after its system prompt"),
        ] {
            let format = if text.contains("turns") { DatasetFormat::MultiTurn } else { DatasetFormat::SingleTurn };
            let error = parse(text, format).expect_err(text);
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn sessions_out_of_order_or_split_are_refused_with_their_line() {
        let cases = [
            (
                "{\"session_id\": \"a\", \"turns\": [{\"text\": \"x\", \"timestamp\": 900}, {\"text\": \"y\", \"timestamp\": 100}]}\n",
                1,
                "turn 2: out of order",
            ),
            (
                "{\"session_id\": \"a\", \"turns\": [{\"text\": \"x\"}]}\n{\"session_id\": \"a\", \"turns\": [{\"text\": \"y\"}]}\n",
                2,
                "already on line 1",
            ),
            ("{\"session_id\": \"a\", \"turns\": []}\n", 1, "at least one turn"),
            ("{\"text\": \"a\"}\n", 1, "not a session"),
            ("{\"turns\": [{\"text\": \"x\", \"session_id\": \"s\"}]}\n", 1, "belongs to the session"),
        ];
        for (text, line, message) in cases {
            let error = parse(text, DatasetFormat::MultiTurn).expect_err(text);
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn mooncake_lines_with_a_session_id_are_one_session_in_file_order() {
        let text = concat!(
            "{\"timestamp\": 0, \"input_length\": 8, \"output_length\": 2, \"hash_ids\": [1], \"session_id\": \"s\"}\n",
            "{\"timestamp\": 10, \"text_input\": \"alone\"}\n",
            "{\"timestamp\": 500, \"input_length\": 12, \"output_length\": 2, \"hash_ids\": [1, 2], \"session_id\": \"s\"}\n",
        );
        let dataset = parse(text, DatasetFormat::MooncakeTrace).expect("parses");
        assert_eq!(dataset.sessions.len(), 2);
        let s = &dataset.sessions[0];
        assert_eq!(s.turns.len(), 2);
        assert_eq!(s.turns[1].content, Content::Synthetic { input_length: 12, hash_ids: vec![1, 2] });
        assert_eq!(s.turns[1].delay_ms, 500.0);
        assert_eq!(dataset.sessions[1].turns[0].content, Content::Text("alone".into()));
        let back = "{\"timestamp\": 9, \"input_length\": 1, \"session_id\": 7}\n{\"timestamp\": 3, \"input_length\": 1, \"session_id\": 7}\n";
        let error = parse(back, DatasetFormat::MooncakeTrace).expect_err("out of order");
        assert_eq!(error.line, 2);
        assert!(error.message.contains("session `7` is out of order"), "{error}");
        for (text, message) in [
            ("{\"input_length\": 4, \"text_input\": \"a\"}\n", "give one of"),
            ("{\"text_input\": \"a\", \"hash_ids\": [1]}\n", "go with `input_length`"),
            (
                "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"hash_ids\": [1]}\n",
                "go with `input_length`",
            ),
            (
                "{\"text_input\": \"a\", \"tools\": [{\"type\": \"function\"}]}\n",
                "`tools` go with `messages`",
            ),
            ("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"tools\": []}\n", "non-empty list"),
            ("{\"text\": \"a\"}\n", "not a mooncake_trace key"),
        ] {
            let error = parse(text, DatasetFormat::MooncakeTrace).expect_err(text);
            assert!(error.message.contains(message), "{text}: {error}");
        }
    }

    /// aiperf's pre-formatted mooncake lines: OpenAI `messages`, with `tools` sent beside them.
    #[test]
    fn mooncake_lines_of_messages_carry_their_tools() {
        let line = "{\"timestamp\": 5, \"messages\": [{\"role\": \"user\", \"content\": \"hi there\"}], \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}], \"output_length\": 3}\n";
        let dataset = parse(line, DatasetFormat::MooncakeTrace).expect("parses");
        let turn = &dataset.sessions[0].turns[0];
        assert!(matches!(&turn.content, Content::Messages(m) if m[0]["content"] == "hi there"), "{turn:?}");
        assert_eq!(turn.output_length, Some(3));
        let tools = turn.extra.as_ref().and_then(|e| e.get("tools")).expect("tools in the body");
        assert_eq!(tools[0]["function"]["name"], "f");
        let error = single("{\"text\": \"a\", \"tools\": [1]}\n").expect_err("single_turn has no tools");
        assert!(error.message.contains("format: mooncake_trace"), "{error}");
    }

    #[test]
    fn image_paths_are_read_from_the_datasets_folder() {
        assert_eq!(image_path("/data/set.jsonl", "cat.png"), std::path::Path::new("/data/cat.png"));
        assert_eq!(image_path("/data/set.jsonl", "/abs/cat.png"), std::path::Path::new("/abs/cat.png"));
        assert_eq!(image_path("set.jsonl", "cat.png"), std::path::Path::new("cat.png"));
        assert!(is_url("https://x/cat.png") && is_url("data:image/png;base64,AAAA") && !is_url("cat.png"));
        assert_eq!(image_mime("a.JPG"), Some("image/jpeg"));
        assert_eq!(image_mime("a.bmp"), None);
    }
}

#[cfg(test)]
mod check_tests {
    const SPEC: &str = "name: t\nmodel: {path: /m}\nengine: {kind: mock}\ncluster: {gpus_per_node: 4}\nmode: agg\nagg: {tp: 1, batch: 8}\nworkload:\n  isl: 8\n  osl: 8\n  concurrency: 1\n  dataset:\n    path: /data/set.jsonl\n";

    #[test]
    fn a_missing_dataset_points_at_its_key() {
        let document = crate::load(SPEC).expect("loads");
        let error =
            crate::check_inputs(&document, |_| Err(std::io::Error::other("gone"))).expect_err("missing");
        let location = error.location.expect("located");
        assert_eq!(location.line, 12, "{error}");
    }

    #[test]
    fn an_unreadable_image_names_the_datasets_line_and_the_path_tried() {
        let document = crate::load(SPEC).expect("loads");
        let read = |path: &str| match path {
            "/data/set.jsonl" => {
                Ok(b"{\"text\": \"a\", \"image\": \"ok.png\"}\n{\"text\": \"b\", \"image\": \"gone.png\"}\n"
                    .to_vec())
            }
            "/data/ok.png" => Ok(vec![0x89]),
            _ => Err(std::io::Error::other("no such file")),
        };
        let error = crate::check_inputs(&document, read).expect_err("unreadable image");
        let text = error.to_string();
        assert!(
            text.contains("line 2: image `gone.png` cannot be read (/data/gone.png: no such file)"),
            "{text}"
        );
        assert_eq!(error.location.expect("located").line, 12);
    }

    #[test]
    fn multi_turn_sessions_at_a_request_rate_are_refused() {
        let spec = SPEC
            .replace("  concurrency: 1\n", "  concurrency: 1\n  request_rate: [2]\n")
            .replace("path: /data/set.jsonl\n", "path: /data/set.jsonl\n    format: mooncake_trace\n");
        let document = crate::load(&spec).expect("loads");
        let read = |_: &str| {
            Ok(b"{\"input_length\": 4, \"session_id\": 1}\n{\"input_length\": 4, \"session_id\": 1}\n"
                .to_vec())
        };
        let error = crate::check_inputs(&document, read).expect_err("sessions at a rate");
        assert!(error.to_string().contains("closed loop"), "{error}");
    }
}
