//! One module per subcommand, and the sweep folder's manifest they share.

pub mod aggregate;
pub mod check;
pub mod local;
pub mod manifest;
pub mod plan;
pub mod render;
pub mod submit;
