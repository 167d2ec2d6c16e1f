//! Typed access to the Options/Details keys the router and client act on.
//!
//! Unknown keys are ignored, as the protocol requires.

use crate::{Dict, Value};

/// Reads a boolean option; a missing key yields `default`, a non-boolean value `Err(key)`.
pub fn bool_opt(d: &Dict, key: &'static str, default: bool) -> Result<bool, &'static str> {
    match d.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(key),
    }
}

/// Reads a string option; a missing key yields `None`, a non-string value `Err(key)`.
pub fn str_opt<'a>(d: &'a Dict, key: &'static str) -> Result<Option<&'a str>, &'static str> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(key),
    }
}

/// Builds a [`Dict`] from key/value pairs.
pub fn dict<const N: usize>(pairs: [(&str, Value); N]) -> Dict {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
