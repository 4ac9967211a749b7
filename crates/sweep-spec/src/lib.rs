//! The sweep spec, version 1: a YAML description of a parameter space of LLM serving
//! configurations, checked and resolved into a [`Spec`] that later stages trust.
//!
//! [`load`] takes the file's text (reading it is the caller's business) and returns the model
//! with a [`SourceMap`], or a [`SpecError`] that names the key, its position and what to do.

pub mod accuracy;
pub mod dataset;
mod error;
pub mod expr;
mod knobs;
pub mod model;
mod raw;
mod resolve;
pub mod source;

pub use error::{Parent, SpecError, SpecErrorKind};
pub use model::*;
pub use source::{KeyPath, Location, SourceMap};

/// A loaded spec and the positions of its keys, for pointing later errors at the file.
#[derive(Debug)]
pub struct Document {
    pub spec: Spec,
    pub source_map: SourceMap,
}

/// Parses and validates a spec from its text.
pub fn load(text: &str) -> Result<Document, SpecError> {
    let source_map = SourceMap::build(text);
    if text.trim().is_empty() {
        return Err(SpecError::rule(KeyPath::root(), "the spec is empty")
            .with_help("start from one of the examples in `sweeps/`"));
    }
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let raw: raw::RawSpec =
        serde_path_to_error::deserialize(deserializer).map_err(|error| classify(&error, &source_map))?;
    let spec = resolve::resolve(raw).map_err(|error| locate(error, &source_map))?;
    Ok(Document { spec, source_map })
}

/// The checks a loaded spec needs the file system for (its dataset, its accuracy questions),
/// done through `read` so that this crate stays free of I/O; errors point at the key in the spec.
pub fn check_inputs(
    document: &Document,
    read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<(), SpecError> {
    dataset::check(&document.spec, &read)
        .and_then(|()| accuracy::check(&document.spec, &read))
        .map_err(|error| locate(error, &document.source_map))
}

/// The model's `config.json`, for the capacity estimate, read through `read` (see
/// [`check_inputs`]): `model.config` (a `.json` file, or a folder holding `config.json`), whose
/// failure to read is an error at that key; else `<model.path>/config.json` when it can be read
/// here (a hub name or a path only the compute nodes see has none: `None`). Returns the path
/// read and its text.
pub fn read_model_config(
    document: &Document,
    read: impl Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<Option<(String, String)>, SpecError> {
    let in_folder = |path: &str| {
        if path.ends_with(".json") {
            path.to_owned()
        } else {
            format!("{}/config.json", path.trim_end_matches('/'))
        }
    };
    let model = &document.spec.model;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    match &model.config {
        Some(config) => {
            let path = in_folder(config);
            match read(&path) {
                Ok(bytes) => Ok(Some((path, text(bytes)))),
                Err(e) => Err(locate(
                    SpecError::invalid(KeyPath::keys("model.config"), format!("cannot read `{path}`: {e}"))
                        .with_help(
                            "give the model's config.json, or a folder holding one, as this machine sees it",
                        ),
                    &document.source_map,
                )),
            }
        }
        None => {
            let path = in_folder(&model.path);
            Ok(read(&path).ok().map(|bytes| (path, text(bytes))))
        }
    }
}

/// Fills in the position of an error found after parsing.
fn locate(mut error: SpecError, map: &SourceMap) -> SpecError {
    if error.location.is_none() {
        let prefer_value = !matches!(
            *error.kind,
            SpecErrorKind::UnknownKey { .. } | SpecErrorKind::MissingKey { .. } | SpecErrorKind::Rule(_)
        );
        // The top level has no line of its own to show.
        if !error.path.is_root() {
            error.location = map.nearest(&error.path, prefer_value);
        }
    }
    error
}

/// Turns a serde error into a [`SpecError`]. serde reports unknown keys and variants only as
/// text, in a format that has been stable since serde 1.0; the words in backticks are the
/// offending name followed by the expected ones.
fn classify(error: &serde_path_to_error::Error<serde_yaml::Error>, map: &SourceMap) -> SpecError {
    let path = key_path(error.path());
    let message = core_message(error);
    let quoted = backticked(&message);
    let serde_location = error.inner().location().map(|l| {
        // Widen the caret to the token when the source map knows it at the same place.
        let width = map
            .key(&path)
            .filter(|known| known.line == l.line() && known.column == l.column())
            .or_else(|| map.value(&path).filter(|known| known.line == l.line() && known.column == l.column()))
            .map_or(1, |known| known.width);
        Location { line: l.line(), column: l.column(), width }
    });
    let help_for = |name: &str, expected: &[String]| {
        if expected.is_empty() {
            return "this mapping takes no keys".to_owned();
        }
        match closest(name, expected.iter().map(String::as_str)) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        }
    };
    let parent = || path.parent().unwrap_or_default();
    let (kind, help, location) = if message.starts_with("unknown field") && !quoted.is_empty() {
        let key = quoted[0].clone();
        let help = help_for(&key, &quoted[1..]);
        (SpecErrorKind::UnknownKey { key, parent: Parent(parent()) }, Some(help), serde_location)
    } else if message.starts_with("unknown variant") && !quoted.is_empty() {
        let value = quoted[0].clone();
        let help = help_for(&value, &quoted[1..]);
        let expected = quoted[1..].iter().map(|q| format!("`{q}`")).collect::<Vec<_>>().join(", ");
        (SpecErrorKind::UnknownVariant { key: path.to_string(), value, expected }, Some(help), serde_location)
    } else if message.starts_with("missing field") && !quoted.is_empty() {
        // serde points at the start of the mapping; its key is the better place to show, and the
        // top level has no line of its own.
        let location = if path.is_root() { None } else { map.nearest(&path, false).or(serde_location) };
        let kind = SpecErrorKind::MissingKey { key: quoted[0].clone(), parent: Parent(path.clone()) };
        (kind, Some(format!("add `{}:` (see docs/spec.md)", quoted[0])), location)
    } else if message.starts_with("duplicate field") && !quoted.is_empty() {
        let kind =
            SpecErrorKind::Rule(format!("key `{}` appears twice in {}", quoted[0], Parent(path.clone())));
        (kind, Some("keep one of them".to_owned()), serde_location)
    } else if message.starts_with("invalid ")
        || message.contains(" is too large")
        || message.starts_with("a count")
    {
        (SpecErrorKind::InvalidValue { key: path.to_string(), message }, None, serde_location)
    } else {
        (SpecErrorKind::Syntax(message), None, serde_location)
    };
    let error = SpecError::new(kind, path).at(location);
    match help {
        Some(help) => error.with_help(help),
        None => error,
    }
}

fn key_path(path: &serde_path_to_error::Path) -> KeyPath {
    use serde_path_to_error::Segment as S;
    let segments = path
        .iter()
        .filter_map(|segment| match segment {
            S::Seq { index } => Some(source::Segment::Index(*index)),
            S::Map { key } => Some(source::Segment::Key(key.clone())),
            S::Enum { variant } => Some(source::Segment::Key(variant.clone())),
            S::Unknown => None,
        })
        .collect::<Vec<_>>();
    KeyPath::from(segments)
}

/// serde_yaml's message without its `path: ` prefix and ` at line L column C` suffix, which the
/// diagnostic shows in its own way.
fn core_message(error: &serde_path_to_error::Error<serde_yaml::Error>) -> String {
    let mut message = error.inner().to_string();
    if let Some(l) = error.inner().location() {
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && !prefix.is_empty() && prefix != "." {
            message = rest.to_owned();
        }
    }
    // Rust's integer type names mean nothing to someone writing YAML.
    for ty in ["u8", "u16", "u32", "u64"] {
        message = message.replace(&format!("expected {ty}"), "expected a whole number (0 or more)");
    }
    message
}

fn backticked(message: &str) -> Vec<String> {
    message.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The candidate closest to `name`, if one is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= 3 && *distance < name.len().max(candidate.len()) / 2 + 1)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_not_strangers() {
        let keys = ["gpus_per_node", "max_nodes", "partition"];
        assert_eq!(closest("gpus_per_nod", keys).as_deref(), Some("gpus_per_node"));
        assert_eq!(closest("partiton", keys).as_deref(), Some("partition"));
        assert_eq!(closest("colour", keys), None);
    }

    #[test]
    fn backticked_words() {
        assert_eq!(backticked("unknown field `a`, expected `b` or `c`"), vec!["a", "b", "c"]);
    }
}
