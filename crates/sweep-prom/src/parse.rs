//! The Prometheus text exposition format (version 0.0.4, as vLLM, SGLang, Dynamo and the mock
//! engine serve it): `# HELP` and `# TYPE` lines, then one sample per line,
//! `name{label="value",…} value [timestamp]`.
//!
//! The parser is strict where a lenient one would mislead: a line it cannot read is an error
//! with its line number, so that a garbage answer is reported as such instead of as an empty
//! (and so "idle") server.

use std::collections::HashMap;

use thiserror::Error;

/// Why a text is not an exposition.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number in the text.
    pub line: usize,
    pub message: String,
}

/// What a family's `# TYPE` line says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// No `# TYPE` line, or `untyped`.
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's own name (`…_bucket`, `…_sum`, `…_count` for a histogram's lines).
    pub name: String,
    /// In the order written.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// The family this sample belongs to, and its kind.
    pub family: String,
    pub kind: Kind,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `name{a="x",b="y"}`, labels sorted by name, values escaped as in the exposition: the
    /// series' identity across scrapes, and its key in `server_metrics.jsonl`.
    pub fn key(&self) -> String {
        series_key(&self.name, self.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A series' key from its name and labels; see [`Sample::key`].
pub fn series_key<'a>(name: &str, labels: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut labels: Vec<(&str, &str)> = labels.into_iter().collect();
    if labels.is_empty() {
        return name.to_owned();
    }
    labels.sort_unstable();
    let mut key = String::with_capacity(name.len() + 16 * labels.len());
    key.push_str(name);
    key.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            key.push(',');
        }
        key.push_str(k);
        key.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => key.push_str("\\\\"),
                '"' => key.push_str("\\\""),
                '\n' => key.push_str("\\n"),
                c => key.push(c),
            }
        }
        key.push('"');
    }
    key.push('}');
    key
}

/// One scrape's samples, in the order served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut kinds: HashMap<&str, Kind> = HashMap::new();
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| ParseError { line: index + 1, message };
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, [' ', '\t']);
            if words.next() == Some("TYPE") {
                let name = words
                    .next()
                    .filter(|n| valid_name(n))
                    .ok_or_else(|| error("a `# TYPE` line without a valid metric name".to_owned()))?;
                let kind = match words.next().map(str::trim) {
                    Some("counter") => Kind::Counter,
                    Some("gauge") => Kind::Gauge,
                    Some("histogram") => Kind::Histogram,
                    Some("summary") => Kind::Summary,
                    Some("untyped") | Some("unknown") => Kind::Untyped,
                    other => {
                        return Err(error(format!(
                            "`# TYPE {name}` names no known type: {:?} (counter, gauge, histogram, summary, untyped)",
                            other.unwrap_or("")
                        )))
                    }
                };
                kinds.insert(name, kind);
            }
            // HELP and other comments carry nothing a summary uses.
            continue;
        }
        samples.push(sample(trimmed).map_err(error)?);
    }
    for sample in &mut samples {
        let (family, kind) = family_of(&sample.name, &kinds);
        sample.family = family.to_owned();
        sample.kind = kind;
    }
    Ok(Exposition { samples })
}

/// A sample's family: its own name when typed, else its name without the suffix a histogram,
/// summary or counter adds (`prometheus_client` types counters both with and without `_total`).
fn family_of<'a>(name: &'a str, kinds: &HashMap<&str, Kind>) -> (&'a str, Kind) {
    if let Some(&kind) = kinds.get(name) {
        return (name, kind);
    }
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created"] {
        if let Some(family) = name.strip_suffix(suffix) {
            if let Some(&kind) = kinds.get(family) {
                return (family, kind);
            }
        }
    }
    (name, Kind::Untyped)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("`{}` is not a metric name", truncate(name)));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = labels_of(after, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or_else(|| format!("`{name}` has no value"))?;
    let value = number(value).ok_or_else(|| format!("`{name}`: `{}` is not a number", truncate(value)))?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("`{name}`: `{}` is not a timestamp", truncate(timestamp)))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!("`{name}`: unexpected `{}` after the value and timestamp", truncate(extra)));
    }
    Ok(Sample { name: name.to_owned(), labels, value, family: String::new(), kind: Kind::Untyped })
}

/// Reads `a="x",b="y"}` (after the `{`); returns what follows the `}`.
fn labels_of<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("a label without `=`")?;
        let name = rest[..eq].trim();
        if !valid_name(name) || name.contains(':') {
            return Err(format!("`{}` is not a label name", truncate(name)));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{name}`: its value is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c);
                    }
                    None => return Err(format!("label `{name}`: its value is not closed")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label `{name}`: its value is not closed")),
            }
        };
        labels.push((name.to_owned(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("after label `{name}`: expected `,` or `}}`"));
        }
    }
}

/// A sample value: a float, or `NaN`, `+Inf`, `-Inf` as the format writes them.
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn truncate(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(40).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_types_labels_escapes_and_special_values() {
        let text = "# HELP vllm:num_requests_running Number of requests in model execution batches.\n\
            # TYPE vllm:num_requests_running gauge\n\
            vllm:num_requests_running{engine=\"0\",model_name=\"tiny\"} 3.0\n\
            # TYPE vllm:num_preemptions_total counter\n\
            vllm:num_preemptions_total{engine=\"0\",model_name=\"tiny\"} 0.0\n\
            # TYPE vllm:time_to_first_token_seconds histogram\n\
            vllm:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"tiny\"} 2.0\n\
            vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"tiny\"} 5.0\n\
            vllm:time_to_first_token_seconds_sum{model_name=\"tiny\"} 1.25\n\
            vllm:time_to_first_token_seconds_count{model_name=\"tiny\"} 5.0\n\
            odd{path=\"a \\\"quoted\\\" \\\\ one\\nline\", } NaN 1700000000000\n\
            bare 1e3\n";
        let e = parse(text).expect("parses");
        assert_eq!(e.samples.len(), 8);
        assert_eq!(e.samples[0].kind, Kind::Gauge);
        assert_eq!(e.samples[0].label("model_name"), Some("tiny"));
        assert_eq!(e.samples[1].family, "vllm:num_preemptions_total");
        assert_eq!(e.samples[1].kind, Kind::Counter);
        assert_eq!(e.samples[3].family, "vllm:time_to_first_token_seconds");
        assert_eq!(e.samples[3].kind, Kind::Histogram);
        assert_eq!((e.samples[3].label("le"), e.samples[3].value), (Some("+Inf"), 5.0));
        assert_eq!(e.samples[6].label("path"), Some("a \"quoted\" \\ one\nline"));
        assert!(e.samples[6].value.is_nan());
        assert_eq!(e.samples[6].kind, Kind::Untyped);
        assert_eq!(e.samples[7].value, 1000.0);
        assert_eq!(e.samples[6].key(), "odd{path=\"a \\\"quoted\\\" \\\\ one\\nline\"}");
        assert_eq!(
            e.samples[2].key(),
            "vllm:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\"tiny\"}",
            "labels sorted"
        );
    }

    #[test]
    fn a_counter_typed_without_its_total_suffix_is_still_a_counter() {
        let e = parse("# TYPE requests counter\nrequests_total 4\nrequests_created 1.7e9\n").expect("parses");
        assert!(e.samples.iter().all(|s| s.family == "requests" && s.kind == Kind::Counter));
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        for (text, line, needle) in [
            ("ok 1\n<html>not metrics</html>\n", 2, "not a metric name"),
            ("a{b=\"c\" 1\n", 1, "expected `,`"),
            ("a{b=c} 1\n", 1, "not quoted"),
            ("a{b=\"c} 1\n", 1, "not closed"),
            ("a one\n", 1, "not a number"),
            ("a\n", 1, "has no value"),
            ("a 1 2 3\n", 1, "unexpected"),
            ("a 1 x\n", 1, "not a timestamp"),
            ("# TYPE a thing\na 1\n", 1, "no known type"),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(needle), "{text:?}: {error}");
        }
    }

    proptest::proptest! {
        /// Any text either parses or names a line inside it; the parser never panics.
        #[test]
        fn fuzz_parse_never_panics(text in "(([a-z_:]{0,6}(\\{[a-z]{0,3}=\"[^\"\\n]{0,4}\"?,?\\}?)? ?[-+0-9.eInfa]{0,5} ?[0-9]{0,3})|(# (TYPE|HELP) [a-z]{0,3} [a-z]{0,9}))(\\n(([a-z_:]{0,6}(\\{[a-z]{0,3}=\"[^\"\\n]{0,4}\"?,?\\}?)? ?[-+0-9.eInfa]{0,5})|# TYPE [a-z]{0,3} [a-z]{0,9})){0,5}") {
            match parse(&text) {
                Ok(e) => for s in &e.samples {
                    let again = parse(&format!("{} 1", s.key())).expect("a key parses back");
                    proptest::prop_assert_eq!(&again.samples[0].labels.len(), &s.labels.len());
                },
                Err(e) => proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1)),
            }
        }
    }
}
