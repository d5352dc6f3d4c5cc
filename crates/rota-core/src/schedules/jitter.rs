//! Deterministic jitter: the delay of a dispatch is a hash of the schedule's
//! key and the occurrence instant, so every scheduler — a restarted one, the
//! next owner of a shard — computes the same dispatch instant.
//!
//! Both hashes below are fixed by contract: changing them moves the dispatch
//! instant of every jittered schedule, so a test pins their output.

use jiff::{SignedDuration, Timestamp};

/// The seed for a schedule's key: 64-bit FNV-1a of its bytes.
pub(crate) fn seed(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.iter()
        .fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The delay of the occurrence at `at`: whole milliseconds in
/// `[0, jitter)`, spread evenly.
pub(crate) fn delay(seed: u64, at: Timestamp, jitter: SignedDuration) -> SignedDuration {
    let Ok(span) = u64::try_from(jitter.as_millis()) else {
        return SignedDuration::ZERO;
    };
    let h = mix(seed ^ mix(at.as_millisecond() as u64));
    // The high half of h·span is below span and as even as h.
    let ms = ((u128::from(h) * u128::from(span)) >> 64) as i64;
    SignedDuration::from_millis(ms)
}

/// The SplitMix64 finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
