//! Naming the field at fault when a value of named fields does not decode.
//!
//! Decoders say *what* is wrong ("invalid type: floating point `1.5`,
//! expected u64") but rarely *where*: MessagePack's say nothing of the place,
//! JSON's only a line and column. On the error path only, the value is read
//! again as a loose tree, written out as JSON with one top-level field per
//! line, and decoded once more: the line of that error is the field's.

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::Codec;

/// Any value either codec can hold.
enum Loose {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Bytes(Vec<u8>),
    Seq(Vec<Loose>),
    Map(Vec<(Loose, Loose)>),
}

/// `field `name`: <what is wrong>` for the top-level field of `bytes` that
/// keeps it from decoding as `T`, or `None` when no single field is to blame
/// (a missing field, which decoders name themselves; bytes that are no map).
pub(super) fn blame<T: DeserializeOwned>(codec: Codec, bytes: &[u8]) -> Option<String> {
    let Loose::Map(fields) = codec.decode::<Loose>(bytes).ok()? else {
        return None;
    };
    let mut names = Vec::with_capacity(fields.len());
    let mut text = String::from("{");
    for (key, value) in &fields {
        let Loose::Str(name) = key else {
            return None;
        };
        if !names.is_empty() {
            text.push(',');
        }
        // Compact JSON never spans lines: field i sits on line i + 2.
        text.push('\n');
        text.push_str(&serde_json::to_string(name).ok()?);
        text.push(':');
        text.push_str(&serde_json::to_string(value).ok()?);
        names.push(name);
    }
    text.push_str("\n}");
    let err = serde_json::from_str::<T>(&text).err()?;
    let name = names.get(err.line().checked_sub(2)?)?;
    let position = format!(" at line {} column {}", err.line(), err.column());
    let message = err.to_string();
    let message = message.strip_suffix(&position).unwrap_or(&message);
    Some(format!("field `{name}`: {message}"))
}

impl Serialize for Loose {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Loose::Null => s.serialize_unit(),
            Loose::Bool(b) => s.serialize_bool(*b),
            Loose::I64(n) => s.serialize_i64(*n),
            Loose::U64(n) => s.serialize_u64(*n),
            Loose::F64(n) => s.serialize_f64(*n),
            Loose::Str(t) => s.serialize_str(t),
            // JSON has no bytes: an array of numbers, as serde writes them.
            Loose::Bytes(b) => b.serialize(s),
            Loose::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Loose::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::I64(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Loose, E> {
        Ok(Loose::U64(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::F64(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Loose, E> {
        Ok(Loose::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Loose, E> {
        Ok(Loose::Bytes(v))
    }
    fn visit_none<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_unit<E>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_newtype_struct<D: de::Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        Loose::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Loose::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Loose::Map(entries))
    }
}
