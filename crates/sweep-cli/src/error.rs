//! The command's errors, each with its exit code and its rendering for stderr.

use std::path::PathBuf;

use sweep_plan::PlanError;
use sweep_spec::{SourceMap, SpecError};

use crate::diagnostic::Diagnostic;
use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spec is invalid.
    #[error("{error}")]
    Spec { file: String, text: String, error: Box<SpecError> },
    /// The spec is valid but cannot be planned.
    #[error("{error}")]
    Plan { file: String, text: String, source_map: Box<SourceMap>, error: Box<PlanError> },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl Error {
    pub fn exit(&self) -> Exit {
        match self {
            Error::Read { .. } | Error::Output(_) => Exit::Io,
            Error::Spec { .. } => Exit::InvalidSpec,
            Error::Plan { .. } => Exit::Unplannable,
        }
    }

    pub fn render(&self) -> String {
        match self {
            Error::Spec { file, text, error } => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.location,
                notes: Vec::new(),
                help: error.help.clone(),
            }
            .render(),
            Error::Plan { file, text, source_map, error } => Diagnostic {
                severity: "error",
                message: error.to_string(),
                file,
                source: Some(text),
                location: error.path().and_then(|path| source_map.nearest(&path, true)),
                notes: Vec::new(),
                help: error.help(),
            }
            .render(),
            Error::Read { .. } | Error::Output(_) => format!("error: {self}\n"),
        }
    }
}
