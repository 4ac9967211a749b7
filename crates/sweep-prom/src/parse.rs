//! The Prometheus text exposition format (version 0.0.4, as vLLM, SGLang, Dynamo and the mock
//! engine serve it): `# HELP` and `# TYPE` lines, then one sample per line,
//! `name{label="value",…} value [timestamp]`.
//!
//! The parser is strict where a lenient one would mislead: a line it cannot read is an error
//! with its line number, so that a garbage answer is reported as such instead of as an empty
//! (and so "idle") server.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

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
///
/// It is kept as its series key, `name{a="x",b="y"}` with the labels sorted by name: the
/// series' identity across scrapes and its key in `server_metrics.jsonl`, built once by the
/// parse and then only borrowed (one allocation a sample for its text, one for where its parts
/// end: a vLLM scrape holds 425 samples, most with three labels).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The key.
    key: String,
    /// Where each part of `key` ends: the name, then a label's name and its value, in turn.
    /// A label's name starts two bytes after the part before it (`{` or `",`), its value two
    /// after its name (`="`).
    ends: Vec<u32>,
    /// The labels' values unescaped, in key order, when any was written with an escape (the
    /// key keeps them escaped); rare.
    unescaped: Option<Box<[String]>>,
    pub value: f64,
    /// The family this sample belongs to (shared by its samples), and its kind.
    pub family: Arc<str>,
    pub kind: Kind,
}

impl Sample {
    /// The sample's own name (`…_bucket`, `…_sum`, `…_count` for a histogram's lines).
    pub fn name(&self) -> &str {
        &self.key[..self.ends[0] as usize]
    }

    /// Its labels, sorted by name, values unescaped.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.label_ranges().enumerate().map(|(i, (name, value))| {
            let value = match &self.unescaped {
                Some(values) => values[i].as_str(),
                None => &self.key[value],
            };
            (&self.key[name], value)
        })
    }

    /// Where each label's name and (escaped) value lie in the key.
    fn label_ranges(&self) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
        // The first name follows `{`, the others `",`.
        let mut start = self.ends[0] as usize + 1;
        self.ends[1..].chunks_exact(2).map(move |ends| {
            let (name_end, value_end) = (ends[0] as usize, ends[1] as usize);
            let ranges = (start..name_end, name_end + 2..value_end);
            start = value_end + 2;
            ranges
        })
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// `name{a="x",b="y"}`, labels sorted by name, values escaped as in the exposition: the
    /// series' identity across scrapes, and its key in `server_metrics.jsonl`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The key of the series `name` with this sample's labels but `label` (a histogram's
    /// series from a bucket's sample, without its `le`), into `out` (cleared first). Sliced
    /// from the key, which is already sorted and escaped.
    pub fn push_key_without(&self, out: &mut String, name: &str, label: &str) {
        out.clear();
        out.push_str(name);
        let Some((name_range, value)) = self.label_ranges().find(|(n, _)| &self.key[n.clone()] == label)
        else {
            out.push_str(&self.key[self.ends[0] as usize..]);
            return;
        };
        // `{…,` + `label="value"` + `,…}`: the label goes with the comma after it, or the one
        // before it when it is the last.
        let (open, close) = (self.ends[0] as usize, self.key.len() - 1);
        let (mut start, mut end) = (name_range.start, value.end + 1);
        if end < close {
            end += 1;
        } else if start > open + 1 {
            start -= 1;
        }
        if start == open + 1 && end == close {
            return;
        }
        out.push_str(&self.key[open..start]);
        out.push_str(&self.key[end..]);
    }
}

/// One scrape's samples, in the order served.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
}

/// Parses a whole exposition.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    parse_where(text, |_| true)
}

/// Parses the gauges (and untyped samples) of an exposition only: a counter's, histogram's or
/// summary's lines that follow their `# TYPE` line are passed over by their name, unread. What
/// a scrape between a point's two edges needs (a vLLM exposition's 425 samples hold about 40
/// gauges), at a fraction of [`parse`]'s cost; a line it reads that does not parse is still an
/// error.
pub fn parse_gauges(text: &str) -> Result<Exposition, ParseError> {
    parse_where(text, |kind| matches!(kind, Kind::Gauge | Kind::Untyped))
}

fn parse_where(text: &str, keep: impl Fn(Kind) -> bool) -> Result<Exposition, ParseError> {
    let mut kinds: HashMap<&str, (Arc<str>, Kind)> = HashMap::new();
    // The family of the last `# TYPE` line: engines write a family's samples right after it,
    // so most samples are resolved by a prefix comparison instead of hashing their names.
    let mut current: Option<(&str, Arc<str>, Kind)> = None;
    let mut unresolved = Vec::new();
    let mut samples = Vec::new();
    // A sample's family until it is known (shared, so that no sample allocates one).
    let placeholder: Arc<str> = Arc::from("");
    for (index, line) in text.lines().enumerate() {
        let error = |message: String| ParseError { line: index + 1, message };
        let line = line.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let Some(rest) = comment.trim_start().strip_prefix("TYPE") else {
                // HELP and other comments carry nothing a summary uses.
                continue;
            };
            let mut words = rest.split_ascii_whitespace();
            let name = words
                .next()
                .filter(|n| valid_name(n))
                .ok_or_else(|| error("a `# TYPE` line without a valid metric name".to_owned()))?;
            let kind = match words.next() {
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
            let family: Arc<str> = Arc::from(name);
            kinds.insert(name, (family.clone(), kind));
            current = Some((name, family, kind));
            continue;
        }
        if let Some((name, _, kind)) = &current {
            if !keep(*kind) {
                let end =
                    trimmed.bytes().position(|b| matches!(b, b'{' | b' ' | b'\t')).unwrap_or(trimmed.len());
                if belongs(&trimmed[..end], name) {
                    continue;
                }
            }
        }
        let mut sample = sample(trimmed, &placeholder).map_err(error)?;
        match &current {
            Some((name, family, kind)) if belongs(sample.name(), name) => {
                sample.family = family.clone();
                sample.kind = *kind;
            }
            _ => unresolved.push(samples.len()),
        }
        samples.push(sample);
    }
    // The rest, once every `# TYPE` is known (one may follow its samples).
    let mut untyped: HashMap<String, Arc<str>> = HashMap::new();
    for index in unresolved {
        let sample = &mut samples[index];
        let (family, kind) = match family_of(sample.name(), &kinds) {
            Some((family, kind)) => (family.clone(), *kind),
            None => {
                let name = sample.name();
                let family = untyped.entry(name.to_owned()).or_insert_with(|| Arc::from(name));
                (family.clone(), Kind::Untyped)
            }
        };
        sample.family = family;
        sample.kind = kind;
    }
    Ok(Exposition { samples })
}

/// The suffixes a family's samples may add to its name: a histogram's or summary's, and a
/// counter's (`prometheus_client` types counters both with and without `_total`).
const SUFFIXES: [&str; 5] = ["_bucket", "_sum", "_count", "_total", "_created"];

/// Whether a sample named `name` belongs to the family `family`.
fn belongs(name: &str, family: &str) -> bool {
    match name.strip_prefix(family) {
        Some("") => true,
        Some(suffix) => SUFFIXES.contains(&suffix),
        None => false,
    }
}

/// A sample's family: its own name when typed, else its name without a suffix.
fn family_of<'k>(name: &str, kinds: &'k HashMap<&str, (Arc<str>, Kind)>) -> Option<&'k (Arc<str>, Kind)> {
    if let Some(found) = kinds.get(name) {
        return Some(found);
    }
    SUFFIXES.iter().find_map(|suffix| kinds.get(name.strip_suffix(suffix)?))
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn sample(line: &str, family: &Arc<str>) -> Result<Sample, String> {
    let name_end = line.bytes().position(|b| matches!(b, b'{' | b' ' | b'\t')).unwrap_or(line.len());
    let name = &line[..name_end];
    if !valid_name(name) {
        return Err(format!("`{}` is not a metric name", truncate(name)));
    }
    let mut rest = &line[name_end..];
    let mut key = String::with_capacity(rest.len().min(256) + name.len());
    key.push_str(name);
    // Room for the name and three labels, what engines write most (counting the `=`s first
    // cost more than the few samples with more labels growing it).
    let mut ends = Vec::with_capacity(7);
    ends.push(key.len() as u32);
    let mut unescaped = None;
    let mut sorted = true;
    if let Some(after) = rest.strip_prefix('{') {
        (rest, sorted) = labels_of(after, &mut key, &mut ends, &mut unescaped)?;
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
    let mut sample = Sample {
        key,
        ends,
        unescaped: unescaped.map(Vec::into_boxed_slice),
        value,
        family: family.clone(),
        kind: Kind::Untyped,
    };
    if !sorted {
        sort_labels(&mut sample);
    }
    Ok(sample)
}

/// Reads `a="x",b="y"}` (after the `{`) onto the key, as `{a="x",b="y"}` in the order written,
/// and their ends; returns what follows the `}`, and whether the names came sorted. Values are scanned for their closing quote a
/// chunk at a time; only one holding a backslash is unescaped (into `unescaped`, which then
/// holds every value) and written back escaped the one way the key does.
fn labels_of<'a>(
    mut rest: &'a str,
    key: &mut String,
    ends: &mut Vec<u32>,
    unescaped: &mut Option<Vec<String>>,
) -> Result<(&'a str, bool), String> {
    let mut count = 0;
    let mut previous = "";
    let mut sorted = true;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            if count > 0 {
                key.push('}');
            }
            return Ok((after, sorted));
        }
        let eq = memchr::memchr(b'=', rest.as_bytes()).ok_or("a label without `=`")?;
        let name = rest[..eq].trim();
        if !valid_name(name) || name.contains(':') {
            return Err(format!("`{}` is not a label name", truncate(name)));
        }
        sorted &= previous <= name;
        previous = name;
        let label = rest;
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{name}`: its value is not quoted"))?;
        // `name="` written without spaces, as engines write it: the label is copied as it is.
        let tight = name.len() == eq && rest.len() + 2 + eq == label.len();
        key.push(if count == 0 { '{' } else { ',' });
        let bytes = rest.as_bytes();
        let end = match memchr::memchr2(b'"', b'\\', bytes) {
            Some(end) if bytes[end] == b'"' => {
                if tight {
                    ends.push((key.len() + eq) as u32);
                    key.push_str(&label[..eq + 2 + end]);
                    ends.push(key.len() as u32);
                    key.push('"');
                } else {
                    push_label(key, ends, name, &rest[..end]);
                }
                if let Some(values) = unescaped {
                    values.push(rest[..end].to_owned());
                }
                end
            }
            Some(_) => {
                let mut plain = String::new();
                let end = unescape(rest, &mut plain)
                    .ok_or_else(|| format!("label `{name}`: its value is not closed"))?;
                // Every value before this one had no escape: its key text is its value.
                let values = unescaped.get_or_insert_with(|| {
                    ends[1..]
                        .chunks_exact(2)
                        .map(|e| key[e[0] as usize + 2..e[1] as usize].to_owned())
                        .collect()
                });
                let mut escaped = String::with_capacity(plain.len() + 4);
                push_escaped(&mut escaped, &plain);
                push_label(key, ends, name, &escaped);
                values.push(plain);
                end
            }
            None => return Err(format!("label `{name}`: its value is not closed")),
        };
        count += 1;
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("after label `{name}`: expected `,` or `}}`"));
        }
    }
}

/// Puts the labels of a sample written out of order in name order (Dynamo's frontend
/// writes most of its own out of order; vLLM's come sorted and are left as they are).
fn sort_labels(sample: &mut Sample) {
    let ranges: Vec<_> = sample.label_ranges().collect();
    let name = |i: usize| &sample.key[ranges[i].0.clone()];
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by(|&a, &b| name(a).cmp(name(b)));
    let name_end = sample.ends[0] as usize;
    let mut key = String::with_capacity(sample.key.len());
    key.push_str(&sample.key[..name_end]);
    let mut ends = vec![name_end as u32];
    for (i, &label) in order.iter().enumerate() {
        let (name, value) = &ranges[label];
        key.push(if i == 0 { '{' } else { ',' });
        push_label(&mut key, &mut ends, &sample.key[name.clone()], &sample.key[value.clone()]);
    }
    key.push('}');
    if let Some(values) = &mut sample.unescaped {
        *values = order.iter().map(|&i| std::mem::take(&mut values[i])).collect();
    }
    sample.key = key;
    sample.ends = ends;
}

/// `name="value"` onto a key after its `{` or `,`, and where its name and value end; `value`
/// is already escaped as a key writes it.
fn push_label(key: &mut String, ends: &mut Vec<u32>, name: &str, value: &str) {
    key.push_str(name);
    ends.push(key.len() as u32);
    key.push_str("=\"");
    key.push_str(value);
    ends.push(key.len() as u32);
    key.push('"');
}

/// A label value as a key writes it: `\`, `"` and a newline escaped.
fn push_escaped(key: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => key.push_str("\\\\"),
            '"' => key.push_str("\\\""),
            '\n' => key.push_str("\\n"),
            c => key.push(c),
        }
    }
}

/// A quoted value holding escapes (`\\\\`, `\\"`, `\\n`), up to its closing quote: appended to
/// `out`; returns the quote's index.
fn unescape(rest: &str, out: &mut String) -> Option<usize> {
    let mut chars = rest.char_indices();
    loop {
        match chars.next()? {
            (i, '"') => return Some(i),
            (_, '\\') => match chars.next()? {
                (_, 'n') => out.push('\n'),
                (_, c @ ('\\' | '"')) => out.push(c),
                (_, c) => {
                    out.push('\\');
                    out.push(c);
                }
            },
            (_, c) => out.push(c),
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
        assert_eq!(&*e.samples[1].family, "vllm:num_preemptions_total");
        assert_eq!(e.samples[1].kind, Kind::Counter);
        assert_eq!(&*e.samples[3].family, "vllm:time_to_first_token_seconds");
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
    fn a_key_sorts_labels_written_out_of_order_and_keeps_values_escaped_one_way() {
        // Dynamo's frontend writes its labels out of order; an escape may come after a plain
        // value, and `\\x` (not an escape the format knows) is a backslash and an `x`.
        let e = parse("x{z=\"1\",a=\"q\\\"x\",m=\"b\\\\c\\d\"} 1\ny{b=\"2\",a=\"1\"} 2\n").expect("parses");
        assert_eq!(e.samples[0].key(), r#"x{a="q\"x",m="b\\c\\d",z="1"}"#);
        let labels: Vec<_> = e.samples[0].labels().collect();
        assert_eq!(labels, [("a", "q\"x"), ("m", "b\\c\\d"), ("z", "1")]);
        assert_eq!(e.samples[0].name(), "x");
        assert_eq!(e.samples[1].key(), r#"y{a="1",b="2"}"#);
        assert_eq!(e.samples[1].labels().collect::<Vec<_>>(), [("a", "1"), ("b", "2")]);
        assert_eq!(e.samples[1].label("b"), Some("2"));
        let mut key = String::new();
        for (label, expected) in [
            ("a", r#"h{m="b\\c\\d",z="1"}"#),
            ("m", r#"h{a="q\"x",z="1"}"#),
            ("z", r#"h{a="q\"x",m="b\\c\\d"}"#),
            ("none", r#"h{a="q\"x",m="b\\c\\d",z="1"}"#),
        ] {
            e.samples[0].push_key_without(&mut key, "h", label);
            assert_eq!(key, expected, "without {label}");
        }
        e.samples[1].push_key_without(&mut key, "h", "b");
        assert_eq!(key, r#"h{a="1"}"#);
        let only = parse("x{le=\"1\"} 1\ny 2\n").expect("parses");
        only.samples[0].push_key_without(&mut key, "h", "le");
        assert_eq!(key, "h");
        only.samples[1].push_key_without(&mut key, "h", "le");
        assert_eq!(key, "h");
        // A key is what the key of its own parse is.
        for s in &e.samples {
            let again = parse(&format!("{} 1", s.key())).expect("parses back");
            assert_eq!(again.samples[0].key(), s.key());
            assert_eq!(again.samples[0].labels().collect::<Vec<_>>(), s.labels().collect::<Vec<_>>());
        }
    }

    #[test]
    fn gauges_alone_pass_over_the_other_families_unread() {
        let text =
            "# TYPE a_seconds histogram\na_seconds_bucket{le=\"1\"} 1\na_seconds_sum 1\na_seconds_count 1\n\
                    # TYPE b gauge\nb{x=\"1\"} 2\nc_total 3\n# TYPE d counter\nd_total 4\n";
        let e = parse_gauges(text).expect("parses");
        let names: Vec<&str> = e.samples.iter().map(Sample::name).collect();
        assert_eq!(names, ["b", "c_total"], "the gauge, and the untyped sample (which may be one)");
        assert_eq!(parse(text).expect("parses").samples.len(), 6);
        // A line it reads must parse.
        let error = parse_gauges("# TYPE b gauge\nb{x=1} 2\n").expect_err("garbage");
        assert_eq!(error.line, 2);
    }

    #[test]
    fn a_counter_typed_without_its_total_suffix_is_still_a_counter() {
        let e = parse("# TYPE requests counter\nrequests_total 4\nrequests_created 1.7e9\n").expect("parses");
        assert!(e.samples.iter().all(|s| &*s.family == "requests" && s.kind == Kind::Counter));
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
                    proptest::prop_assert_eq!(again.samples[0].key(), s.key());
                    proptest::prop_assert_eq!(again.samples[0].labels().collect::<Vec<_>>(), s.labels().collect::<Vec<_>>());
                },
                Err(e) => proptest::prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1)),
            }
        }
    }
}
