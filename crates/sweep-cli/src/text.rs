//! Plain-text tables for people (stdout of `aggregate`, `history`).

/// `lines` (the first is the header) in aligned columns two spaces apart: the first `text`
/// columns left-aligned, the rest (numbers) right-aligned.
pub fn aligned(lines: &[Vec<String>], text: usize) -> String {
    let mut widths = vec![0usize; lines.first().map_or(0, Vec::len)];
    for line in lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in lines {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(k, (cell, &w))| if k < text { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A Unix time as `2026-12-06 09:30 UTC`.
pub fn utc(secs: f64) -> String {
    let (y, mo, d, h, mi, _) = sweep_folder::file::civil_utc(secs as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}
