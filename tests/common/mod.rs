//! Helpers shared by the end-to-end tests.

use std::collections::BTreeMap;
use std::path::Path;

/// A CSV file (as `sweep aggregate` writes it) as maps from column to cell. Quoted cells may
/// hold commas, doubled quotes and line breaks (a failed point's reason carries a log tail).
pub fn csv_rows(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut records, mut record, mut cell, mut quoted) = (Vec::new(), Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => record.push(std::mem::take(&mut cell)),
            '\n' if !quoted => {
                record.push(std::mem::take(&mut cell));
                records.push(std::mem::take(&mut record));
            }
            c => cell.push(c),
        }
    }
    if !cell.is_empty() || !record.is_empty() {
        record.push(cell);
        records.push(record);
    }
    let mut records = records.into_iter();
    let header = records.next().expect("a header line");
    records.map(|r| header.iter().cloned().zip(r).collect()).collect()
}
