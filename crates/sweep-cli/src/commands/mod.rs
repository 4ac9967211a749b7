//! One module per subcommand: each parses nothing (clap did), calls the library that does the
//! work, and prints what it returns.

pub mod aggregate;
pub mod check;
pub mod ci;
pub mod compare;
pub mod explore;
pub mod history;
pub mod plan;
pub mod render;
pub mod submit;
