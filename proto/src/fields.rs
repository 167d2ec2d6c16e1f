//! Reading the fields of a message: each field type says what it expects in WAMP's words,
//! and [`Where`] records which message and field the decoder is in, so that a decode error
//! can name them (`CALL.Options: expected a dict, got a string "x"`).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::{Dict, Id, Uri};

/// The message (`"CALL"`) and field (`"Options"`) being read; empty while unknown.
#[derive(Debug, Default)]
pub(crate) struct Where {
    message: Cell<&'static str>,
    field: Cell<&'static str>,
}

impl Where {
    pub(crate) fn set_message(&self, name: &'static str) {
        self.message.set(name);
    }

    pub(crate) fn set_field(&self, name: &'static str) {
        self.field.set(name);
    }

    /// `CALL.Options`, `CALL`, or empty.
    pub(crate) fn describe(&self) -> String {
        match (self.message.get(), self.field.get()) {
            ("", "") => String::new(),
            ("", f) => f.to_owned(),
            (m, "") => m.to_owned(),
            (m, f) => format!("{m}.{f}"),
        }
    }
}

/// A message field of type `T`, read with `deserialize_any` so that every serializer reports
/// a wrong type the same way (serde's "invalid type: ..., expected ...", reworded later).
pub(crate) struct Field<T>(pub(crate) T);

struct Expect<T> {
    what: &'static str,
    _t: std::marker::PhantomData<T>,
}

fn expect<T>(what: &'static str) -> Expect<T> {
    Expect {
        what,
        _t: std::marker::PhantomData,
    }
}

impl<'de> Visitor<'de> for Expect<Dict> {
    type Value = Dict;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Dict, A::Error> {
        crate::value::visit_dict(map)
    }
}

impl<'de> Visitor<'de> for Expect<String> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_str<E>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

impl<'de> Visitor<'de> for Expect<Uri> {
    type Value = Uri;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_str<E>(self, v: &str) -> Result<Uri, E> {
        Ok(Uri::new(v))
    }
}

impl<'de> Visitor<'de> for Expect<u64> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}

impl<'de> Deserialize<'de> for Field<Dict> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(expect::<Dict>("a dict")).map(Field)
    }
}

impl<'de> Deserialize<'de> for Field<String> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(expect::<String>("a string")).map(Field)
    }
}

impl<'de> Deserialize<'de> for Field<Uri> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(expect::<Uri>("a URI string")).map(Field)
    }
}

impl<'de> Deserialize<'de> for Field<u64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(expect::<u64>("a non-negative integer"))
            .map(Field)
    }
}

impl<'de> Deserialize<'de> for Field<Id> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const ID: &str = "an id (an integer from 1 to 2^53)";
        let n = d.deserialize_any(expect::<u64>(ID))?;
        Id::new(n)
            .map(Field)
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Unsigned(n), &ID))
    }
}

/// A dict key: WAMP dicts have string keys.
pub(crate) struct Key(pub(crate) String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(expect::<String>("a string key (dict keys are strings)"))
            .map(Key)
    }
}
