//! What the servers saw: their Prometheus `/metrics`, parsed ([`parse`]), gathered over a point
//! and summed up ([`summary`]), and read as the measures of the results table through a
//! per-engine mapping ([`mapping`]). Pure: the runner scrapes, this crate only reads text.

pub mod mapping;
pub mod parse;
pub mod summary;

pub use parse::{parse, parse_gauges, Exposition, Kind, ParseError, Sample};
pub use summary::{Collector, Phase, PointSummary};
