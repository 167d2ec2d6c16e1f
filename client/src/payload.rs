//! Payload helpers shared by calls, results, invocations, events and publications.
//!
//! The typed (serde) rules, in one place:
//! - `args_ser(&T)`: `T` must serialize to a list (a tuple, array or `Vec`); its items become
//!   the positional arguments. `(x,)` sends a single argument.
//! - `kwargs_ser(&T)`: `T` must serialize to a map (a struct or map); its entries become the
//!   keyword arguments.
//! - `decode::<T>()`: `T` is read from the first positional argument; when there are no
//!   positional arguments, from the keyword arguments as a map; when there is neither, from
//!   `null` (so `()` and `Option<_>` work).
//! - `decode_args::<T>()` reads the whole positional list (e.g. as a tuple);
//!   `decode_kwargs::<T>()` the keyword arguments (e.g. as a struct).

use serde::de::DeserializeOwned;
use serde::Serialize;
use wamp_proto::{from_value, to_value, Dict, Payload, Value};

/// Arguments collected by a builder; the first conversion error is kept for later.
#[derive(Debug, Default)]
pub(crate) struct PayloadBuf {
    pub(crate) args: Vec<Value>,
    pub(crate) kwargs: Dict,
    pub(crate) error: Option<String>,
}

impl PayloadBuf {
    /// The wire payload, or the first conversion error.
    pub(crate) fn build(self) -> Result<Payload, String> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(to_payload(self.args, self.kwargs)),
        }
    }

    pub(crate) fn fail(&mut self, e: String) {
        self.error.get_or_insert(e);
    }
}

/// Builds a wire payload, leaving out an empty tail (no `[]`, no `{}` without kwargs).
pub(crate) fn to_payload(args: Vec<Value>, kwargs: Dict) -> Payload {
    match (args.is_empty(), kwargs.is_empty()) {
        (true, true) => Payload::default(),
        (false, true) => Payload::args(args),
        (_, false) => Payload {
            args: Some(args),
            kwargs: Some(kwargs),
            raw: None,
        },
    }
}

/// Serializes `v`, which must become a list, into positional arguments.
pub(crate) fn ser_args<T: Serialize + ?Sized>(v: &T) -> Result<Vec<Value>, String> {
    match to_value(v).map_err(|e| e.to_string())? {
        Value::List(l) => Ok(l),
        other => Err(format!(
            "positional arguments must serialize to a list (use a tuple such as (x,)), got {}",
            kind(&other)
        )),
    }
}

/// Serializes `v`, which must become a map, into keyword arguments.
pub(crate) fn ser_kwargs<T: Serialize + ?Sized>(v: &T) -> Result<Dict, String> {
    match to_value(v).map_err(|e| e.to_string())? {
        Value::Dict(d) => Ok(d),
        other => Err(format!(
            "keyword arguments must serialize to a map (a struct or map), got {}",
            kind(&other)
        )),
    }
}

/// Serializes `v` as a single value.
pub(crate) fn ser_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, String> {
    to_value(v).map_err(|e| e.to_string())
}

/// The `decode` rule: first positional argument, else kwargs as a map, else `null`.
pub(crate) fn decode<T: DeserializeOwned>(args: &[Value], kwargs: &Dict) -> Result<T, String> {
    let r = match args.first() {
        Some(first) => from_value(first),
        None if !kwargs.is_empty() => from_value(&Value::Dict(kwargs.clone())),
        None => from_value(&Value::Null),
    };
    r.map_err(|e| e.to_string())
}

/// Decodes the whole positional list.
pub(crate) fn decode_args<T: DeserializeOwned>(args: &[Value]) -> Result<T, String> {
    from_value(&Value::List(args.to_vec())).map_err(|e| e.to_string())
}

/// Decodes the keyword arguments as a map.
pub(crate) fn decode_kwargs<T: DeserializeOwned>(kwargs: &Dict) -> Result<T, String> {
    from_value(&Value::Dict(kwargs.clone())).map_err(|e| e.to_string())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::UInt(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::List(_) => "a list",
        Value::Dict(_) => "a map",
    }
}

/// Generates the payload setters shared by builders that have a `payload: PayloadBuf` field.
macro_rules! payload_methods {
    () => {
        /// Appends one positional argument.
        pub fn arg(mut self, value: impl Into<$crate::Value>) -> Self {
            self.payload.args.push(value.into());
            self
        }

        /// Sets the positional arguments, replacing any set before.
        pub fn args<I, V>(mut self, args: I) -> Self
        where
            I: IntoIterator<Item = V>,
            V: Into<$crate::Value>,
        {
            self.payload.args = args.into_iter().map(Into::into).collect();
            self
        }

        /// Sets one keyword argument.
        pub fn kwarg(mut self, key: impl Into<String>, value: impl Into<$crate::Value>) -> Self {
            self.payload.kwargs.insert(key.into(), value.into());
            self
        }

        /// Sets the keyword arguments, replacing any set before.
        pub fn kwargs<I, K, V>(mut self, kwargs: I) -> Self
        where
            I: IntoIterator<Item = (K, V)>,
            K: Into<String>,
            V: Into<$crate::Value>,
        {
            self.payload.kwargs = kwargs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect();
            self
        }

        /// Sets the positional arguments from a value that serializes to a list (a tuple,
        /// array or `Vec`); anything else fails the request with an invalid-payload error.
        pub fn args_ser<T: serde::Serialize + ?Sized>(mut self, args: &T) -> Self {
            match $crate::payload::ser_args(args) {
                Ok(a) => self.payload.args = a,
                Err(e) => self.payload.fail(e),
            }
            self
        }

        /// Sets the keyword arguments from a value that serializes to a map (a struct or
        /// map); anything else fails the request with an invalid-payload error.
        pub fn kwargs_ser<T: serde::Serialize + ?Sized>(mut self, kwargs: &T) -> Self {
            match $crate::payload::ser_kwargs(kwargs) {
                Ok(k) => self.payload.kwargs = k,
                Err(e) => self.payload.fail(e),
            }
            self
        }
    };
}
pub(crate) use payload_methods;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Add {
        a: i64,
        b: i64,
    }

    #[test]
    fn empty_tail_is_left_out() {
        assert!(to_payload(vec![], Dict::new()).is_empty());
        let p = to_payload(vec![Value::from(1)], Dict::new());
        assert_eq!(p.args.map(|a| a.len()), Some(1));
        assert_eq!(p.kwargs, None);
        let p = to_payload(vec![], Dict::from([("a".into(), Value::from(1))]));
        assert_eq!(p.args, Some(vec![]));
        assert!(p.kwargs.is_some());
    }

    #[test]
    fn ser_rules() {
        assert_eq!(
            ser_args(&(1, "x")).unwrap(),
            vec![Value::from(1), Value::from("x")]
        );
        assert_eq!(ser_args(&[1, 2]).unwrap().len(), 2);
        assert!(ser_args(&5).is_err());
        assert!(ser_args(&Add { a: 1, b: 2 }).is_err());
        let k = ser_kwargs(&Add { a: 1, b: -2 }).unwrap();
        assert_eq!(k["b"], Value::Int(-2));
        assert!(ser_kwargs(&(1, 2)).is_err());
    }

    #[test]
    fn decode_rule() {
        let kw = Dict::from([("a".into(), Value::from(1)), ("b".into(), Value::from(2))]);
        // first positional argument wins
        assert_eq!(
            decode::<i64>(&[Value::from(5), Value::from(6)], &kw).unwrap(),
            5
        );
        // else kwargs as a map
        assert_eq!(decode::<Add>(&[], &kw).unwrap(), Add { a: 1, b: 2 });
        // else null
        decode::<()>(&[], &Dict::new()).unwrap();
        assert_eq!(decode::<Option<i64>>(&[], &Dict::new()).unwrap(), None);
        assert!(decode::<String>(&[Value::from(1)], &Dict::new()).is_err());
        // whole lists and maps
        assert_eq!(
            decode_args::<(i64, String)>(&[Value::from(1), Value::from("s")]).unwrap(),
            (1, "s".to_owned())
        );
        assert_eq!(decode_kwargs::<Add>(&kw).unwrap(), Add { a: 1, b: 2 });
    }

    #[test]
    fn first_error_is_kept() {
        let mut b = PayloadBuf::default();
        b.fail("one".into());
        b.fail("two".into());
        assert_eq!(b.build().unwrap_err(), "one");
    }
}
