//! Where the requests come from. Every workload source — synthetic prompts, a dataset's
//! requests or sessions, a trace's entries — answers one question: what is turn `t` of
//! conversation `n`, given the answers so far? A source of single requests has conversations
//! of one turn. The schedulers only ever ask that question (the open loop for turn 0 of each
//! slot, the closed loop for every turn of the conversation a worker holds), so a new source
//! touches no scheduler.
//!
//! A conversation's state is the answers it has had, held once by the worker running it; its
//! own turns stay in the source (the dataset is shared, never copied per session or request).

use std::sync::Arc;
use std::time::Duration;

use sweep_spec::dataset::Content;

use super::prompts::{self, TraceEntry};
use super::rng::Rng;
use super::tokens::TokenCounter;

/// What one request asks, before it becomes bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub prompt: Prompt,
    /// The prompt's tokens as this client counts them (tokenizer tokens with a tokenizer, else
    /// the nominal length); the server's `usage` replaces it when it reports one.
    pub prompt_tokens: u64,
    pub osl: u32,
    /// Image URLs (`data:` or `http(s)://`) sent with the last user message.
    pub images: Vec<Arc<str>>,
    /// Wait this long after the previous turn's answer before sending (think time).
    pub delay: Duration,
    /// A dataset line's own body fields (aiperf's `extra`), over the spec's `extra_body`.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// One user message (chat) or the prompt (completions).
    Text(String),
    /// Chat messages as they are, history included; their texts joined for completions.
    Messages(Vec<serde_json::Value>),
}

impl Prompt {
    /// The chat `messages`, with `images` as `image_url` parts of the last user message. Takes
    /// the prompt: a session's history goes into the body without a copy.
    pub fn into_messages(self, images: &[Arc<str>]) -> serde_json::Value {
        let mut list = match self {
            Prompt::Text(text) => vec![serde_json::json!({"role": "user", "content": text})],
            Prompt::Messages(list) => list,
        };
        if let Some(last) = list.iter_mut().rev().find(|m| m["role"] == "user").filter(|_| !images.is_empty())
        {
            let mut parts = match last["content"].take() {
                serde_json::Value::String(text) => vec![serde_json::json!({"type": "text", "text": text})],
                serde_json::Value::Array(parts) => parts,
                other => vec![other],
            };
            parts.extend(
                images
                    .iter()
                    .map(|url| serde_json::json!({"type": "image_url", "image_url": {"url": &**url}})),
            );
            last["content"] = parts.into();
        }
        list.into()
    }

    /// The prompt as one text, for the completions endpoint and for counting.
    pub fn text(&self) -> String {
        match self {
            Prompt::Text(text) => text.clone(),
            Prompt::Messages(list) => sweep_spec::dataset::list_text(list),
        }
    }
}

/// Counting and fitting prompts: with a tokenizer in its tokens, else in words.
#[derive(Debug, Clone)]
pub struct Counter {
    pub tokenizer: Option<Arc<TokenCounter>>,
    pub seed: u64,
}

impl Counter {
    /// `text` cut or padded to `isl` tokens (words without a tokenizer), and its count.
    pub fn fit(&self, text: String, isl: u32, stream: u64) -> (String, u64) {
        match &self.tokenizer {
            Some(tokenizer) => tokenizer.fit(text, isl, self.seed, stream),
            None => (fit_words(&text, isl, self.seed, stream), u64::from(isl.max(1))),
        }
    }

    /// A text's tokens with a tokenizer; else `nominal` (its length as the source knows it).
    pub fn count(&self, text: &str, nominal: u64) -> u64 {
        self.tokenizer.as_ref().map_or(nominal, |t| t.count(text))
    }
}

/// `text` cut to its first `isl` words, or padded with seeded words to `isl`: a prompt fitted
/// without a tokenizer, where a word stands for a token.
pub(crate) fn fit_words(text: &str, isl: u32, seed: u64, stream: u64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let target = isl.max(1) as usize;
    if words.len() >= target {
        return words[..target].join(" ");
    }
    let mut out = words.join(" ");
    let mut rng = Rng::for_stream(seed ^ 0x70c3, stream);
    prompts::push_words(&mut out, &mut rng, target - words.len());
    out
}

/// A source of requests. `n` numbers conversations (requests, for single-turn sources) from 0
/// in the order the schedulers start them; `answers` holds the conversation's answers so far
/// (as many as its turns already run).
pub trait Source: Send + Sync {
    /// Turn `turn` of conversation `n`; `None` once the conversation has no more turns.
    fn turn(&self, n: u64, turn: u32, answers: &[String]) -> Option<Ask>;

    /// The session's own name for conversation `n`, for the records' `conversation_id`.
    fn session_id(&self, _n: u64) -> Option<Arc<str>> {
        None
    }

    /// Whether a conversation can have more than one turn: the closed loop then keeps each
    /// answer's text for the next turn's history, and an open loop cannot run it.
    fn multi_turn(&self) -> bool {
        false
    }
}

/// Seeded synthetic prompts around the ISL and OSL, optionally starting with one of a few
/// shared prefixes, optionally with synthetic images.
#[derive(Debug, Clone)]
pub struct Synthetic {
    pub isl: u32,
    pub isl_stddev: f64,
    pub osl: u32,
    pub osl_stddev: f64,
    pub counter: Counter,
    /// The share of each prompt that is one of `count` shared prefixes.
    pub prefix: Option<SharedPrefix>,
    pub images: Option<super::images::Synthetic>,
    /// Added to `n` to pick the prompt's stream: warm-up prompts have streams of their own, so
    /// they never warm a cache for the measured ones.
    pub stream_base: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SharedPrefix {
    /// Of the ISL, in (0, 1).
    pub ratio: f64,
    /// Distinct prefixes; request `n` starts with prefix `n mod count`.
    pub count: u32,
    /// Picks the prefixes' words. Points run one after another on the same servers, so each
    /// gets a salt of its own: with the same words, a point would find its prefixes (or the
    /// start of a longer ratio's) already cached by the point before, and be credited with a
    /// saving its own requests did not make. Its warm-up requests still warm its own prefixes.
    pub salt: u64,
}

impl Source for Synthetic {
    fn turn(&self, n: u64, turn: u32, _: &[String]) -> Option<Ask> {
        if turn > 0 {
            return None;
        }
        let stream = self.stream_base | n;
        let seed = self.counter.seed;
        let mut rng = Rng::for_stream(seed ^ 0x1e57, stream);
        let isl = prompts::length(&mut rng, self.isl, self.isl_stddev);
        let osl = prompts::length(&mut rng, self.osl, self.osl_stddev);
        let text = match self.prefix {
            Some(prefix) => {
                let shared = ((f64::from(isl) * prefix.ratio).round() as u32).min(isl);
                let mut text = prompts::synthetic(
                    seed ^ 0x9e3f ^ prefix.salt,
                    n % u64::from(prefix.count.max(1)),
                    shared,
                );
                let mut rest = Rng::for_stream(seed, stream);
                prompts::push_words(&mut text, &mut rest, (isl - shared) as usize);
                text
            }
            None => prompts::synthetic(seed, stream, isl),
        };
        let (text, prompt_tokens) = match &self.counter.tokenizer {
            Some(_) => self.counter.fit(text, isl, stream),
            None => (text, u64::from(isl)),
        };
        let images = self.images.as_ref().map(|i| i.urls(seed, stream)).unwrap_or_default();
        Some(Ask {
            prompt: Prompt::Text(text),
            prompt_tokens,
            osl,
            images,
            delay: Duration::ZERO,
            extra: None,
        })
    }
}

/// A mooncake trace's entries, each a prompt whose equal `hash_ids` are equal text.
#[derive(Debug, Clone)]
pub struct Trace {
    pub entries: Arc<Vec<TraceEntry>>,
    pub block_size: u32,
    pub counter: Counter,
}

impl Source for Trace {
    fn turn(&self, n: u64, turn: u32, _: &[String]) -> Option<Ask> {
        if turn > 0 || self.entries.is_empty() {
            return None;
        }
        let entry = &self.entries[n as usize % self.entries.len()];
        let text = entry.prompt(self.counter.seed, n, self.block_size);
        let (text, prompt_tokens) = match &self.counter.tokenizer {
            Some(_) => self.counter.fit(text, entry.input_length, n),
            None => (text, u64::from(entry.input_length)),
        };
        Some(Ask {
            prompt: Prompt::Text(text),
            prompt_tokens,
            osl: entry.output_length,
            images: Vec::new(),
            delay: Duration::ZERO,
            extra: None,
        })
    }
}

/// A dataset's requests or sessions, cycled through in file order. A session's turn carries the
/// history so far: each earlier turn's user message and the answer it got.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub data: Arc<super::Dataset>,
    /// The point's ISL (prompts are fitted to it when the dataset asks) and OSL (for turns
    /// without `output_length`).
    pub isl: u32,
    pub osl: u32,
    pub counter: Counter,
}

impl Dataset {
    fn session(&self, n: u64) -> &sweep_spec::dataset::Session {
        let sessions = &self.data.parsed.sessions;
        &sessions[n as usize % sessions.len()]
    }

    /// A turn's own user message(s), with its text fitted when the dataset asks.
    fn messages(&self, n: u64, index: usize, into: &mut Vec<serde_json::Value>) {
        let turn = &self.session(n).turns[index];
        let stream = n << 16 | index as u64;
        match &turn.content {
            Content::Text(text) if self.data.fit_to_isl => {
                let (text, _) = self.counter.fit(text.clone(), self.isl, stream);
                into.push(serde_json::json!({"role": "user", "content": text}));
            }
            Content::Text(text) => into.push(serde_json::json!({"role": "user", "content": text})),
            Content::Messages(list) => into.extend(list.as_array().into_iter().flatten().cloned()),
            Content::Synthetic { .. } => {}
        }
    }
}

impl Source for Dataset {
    fn turn(&self, n: u64, turn: u32, answers: &[String]) -> Option<Ask> {
        let session = self.session(n);
        let index = turn as usize;
        let this = session.turns.get(index)?;
        let osl = this.output_length.unwrap_or(self.osl);
        let delay = if index == 0 { Duration::ZERO } else { Duration::from_secs_f64(this.delay_ms / 1000.0) };
        let images = self.data.images.get(&(n as usize % self.data.parsed.sessions.len(), index)).cloned();
        let images = images.unwrap_or_default();
        // A mooncake line is the whole prompt (its block ids carry any shared history).
        if let Content::Synthetic { input_length, hash_ids } = &this.content {
            let entry = TraceEntry {
                timestamp: 0.0,
                input_length: *input_length,
                output_length: osl,
                hash_ids: hash_ids.clone(),
            };
            let text = entry.prompt(self.counter.seed, n << 16 | index as u64, self.data.block_size);
            let prompt_tokens = self.counter.count(&text, u64::from(*input_length));
            let extra = this.extra.clone();
            return Some(Ask { prompt: Prompt::Text(text), prompt_tokens, osl, images, delay, extra });
        }
        let mut messages = Vec::new();
        // aiperf's session system prompt: before every turn's history.
        if let Some(system) = &session.system {
            messages.push(serde_json::json!({"role": "system", "content": system}));
        }
        for (earlier, answer) in answers.iter().enumerate().take(index) {
            self.messages(n, earlier, &mut messages);
            messages.push(serde_json::json!({"role": "assistant", "content": answer}));
        }
        self.messages(n, index, &mut messages);
        let prompt = match (index, &this.content, messages.len()) {
            // A lone text turn stays a text: the completions endpoint sends it as it is.
            (0, Content::Text(_), 1) => {
                Prompt::Text(messages[0]["content"].as_str().unwrap_or_default().to_owned())
            }
            _ => Prompt::Messages(messages),
        };
        let text = prompt.text();
        let nominal = if self.data.fit_to_isl && index == 0 && matches!(this.content, Content::Text(_)) {
            u64::from(self.isl.max(1))
        } else {
            text.split_whitespace().count() as u64
        };
        let prompt_tokens = self.counter.count(&text, nominal);
        Some(Ask { prompt, prompt_tokens, osl, images, delay, extra: this.extra.clone() })
    }

    fn session_id(&self, n: u64) -> Option<Arc<str>> {
        self.session(n).id.as_deref().map(Arc::from)
    }

    fn multi_turn(&self) -> bool {
        self.data.parsed.multi_turn()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> Counter {
        Counter { tokenizer: None, seed: 3 }
    }

    #[test]
    fn a_dataset_prompt_is_fitted_to_the_isl_in_words() {
        assert_eq!(fit_words("one two three four", 2, 0, 0), "one two");
        let padded = fit_words("one two", 5, 0, 0);
        assert_eq!(padded.split_whitespace().count(), 5, "{padded}");
        assert!(padded.starts_with("one two "), "{padded}");
        assert_eq!(padded, fit_words("one two", 5, 0, 0), "seeded: the same every time");
    }

    fn dataset(text: &str, format: sweep_spec::DatasetFormat) -> Dataset {
        let parsed = sweep_spec::dataset::parse(text, format).expect("parses");
        let data = super::super::Dataset {
            parsed,
            fit_to_isl: false,
            block_size: 2,
            images: Default::default(),
            info: serde_json::Value::Null,
        };
        Dataset { data: Arc::new(data), isl: 4, osl: 9, counter: counter() }
    }

    #[test]
    fn a_sessions_turns_carry_the_history_and_their_delays() {
        let source = dataset(
            "{\"session_id\": \"s\", \"turns\": [{\"text\": \"hello there\"}, {\"text\": \"and now\", \"delay\": 1500, \"output_length\": 2}]}\n",
            sweep_spec::DatasetFormat::MultiTurn,
        );
        assert!(source.multi_turn());
        assert_eq!(source.session_id(0).as_deref(), Some("s"));
        let first = source.turn(0, 0, &[]).expect("turn 0");
        assert_eq!(first.prompt, Prompt::Text("hello there".into()));
        assert_eq!((first.osl, first.delay, first.prompt_tokens), (9, Duration::ZERO, 2));
        let second = source.turn(0, 1, &["hi back".into()]).expect("turn 1");
        let roles: Vec<_> = match &second.prompt {
            Prompt::Messages(list) => list
                .iter()
                .map(|m| {
                    (
                        m["role"].as_str().unwrap_or("?").to_owned(),
                        m["content"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            roles,
            [("user", "hello there"), ("assistant", "hi back"), ("user", "and now")]
                .map(|(r, c)| (r.to_owned(), c.to_owned()))
        );
        assert_eq!((second.osl, second.delay), (2, Duration::from_millis(1500)));
        assert_eq!(second.prompt_tokens, 6, "the history's words count");
        assert!(source.turn(0, 2, &["a".into(), "b".into()]).is_none(), "two turns only");
        // Sessions cycle: conversation 1 is the file's first session again.
        assert_eq!(source.turn(1, 0, &[]), Some(first));
    }

    #[test]
    fn a_sessions_system_prompt_leads_every_turn_and_extra_fields_go_with_their_turn() {
        let source = dataset(
            "{\"turns\": [{\"role\": \"system\", \"text\": \"Be terse.\"}, {\"text\": \"one\"}, {\"text\": \"two\", \"extra\": {\"temperature\": 0}}]}\n",
            sweep_spec::DatasetFormat::MultiTurn,
        );
        let roles = |ask: &Ask| match &ask.prompt {
            Prompt::Messages(list) => {
                list.iter().map(|m| m["role"].as_str().unwrap_or("?").to_owned()).collect::<Vec<_>>()
            }
            other => panic!("{other:?}"),
        };
        let first = source.turn(0, 0, &[]).expect("turn 0");
        assert_eq!(roles(&first), ["system", "user"]);
        assert_eq!(first.extra, None);
        let second = source.turn(0, 1, &["ok".into()]).expect("turn 1");
        assert_eq!(roles(&second), ["system", "user", "assistant", "user"]);
        assert_eq!(second.extra.and_then(|e| e.get("temperature").cloned()), Some(serde_json::json!(0)));
        assert!(source.turn(0, 2, &["a".into(), "b".into()]).is_none(), "two turns, not three");
    }

    #[test]
    fn a_mooncake_turn_is_its_whole_prompt_with_shared_blocks() {
        let source = dataset(
            "{\"input_length\": 4, \"hash_ids\": [7, 8], \"session_id\": 1}\n{\"input_length\": 6, \"hash_ids\": [7, 8, 9], \"session_id\": 1, \"delay\": 20}\n",
            sweep_spec::DatasetFormat::MooncakeTrace,
        );
        let a = source.turn(0, 0, &[]).expect("turn 0");
        let b = source.turn(0, 1, &["ignored".into()]).expect("turn 1");
        let (Prompt::Text(a_text), Prompt::Text(b_text)) = (&a.prompt, &b.prompt) else { panic!("texts") };
        assert_eq!((a.prompt_tokens, b.prompt_tokens), (4, 6));
        assert!(b_text.starts_with(a_text.as_str()), "{a_text} / {b_text}");
        assert_eq!(b.delay, Duration::from_millis(20));
    }

    #[test]
    fn images_become_image_url_parts_of_the_last_user_message() {
        let images: Vec<Arc<str>> = vec![Arc::from("data:image/png;base64,AAAA")];
        let messages = Prompt::Text("look".into()).into_messages(&images);
        assert_eq!(
            messages,
            serde_json::json!([{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ]}])
        );
        assert_eq!(
            Prompt::Text("plain".into()).into_messages(&[]),
            serde_json::json!([{"role": "user", "content": "plain"}])
        );
    }

    #[test]
    fn shared_prefixes_take_the_asked_share_of_the_prompt() {
        let source = Synthetic {
            isl: 10,
            isl_stddev: 0.0,
            osl: 2,
            osl_stddev: 0.0,
            counter: counter(),
            prefix: Some(SharedPrefix { ratio: 0.6, count: 2, salt: 0 }),
            images: None,
            stream_base: 0,
        };
        let words = |n| match source.turn(n, 0, &[]).expect("a prompt").prompt {
            Prompt::Text(text) => text.split(' ').map(str::to_owned).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let (a, b, c) = (words(0), words(1), words(2));
        assert_eq!((a.len(), b.len(), c.len()), (10, 10, 10));
        assert_eq!(a[..6], c[..6], "requests 0 and 2 share prefix 0");
        assert_ne!(a[..6], b[..6], "request 1 has prefix 1");
        assert_ne!(a[6..], c[6..], "the rest is each request's own");
        assert!(source.turn(0, 1, &[]).is_none());
        // Another point (another salt) shares nothing with this one's prefixes.
        let other =
            Synthetic { prefix: Some(SharedPrefix { ratio: 0.6, count: 2, salt: 1 }), ..source.clone() };
        let Prompt::Text(text) = other.turn(0, 0, &[]).expect("a prompt").prompt else { panic!() };
        assert_ne!(text.split(' ').next(), Some(a[0].as_str()), "{text}");
    }
}
