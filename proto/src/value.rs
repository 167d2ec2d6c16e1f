//! The payload model shared by every serializer.
//!
//! JSON has no binary type, so WAMP sends bytes in JSON as a string made of a NUL character
//! followed by the base64 of the bytes. [`Value`] maps that string to [`Value::Bytes`] when
//! decoding JSON and back when encoding JSON, while MessagePack carries bytes natively. This is
//! what lets a JSON peer and a MessagePack peer exchange binary payloads unchanged.

use std::collections::BTreeMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A dictionary with string keys (WAMP `dict`), ordered by key.
pub type Dict = BTreeMap<String, Value>;

/// Any value a WAMP payload, option or detail can hold.
///
/// Integers are normalised: every non-negative integer is a [`Value::UInt`], every negative one
/// an [`Value::Int`], so the same number compares equal whichever serializer carried it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null` / msgpack nil.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    /// A floating point number.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Binary data (msgpack `bin`, JSON `"\u0000" + base64`).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A dictionary with string keys.
    Dict(Dict),
}

impl Value {
    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The number as `u64`, if this is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(n) => Some(*n),
            _ => None,
        }
    }

    /// The number as `i64`, if this is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::UInt(n) => i64::try_from(*n).ok(),
            _ => None,
        }
    }

    /// The number as `f64`, if this is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(n) => Some(*n as f64),
            Value::UInt(n) => Some(*n as f64),
            _ => None,
        }
    }

    /// The list, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The bytes, if this is binary data.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

macro_rules! from_unsigned {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self { Value::UInt(n as u64) }
        }
    )*};
}
macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(n: $t) -> Self {
                if n >= 0 { Value::UInt(n as u64) } else { Value::Int(n as i64) }
            }
        }
    )*};
}
from_unsigned!(u8, u16, u32, u64, usize);
from_signed!(i8, i16, i32, i64, isize);

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(o: Option<T>) -> Self {
        o.map_or(Value::Null, Into::into)
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(n) => s.serialize_i64(*n),
            Value::UInt(n) => s.serialize_u64(*n),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(st) => s.serialize_str(st),
            Value::Bytes(b) => {
                if s.is_human_readable() {
                    s.serialize_str(&encode_json_bytes(b))
                } else {
                    s.serialize_bytes(b)
                }
            }
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Dict(d) => serialize_dict(d, s),
        }
    }
}

/// Serializes a [`Dict`] as a map (used by message encoders too).
pub(crate) fn serialize_dict<S: Serializer>(d: &Dict, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(d.len()))?;
    for (k, v) in d {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The WAMP JSON form of binary data: NUL followed by standard base64.
pub fn encode_json_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(1 + b.len().div_ceil(3) * 4);
    out.push('\0');
    BASE64.encode_string(b, &mut out);
    out
}

/// Decodes the WAMP JSON form of binary data; `None` if `s` is not in that form.
pub fn decode_json_bytes(s: &str) -> Option<Vec<u8>> {
    let rest = s.strip_prefix('\0')?;
    BASE64.decode(rest).ok()
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let human_readable = d.is_human_readable();
        d.deserialize_any(ValueVisitor { human_readable })
    }
}

struct ValueVisitor {
    /// True for JSON: strings starting with NUL are binary data.
    human_readable: bool,
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WAMP value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        if self.human_readable {
            if let Some(b) = decode_json_bytes(v) {
                return Ok(Value::Bytes(b));
            }
        }
        Ok(Value::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        if self.human_readable {
            if let Some(b) = decode_json_bytes(&v) {
                return Ok(Value::Bytes(b));
            }
        }
        Ok(Value::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::List(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        visit_dict(map).map(Value::Dict)
    }
}

pub(crate) fn visit_dict<'de, A: MapAccess<'de>>(mut map: A) -> Result<Dict, A::Error> {
    let mut out = Dict::new();
    while let Some((crate::fields::Key(k), v)) = map.next_entry::<_, Value>()? {
        out.insert(k, v);
    }
    Ok(out)
}

/// Converts any serde-serializable value into a [`Value`].
///
/// Goes through JSON's data model, so byte slices become lists of numbers: build
/// [`Value::Bytes`] directly for binary data.
pub fn to_value<T: Serialize + ?Sized>(v: &T) -> Result<Value, serde_json::Error> {
    let json = serde_json::to_value(v)?;
    Ok(from_json(json))
}

/// Converts a [`Value`] into any deserializable type.
pub fn from_value<T: de::DeserializeOwned>(v: &Value) -> Result<T, serde_json::Error> {
    let json = serde_json::to_value(v)?;
    serde_json::from_value(json)
}

fn from_json(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(s) => match decode_json_bytes(&s) {
            Some(b) => Value::Bytes(b),
            None => Value::Str(s),
        },
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Dict(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bytes_round_trip() {
        let v = Value::Bytes(vec![0, 1, 255]);
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(s, "\"\\u0000AAH/\"");
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn msgpack_bytes_are_bin() {
        let v = Value::Bytes(vec![1, 2]);
        let b = rmp_serde::to_vec(&v).unwrap();
        assert_eq!(b, vec![0xc4, 2, 1, 2]);
        assert_eq!(rmp_serde::from_slice::<Value>(&b).unwrap(), v);
    }

    #[test]
    fn integers_are_normalised() {
        assert_eq!(serde_json::from_str::<Value>("5").unwrap(), Value::UInt(5));
        assert_eq!(serde_json::from_str::<Value>("-5").unwrap(), Value::Int(-5));
        assert_eq!(
            serde_json::from_str::<Value>("9007199254740992").unwrap(),
            Value::UInt(1 << 53)
        );
    }

    #[test]
    fn to_and_from_serde() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct P {
            a: i64,
            b: String,
        }
        let v = to_value(&P {
            a: -1,
            b: "x".into(),
        })
        .unwrap();
        assert_eq!(v.as_dict().unwrap()["a"], Value::Int(-1));
        assert_eq!(
            from_value::<P>(&v).unwrap(),
            P {
                a: -1,
                b: "x".into()
            }
        );
    }
}
