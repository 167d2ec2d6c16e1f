//! WAMP values to and from the JSON the command line reads and prints.
//!
//! Binary values have no JSON form: they are printed as `{"$bytes": "<hex>"}` (as the
//! interop peers print them), and an argument written that way is sent as binary.

use anyhow::{bail, Result};
use serde_json::{Map, Number, Value as Json};
use wamp_client::{Dict, Value};

/// The key of the object that stands for a binary value.
const BYTES_KEY: &str = "$bytes";

/// One command-line value: JSON when it parses as JSON, otherwise the text as a string
/// (`5` is a number, `"5"` and `hello` are strings, `[1,2]` is a list).
pub(crate) fn parse_arg(text: &str) -> Value {
    match serde_json::from_str::<Json>(text) {
        Ok(j) => from_json(j),
        Err(_) => Value::Str(text.to_owned()),
    }
}

/// Positional arguments, each by [`parse_arg`].
pub(crate) fn parse_args(texts: &[String]) -> Vec<Value> {
    texts.iter().map(|t| parse_arg(t)).collect()
}

/// Keyword arguments from `key=value` pairs (the value by [`parse_arg`]; a later key wins).
pub(crate) fn parse_kwargs(pairs: &[String]) -> Result<Dict> {
    let mut kwargs = Dict::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                kwargs.insert(k.to_owned(), parse_arg(v));
            }
            _ => bail!("--kw wants key=value, got {pair:?}"),
        }
    }
    Ok(kwargs)
}

/// A JSON value as a WAMP value (`{"$bytes": hex}` becomes binary).
pub(crate) fn from_json(j: Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::UInt(u),
            (None, Some(i)) => Value::Int(i),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::Str(s),
        Json::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        Json::Object(o) => {
            if let Some(bytes) = bytes_object(&o) {
                return Value::Bytes(bytes);
            }
            Value::Dict(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

/// The bytes of `{"$bytes": "<hex>"}`, if `o` is exactly that.
fn bytes_object(o: &Map<String, Json>) -> Option<Vec<u8>> {
    match o.get(BYTES_KEY) {
        Some(Json::String(h)) if o.len() == 1 => hex::decode(h).ok(),
        _ => None,
    }
}

/// A WAMP value as JSON (binary as `{"$bytes": hex}`; a non-finite float as `null`).
pub(crate) fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Bytes(b) => {
            let mut o = Map::new();
            o.insert(BYTES_KEY.into(), Json::String(hex::encode(b)));
            Json::Object(o)
        }
        Value::List(l) => Json::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => dict_json(d),
    }
}

/// A dictionary as a JSON object.
pub(crate) fn dict_json(d: &Dict) -> Json {
    Json::Object(d.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
}

/// A list as a JSON array.
pub(crate) fn list_json(l: &[Value]) -> Json {
    Json::Array(l.iter().map(to_json).collect())
}

/// `{"args": [...], "kwargs": {...}}`, the shape of every payload the tool prints.
pub(crate) fn payload_json(args: &[Value], kwargs: &Dict) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("args".into(), list_json(args));
    o.insert("kwargs".into(), dict_json(kwargs));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_json_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_arg("2"), Value::UInt(2));
        assert_eq!(parse_arg("-3"), Value::Int(-3));
        assert_eq!(parse_arg("2.5"), Value::Float(2.5));
        assert_eq!(parse_arg("true"), Value::Bool(true));
        assert_eq!(parse_arg("null"), Value::Null);
        assert_eq!(parse_arg("hello"), Value::from("hello"));
        assert_eq!(parse_arg("\"5\""), Value::from("5"));
        assert_eq!(parse_arg(""), Value::from(""));
        assert_eq!(parse_arg("{not json"), Value::from("{not json"));
        assert_eq!(
            parse_arg(r#"[1, "a", {"b": null}]"#),
            Value::List(vec![
                Value::UInt(1),
                Value::from("a"),
                Value::Dict(Dict::from([("b".into(), Value::Null)])),
            ])
        );
        assert_eq!(
            parse_arg(r#"{"$bytes": "00ff"}"#),
            Value::Bytes(vec![0, 255])
        );
        // Not exactly a bytes object: an ordinary dictionary.
        assert!(matches!(parse_arg(r#"{"$bytes": "zz"}"#), Value::Dict(_)));
        assert!(matches!(
            parse_arg(r#"{"$bytes": "00", "x": 1}"#),
            Value::Dict(_)
        ));
    }

    #[test]
    fn keyword_arguments() {
        let kw = parse_kwargs(&["name=joe".into(), "n=5".into(), "eq=a=b".into()]).unwrap();
        assert_eq!(kw["name"], Value::from("joe"));
        assert_eq!(kw["n"], Value::UInt(5));
        assert_eq!(kw["eq"], Value::from("a=b"));
        assert!(parse_kwargs(&["novalue".into()]).is_err());
        assert!(parse_kwargs(&["=v".into()]).is_err());
        assert_eq!(parse_kwargs(&["e=".into()]).unwrap()["e"], Value::from(""));
    }

    #[test]
    fn values_print_as_json_with_bytes_in_hex() {
        let v = Value::List(vec![
            Value::Bytes(vec![0, 1, 255]),
            Value::Float(f64::NAN),
            Value::Int(-1),
            Value::Dict(Dict::from([("k".into(), Value::UInt(7))])),
        ]);
        assert_eq!(
            to_json(&v).to_string(),
            r#"[{"$bytes":"0001ff"},null,-1,{"k":7}]"#
        );
        assert_eq!(
            from_json(to_json(&Value::Bytes(vec![9]))),
            Value::Bytes(vec![9])
        );
        let p = payload_json(&[Value::UInt(5)], &Dict::new());
        assert_eq!(Json::Object(p).to_string(), r#"{"args":[5],"kwargs":{}}"#);
    }
}
