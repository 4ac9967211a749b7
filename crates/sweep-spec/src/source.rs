//! Where things are in a spec file: key paths (`cluster.gpus_per_node`, `sweep.zip[0]`) and a map
//! from each path to the line and column of its key and its value.
//!
//! serde tells us *which* key a problem is about; only the YAML event stream knows *where* that key
//! stands. Validation therefore reports paths, and the map turns a path into a position at the
//! moment an error is shown.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step in a key path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// The path of a key or item in a spec, e.g. `sweep.exclude[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// Builds a path from dotted keys; `"cluster.gpus_per_node"` gives two key segments.
    pub fn keys(dotted: &str) -> Self {
        Self(dotted.split('.').map(|key| Segment::Key(key.to_owned())).collect())
    }

    #[must_use]
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Key(key.into()));
        next
    }

    #[must_use]
    pub fn index(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.0.push(Segment::Index(index));
        next
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The path without its last segment.
    pub fn parent(&self) -> Option<KeyPath> {
        let (_, head) = self.0.split_last()?;
        Some(KeyPath(head.to_vec()))
    }
}

impl From<Vec<Segment>> for KeyPath {
    fn from(segments: Vec<Segment>) -> Self {
        Self(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A position in the spec file, 1-based, with the width of the token found there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    /// Characters to underline; 1 when the token is a collection or unknown.
    pub width: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Positions of every key and value in one YAML document.
#[derive(Debug, Default)]
pub struct SourceMap {
    keys: HashMap<KeyPath, Location>,
    values: HashMap<KeyPath, Location>,
}

impl SourceMap {
    /// Builds the map; a document that does not parse gives an empty map (serde reports the
    /// syntax error with its own position).
    pub fn build(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut builder, false).is_err() {
            return Self::default();
        }
        builder.map
    }

    /// Where the key of `path` stands, or else its value.
    pub fn key(&self, path: &KeyPath) -> Option<Location> {
        self.keys.get(path).or_else(|| self.values.get(path)).copied()
    }

    /// Where the value of `path` stands, or else its key.
    pub fn value(&self, path: &KeyPath) -> Option<Location> {
        self.values.get(path).or_else(|| self.keys.get(path)).copied()
    }

    /// The nearest located ancestor of `path` (the path itself first).
    pub fn nearest(&self, path: &KeyPath, prefer_value: bool) -> Option<Location> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            let found = if prefer_value { self.value(&path) } else { self.key(&path) };
            if found.is_some() {
                return found;
            }
            current = path.parent();
        }
        None
    }
}

enum Frame {
    Map {
        path: KeyPath,
        pending_key: Option<String>,
    },
    Seq {
        path: KeyPath,
        next: usize,
    },
    /// A complex (non-scalar) mapping key: tracked only to keep the stack balanced.
    Ignored,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    map: SourceMap,
}

impl Builder {
    /// Claims the slot the next node fills: `Some(path)` for a value, `None` for a mapping key
    /// (recorded here) or an ignored node.
    fn claim(&mut self, key_text: Option<&str>, location: Location) -> Option<KeyPath> {
        match self.stack.last_mut() {
            None => Some(KeyPath::root()),
            Some(Frame::Ignored) => None,
            Some(Frame::Seq { path, next }) => {
                let item = path.index(*next);
                *next += 1;
                Some(item)
            }
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some(key) => Some(path.key(key)),
                None => {
                    // This node is a key.
                    let key = key_text.unwrap_or("").to_owned();
                    self.map.keys.insert(path.key(key.clone()), location);
                    *pending_key = Some(key);
                    None
                }
            },
        }
    }
}

fn location(mark: Marker, width: usize) -> Location {
    Location { line: mark.line(), column: mark.col() + 1, width: width.max(1) }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, style, ..) => {
                let quoted = !matches!(style, yaml_rust2::scanner::TScalarStyle::Plain);
                let width = text.chars().count() + if quoted { 2 } else { 0 };
                let loc = location(mark, if text.contains('\n') { 1 } else { width });
                if let Some(path) = self.claim(Some(&text), loc) {
                    self.map.values.insert(path, loc);
                }
            }
            Event::Alias(_) => {
                if let Some(path) = self.claim(Some("*alias"), location(mark, 1)) {
                    self.map.values.insert(path, location(mark, 1));
                }
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(event, Event::MappingStart(..));
                if let Some(Frame::Map { pending_key: pending @ None, .. }) = self.stack.last_mut() {
                    // A complex key: its value is filed under a placeholder key.
                    *pending = Some("?".to_owned());
                    self.stack.push(Frame::Ignored);
                    return;
                }
                let frame = match self.claim(None, location(mark, 1)) {
                    Some(path) => {
                        self.map.values.insert(path.clone(), location(mark, 1));
                        if is_map {
                            Frame::Map { path, pending_key: None }
                        } else {
                            Frame::Seq { path, next: 0 }
                        }
                    }
                    None => Frame::Ignored,
                };
                self.stack.push(frame);
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_values_and_items() {
        let text = "name: x\ncluster:\n  gpus_per_node: 4\nsweep:\n  zip:\n    - [gen.tp, gen.batch]\n";
        let map = SourceMap::build(text);
        let at = |loc: Option<Location>| loc.map(|l| (l.line, l.column, l.width));
        assert_eq!(at(map.key(&KeyPath::keys("cluster.gpus_per_node"))), Some((3, 3, 13)));
        assert_eq!(at(map.value(&KeyPath::keys("cluster.gpus_per_node"))), Some((3, 18, 1)));
        let item = KeyPath::keys("sweep.zip").index(0).index(1);
        assert_eq!(at(map.value(&item)), Some((6, 16, 9)));
        assert_eq!(item.to_string(), "sweep.zip[0][1]");
    }

    #[test]
    fn nearest_falls_back_to_the_parent() {
        let map = SourceMap::build("cluster:\n  packing: spread\n");
        let missing = KeyPath::keys("cluster.gpus_per_node");
        assert_eq!(map.nearest(&missing, false).map(|l| l.line), Some(1));
    }

    #[test]
    fn complex_keys_do_not_derail_the_map() {
        let map = SourceMap::build("? [a, b]\n: 1\nafter: 2\n");
        assert_eq!(map.key(&KeyPath::keys("after")).map(|l| l.line), Some(3));
    }
}
