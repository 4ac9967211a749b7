//! A single-turn dataset (`workload.dataset`), parsed from its text: one JSON object per line,
//! each a prompt — `text` (aiperf's `single_turn` format) or OpenAI `messages` — with an optional
//! `output_length`. Pure: the callers read the file (`sweep submit` on the login node, to refuse
//! a bad file before anything is submitted; the benchmark step on the compute node, which uses
//! it), so both judge it by the same rules.

use serde::Deserialize;

/// One request of the dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub content: Content,
    /// Tokens to generate; the point's OSL when unset.
    pub output_length: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Sent as the one user message (chat) or the prompt (completions).
    Text(String),
    /// OpenAI chat messages, sent as they are (their contents joined by new lines for the
    /// completions endpoint).
    Messages(serde_json::Value),
}

impl Content {
    /// The words of the prompt: the token count the load generator assumes without a
    /// tokenizer (the server's own count is used when it reports one).
    pub fn words(&self) -> u64 {
        match self {
            Content::Text(text) => text.split_whitespace().count() as u64,
            Content::Messages(messages) => messages_text(messages).split_whitespace().count() as u64,
        }
    }
}

/// Every text content of `messages`, one per line.
pub fn messages_text(messages: &serde_json::Value) -> String {
    let mut out = Vec::new();
    for message in messages.as_array().into_iter().flatten() {
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

/// Why a dataset cannot be used, with the 1-based line it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DatasetError {
    pub line: usize,
    pub message: String,
}

#[derive(Deserialize)]
struct Line {
    text: Option<String>,
    messages: Option<serde_json::Value>,
    output_length: Option<u32>,
}

/// Parses a single-turn dataset. Blank lines are skipped; a dataset without any entry is an
/// error, as is a line with neither or both of `text` and `messages`.
pub fn parse(text: &str) -> Result<Vec<Entry>, DatasetError> {
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |message: String| DatasetError { line: n + 1, message };
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line = serde_json::from_str(line).map_err(|e| {
            // serde's own position is within the line: keep its column, drop its "line 1".
            let text = e.to_string();
            let what = text.split(" at line ").next().unwrap_or(&text);
            at(format!("not a JSON object: {what} (column {})", e.column()))
        })?;
        let content = match (parsed.text, parsed.messages) {
            (Some(text), None) => Content::Text(text),
            (None, Some(messages)) => {
                let valid = messages.as_array().is_some_and(|list| {
                    !list.is_empty() && list.iter().all(|m| m["role"].is_string() && !m["content"].is_null())
                });
                if !valid {
                    return Err(at("`messages` must be a list of {role, content} objects".into()));
                }
                Content::Messages(messages)
            }
            (Some(_), Some(_)) => return Err(at("give `text` or `messages`, not both".into())),
            (None, None) => return Err(at("no prompt: give `text` or `messages`".into())),
        };
        if parsed.output_length == Some(0) {
            return Err(at("`output_length` must be at least 1".into()));
        }
        entries.push(Entry { content, output_length: parsed.output_length });
    }
    if entries.is_empty() {
        return Err(DatasetError { line: 0, message: "the dataset has no entry".into() });
    }
    Ok(entries)
}

/// Checks the spec's `workload.dataset` (unless `check: false`) with `read` (the file system,
/// for the CLI), so that a missing file or a bad line is a spec error pointing at the key and
/// naming the dataset's line, before anything is written or submitted.
pub fn check(
    spec: &crate::Spec,
    read: impl Fn(&str) -> std::io::Result<String>,
) -> Result<(), crate::SpecError> {
    let Some(dataset) = spec.workload.load.dataset.as_ref().filter(|d| d.check) else { return Ok(()) };
    let at = crate::KeyPath::keys("workload.dataset.path");
    let text = read(&dataset.path).map_err(|e| {
        crate::SpecError::invalid(at.clone(), format!("cannot read the dataset {}: {e}", dataset.path))
            .with_help(
                "a relative path is read from where `sweep` runs; if the file is only on the compute nodes, \
             set `workload.dataset.check: false`",
            )
    })?;
    parse(&text).map(|_| ()).map_err(|e| {
        crate::SpecError::invalid(at, format!("the dataset {} does not parse: {e}", dataset.path))
            .with_help("each line is a JSON object with `text` or `messages`, and optionally `output_length`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_messages_with_their_lengths() {
        let text = concat!(
            "{\"text\": \"What is machine learning?\"}\n",
            "\n",
            "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi there\"}], \"output_length\": 7}\n",
        );
        let entries = parse(text).expect("parses");
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            Entry { content: Content::Text("What is machine learning?".into()), output_length: None }
        );
        assert_eq!(entries[1].output_length, Some(7));
        assert_eq!(entries[1].content.words(), 4);
    }

    #[test]
    fn a_bad_line_is_named() {
        let cases = [
            ("{\"text\": \"a\"}\n{\"text\": \"b\"\n", 2, "not a JSON object"),
            ("{\"text\": \"a\", \"messages\": []}\n", 1, "not both"),
            ("{\"prompt\": \"a\"}\n", 1, "no prompt"),
            ("{\"text\": \"a\"}\n{\"messages\": [{\"content\": \"x\"}]}\n", 2, "{role, content}"),
            ("{\"text\": \"a\", \"output_length\": 0}\n", 1, "at least 1"),
        ];
        for (text, line, message) in cases {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text}: {error}");
            assert!(error.message.contains(message), "{text}: {error}");
        }
        assert!(parse("\n\n").expect_err("empty").message.contains("no entry"));
    }
}

#[cfg(test)]
mod check_tests {
    #[test]
    fn a_missing_dataset_points_at_its_key() {
        let text = "name: t\nmodel: {path: /m}\nengine: {kind: mock}\ncluster: {gpus_per_node: 4}\nmode: agg\nagg: {tp: 1, batch: 8}\nworkload:\n  isl: 8\n  osl: 8\n  concurrency: 1\n  dataset:\n    path: /nope.jsonl\n";
        let document = crate::load(text).expect("loads");
        let error =
            crate::check_inputs(&document, |_| Err(std::io::Error::other("gone"))).expect_err("missing");
        let location = error.location.expect("located");
        assert_eq!(location.line, 12, "{error}");
    }
}
