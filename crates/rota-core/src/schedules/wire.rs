//! How instants and durations of triggers are written: whole milliseconds
//! (since the Unix epoch, for instants), as everywhere else on rota's wire.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `t` cut to whole milliseconds, the precision it is stored with.
pub(crate) fn ms_instant(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(t)
}

/// `d` cut to whole milliseconds, the precision it is stored with.
pub(crate) fn ms_duration(d: SignedDuration) -> SignedDuration {
    SignedDuration::from_millis_i128(d.as_millis())
}

fn to_ms(d: SignedDuration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

/// An instant as Unix milliseconds.
pub(crate) mod instant {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        t.as_millisecond().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let ms = i64::deserialize(d)?;
        Timestamp::from_millisecond(ms).map_err(|_| {
            serde::de::Error::custom(format!("{ms} ms since the Unix epoch is out of range"))
        })
    }
}

/// An optional instant as Unix milliseconds.
pub(crate) mod opt_instant {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Timestamp::as_millisecond).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "instant")] Timestamp);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(t)| t))
    }
}

/// A duration as milliseconds (negative ones too, so that validation can
/// name them rather than the decoder refusing them).
pub(crate) mod duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
        to_ms(*d).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SignedDuration, D::Error> {
        Ok(SignedDuration::from_millis(i64::deserialize(d)?))
    }
}

/// An optional duration as milliseconds.
pub(crate) mod opt_duration {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        d: &Option<SignedDuration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        d.map(to_ms).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SignedDuration>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(SignedDuration::from_millis))
    }
}
