//! How bodies and envelopes are encoded.
//!
//! JSON is the default because a program in any language — or a person with
//! `redis-cli` — can read and write it. MessagePack is smaller and faster to
//! parse; it is chosen per client and a server answers in the codec of each
//! request, so both can share one service.

use serde::{Serialize, de::DeserializeOwned};

mod fields;

/// An encoding for envelopes and the bodies inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// JSON (the default). A body is embedded as a JSON value.
    #[default]
    Json,
    /// MessagePack with named fields. A body is embedded as a `bin` value
    /// holding its own MessagePack encoding.
    MessagePack,
}

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec} {op} failed: {message}")]
pub struct CodecError {
    codec: &'static str,
    op: &'static str,
    message: String,
}

impl CodecError {
    pub(crate) fn new(codec: Codec, op: &'static str, message: impl ToString) -> Self {
        Self {
            codec: codec.name(),
            op,
            message: message.to_string(),
        }
    }

    /// What went wrong, as the decoder put it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Codec {
    /// The codec's name as written in docs and headers: `json` or `msgpack`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MessagePack => "msgpack",
        }
    }

    /// Encodes a value.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        match self {
            Codec::Json => {
                serde_json::to_vec(value).map_err(|e| CodecError::new(self, "encode", e))
            }
            Codec::MessagePack => {
                rmp_serde::to_vec_named(value).map_err(|e| CodecError::new(self, "encode", e))
            }
        }
    }

    /// Decodes a value.
    ///
    /// ```
    /// use rota_core::Codec;
    /// let bytes = Codec::MessagePack.encode(&vec![1u32, 2]).unwrap();
    /// let back: Vec<u32> = Codec::MessagePack.decode(&bytes).unwrap();
    /// assert_eq!(back, [1, 2]);
    /// ```
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        match self {
            Codec::Json => {
                serde_json::from_slice(bytes).map_err(|e| CodecError::new(self, "decode", e))
            }
            Codec::MessagePack => {
                rmp_serde::from_slice(bytes).map_err(|e| CodecError::new(self, "decode", e))
            }
        }
    }

    /// Decodes a value written as an object (a map) of named fields, such as
    /// an envelope or a method's arguments. Like [`decode`](Codec::decode),
    /// but an error names the field at fault, in both codecs: `field
    /// `month`: invalid type: string "eleven", expected u32`. (Naming it
    /// costs a second look at the bytes, on the error path only.)
    ///
    /// ```
    /// use rota_core::Codec;
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Invoice { month: u32 }
    /// let bytes = Codec::MessagePack.encode(&serde_json::json!({"month": "eleven"})).unwrap();
    /// let err = Codec::MessagePack.decode_fields::<Invoice>(&bytes).unwrap_err();
    /// assert!(err.message().starts_with("field `month`: invalid type"), "{err}");
    /// ```
    pub fn decode_fields<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        self.decode(bytes)
            .map_err(|e| match fields::blame::<T>(self, bytes) {
                Some(message) => CodecError::new(self, "decode", message),
                None => e,
            })
    }

    /// Tells an envelope's codec from its first byte: `{` (after white space)
    /// is JSON, a MessagePack map marker is MessagePack.
    pub fn detect(bytes: &[u8]) -> Option<Codec> {
        match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
            b'{' => Some(Codec::Json),
            0x80..=0x8f | 0xde | 0xdf => Some(Codec::MessagePack),
            _ => None,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_tells_json_from_msgpack_and_garbage() {
        assert_eq!(Codec::detect(b"  {\"a\":1}"), Some(Codec::Json));
        let mp = Codec::MessagePack
            .encode(&serde_json::json!({"a": 1}))
            .unwrap();
        assert_eq!(Codec::detect(&mp), Some(Codec::MessagePack));
        assert_eq!(Codec::detect(b"\x00\x01garbage"), None);
        assert_eq!(Codec::detect(b""), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Args {
        name: String,
        month: u32,
    }

    #[test]
    fn decode_errors_of_named_fields_name_the_field_in_both_codecs() {
        let bad = serde_json::json!({"name": "acme", "month": "eleven"});
        for codec in [Codec::Json, Codec::MessagePack] {
            let bytes = codec.encode(&bad).unwrap();
            let err = codec.decode_fields::<Args>(&bytes).unwrap_err();
            assert!(err.message().contains("field `month`"), "{codec}: {err}");
            assert!(err.message().contains("expected u32"), "{codec}: {err}");
            // A missing field was named already; it stays so.
            let bytes = codec.encode(&serde_json::json!({"name": "acme"})).unwrap();
            let err = codec.decode_fields::<Args>(&bytes).unwrap_err();
            assert!(
                err.message().contains("missing field `month`"),
                "{codec}: {err}"
            );
            let good = codec
                .encode(&serde_json::json!({"name": "a", "month": 1}))
                .unwrap();
            assert_eq!(codec.decode_fields::<Args>(&good).unwrap().month, 1);
        }
    }

    #[test]
    fn decode_errors_name_the_codec_and_the_problem() {
        let err = Codec::Json.decode::<u32>(b"\"x\"").unwrap_err();
        assert!(err.to_string().starts_with("json decode failed"), "{err}");
    }
}
