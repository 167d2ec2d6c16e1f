//! Decoder error texts in WAMP's words: serde_json, rmp-serde and minicbor each phrase the
//! same problem their own way ("invalid type: newtype struct, expected a map", "IO error while
//! reading marker", "end of input bytes at position 7"); a user reads one phrasing.

use crate::{Serializer, Value};

/// What every decoder says when a message is nested deeper than the limit.
pub(crate) const TOO_DEEP: &str =
    "nested too deeply (at most 127 lists and dicts inside one another, the message included)";
/// What every decoder says about bytes after the message.
pub(crate) const TRAILING: &str = "unexpected bytes after the end of the message";
/// What every decoder says when the input stops inside the message.
const TRUNCATED: &str = "the message ends early (truncated)";

/// Rewords one decoder error text (`raw`) from `ser`.
pub(crate) fn reword(ser: Serializer, raw: &str) -> String {
    let raw = raw.strip_prefix("decode error: ").unwrap_or(raw);
    // serde_json appends the position: keep it, after the reworded text.
    let (text, position) = match raw.rfind(" at line ") {
        Some(at) if ser == Serializer::Json => (&raw[..at], Some(&raw[at + 1..])),
        _ => (raw, None),
    };
    let said = plain(ser, text);
    match position {
        Some(p) => format!("{said} ({p})"),
        None => said,
    }
}

fn plain(ser: Serializer, text: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = text
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return format!("expected {}, got {}", expected, unexpected(ser, got));
        }
    }
    let starts = |p: &str| text.starts_with(p);
    if starts("IO error while reading")
        || starts("EOF while parsing")
        || starts("end of input bytes")
        || text == "truncated CBOR item"
    {
        return TRUNCATED.to_owned();
    }
    if starts("depth limit exceeded")
        || starts("recursion limit exceeded")
        || text.ends_with("nesting too deep")
    {
        return TOO_DEEP.to_owned();
    }
    if starts("trailing ") {
        return TRAILING.to_owned();
    }
    if let Some(marker) = text.strip_prefix("wrong msgpack marker ") {
        return format!("not valid MessagePack (unexpected marker {marker})");
    }
    if starts("string found to be invalid utf8") || starts("invalid utf-8") {
        return "a string is not valid UTF-8".to_owned();
    }
    if starts("numeric cast found out of range") {
        return "a number is out of range".to_owned();
    }
    text.to_owned()
}

/// serde's description of an unexpected value, in WAMP's type names.
fn unexpected(ser: Serializer, got: &str) -> String {
    match got {
        "map" => "a dict".into(),
        "sequence" => "a list".into(),
        "unit" | "Option value" => "null".into(),
        "byte array" => "binary data".into(),
        "newtype struct" if ser == Serializer::MsgPack => {
            "a MessagePack ext value (WAMP has no ext types)".into()
        }
        _ => {
            for (serde, wamp) in [
                ("integer ", "the integer "),
                ("floating point ", "the number "),
                ("boolean ", ""),
                ("string ", "the string "),
            ] {
                if let Some(v) = got.strip_prefix(serde) {
                    return format!("{wamp}{}", v.trim_matches('`'));
                }
            }
            got.to_owned()
        }
    }
}

/// A value as the reworded serde texts describe it (`the integer 5`, `a list`).
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => format!("the integer {n}"),
        Value::UInt(n) => format!("the integer {n}"),
        Value::Float(f) => format!("the number {f}"),
        Value::Str(s) => format!("the string {s:?}"),
        Value::Bytes(_) => "binary data".into(),
        Value::List(_) => "a list".into(),
        Value::Dict(_) => "a dict".into(),
    }
}

/// At most this many characters of a reason go to the peer (a refused string may be long).
const MAX_REASON: usize = 300;

/// Cuts `text` to [`MAX_REASON`] characters.
pub(crate) fn shorten(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_REASON) {
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_type_errors_read_as_wamp_types() {
        let m = reword(
            Serializer::MsgPack,
            "invalid type: newtype struct, expected a dict",
        );
        assert_eq!(
            m,
            "expected a dict, got a MessagePack ext value (WAMP has no ext types)"
        );
        let j = reword(
            Serializer::Json,
            "invalid type: string \"x\", expected a dict at line 1 column 11",
        );
        assert_eq!(
            j,
            "expected a dict, got the string \"x\" (at line 1 column 11)"
        );
        assert_eq!(
            reword(Serializer::Cbor, "decode error: truncated CBOR item"),
            TRUNCATED
        );
    }
}
