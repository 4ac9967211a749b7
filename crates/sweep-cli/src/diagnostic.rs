//! Errors and warnings as users read them: what is wrong, the file position, the offending line
//! with a caret under the key, and what to do.
//!
//! ```text
//! error: unknown key `gpus_per_nod` in `cluster`
//!   --> sweeps/bad.yaml:4:3
//!    |
//!  4 |   gpus_per_nod: 4
//!    |   ^^^^^^^^^^^^
//!    = help: did you mean `gpus_per_node`?
//! ```

use std::fmt::Write as _;

use sweep_spec::Location;

pub struct Diagnostic<'a> {
    pub severity: &'static str,
    pub message: String,
    pub file: &'a str,
    pub source: Option<&'a str>,
    pub location: Option<Location>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

impl Diagnostic<'_> {
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}\n", self.severity, self.message);
        match self.location {
            None => {
                let _ = writeln!(out, "  --> {}", self.file);
            }
            Some(location) => {
                let number = location.line.to_string();
                let pad = " ".repeat(number.len());
                let _ = writeln!(out, "{pad}--> {}:{}:{}", self.file, location.line, location.column);
                let line = self.source.and_then(|s| s.lines().nth(location.line.saturating_sub(1)));
                if let Some(line) = line {
                    let line = line.replace('\t', " ");
                    let indent = " ".repeat(location.column.saturating_sub(1));
                    let room = line.chars().count().saturating_sub(location.column - 1).max(1);
                    let carets = "^".repeat(location.width.min(room));
                    let _ = writeln!(out, "{pad} |");
                    let _ = writeln!(out, "{number} | {line}");
                    let _ = writeln!(out, "{pad} | {indent}{carets}");
                }
            }
        }
        let pad = " ".repeat(self.location.map_or(1, |l| l.line.to_string().len()));
        for note in &self.notes {
            let _ = writeln!(out, "{pad} = note: {note}");
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_sits_under_the_located_token() {
        let diagnostic = Diagnostic {
            severity: "error",
            message: "unknown key `gpus_per_nod` in `cluster`".into(),
            file: "a.yaml",
            source: Some("cluster:\n  gpus_per_nod: 4\n"),
            location: Some(Location { line: 2, column: 3, width: 12 }),
            notes: vec![],
            help: Some("did you mean `gpus_per_node`?".into()),
        };
        let expected = "error: unknown key `gpus_per_nod` in `cluster`\n \
                        --> a.yaml:2:3\n  |\n2 |   gpus_per_nod: 4\n  |   ^^^^^^^^^^^^\n  \
                        = help: did you mean `gpus_per_node`?\n";
        assert_eq!(diagnostic.render(), expected);
    }
}
