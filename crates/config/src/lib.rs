//! Configuration loading for meshtrace, compatible with `otelcol` configs.
//!
//! A config goes through these steps, each in its own module:
//!
//! 1. [`parse_yaml`] (`parse.rs`) turns each file into a [`Value`] tree
//!    (`value.rs`), keeping key order.
//! 2. [`expand`] (`expand.rs`) resolves `${env:VAR}`, `${VAR}`,
//!    `${env:VAR:-default}` and `$$` in string values, as otelcol does.
//! 3. [`merge`] (`merge.rs`) combines several `--config` files: maps merge,
//!    everything else is replaced.
//! 4. [`apply_set`] (`set.rs`) applies `--set key=value` overrides.
//!
//! [`load`] (`load.rs`) runs all four. Components then turn their own
//! subtree into a typed config with [`from_value`] (`de/`), a serde
//! deserializer that reports every error with its dotted key path and all
//! unknown keys at once. Config structs use the helper types
//! [`Duration`] (`duration.rs`, Go duration strings) and
//! [`ListenAddress`] (`endpoint.rs`, `host:port`).
//!
//! Start reading at [`load`] and [`from_value`]. Errors are
//! [`ConfigError`] / [`ConfigErrors`] (`error.rs`).

mod de;
mod duration;
mod endpoint;
mod error;
mod expand;
mod load;
mod merge;
mod parse;
mod set;
mod value;
mod value_serde;

pub use de::{from_value, some_if_present};
pub use duration::{Duration, parse_duration};
pub use endpoint::{ListenAddress, parse_endpoint};
pub use error::{ConfigError, ConfigErrors};
pub use expand::expand;
pub use load::{Loaded, load};
pub use merge::merge;
pub use parse::parse_yaml;
pub use set::apply_set;
pub use value::{Map, Value};
