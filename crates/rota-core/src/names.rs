//! Names that end up inside broker keys.
//!
//! Service names and key prefixes become parts of Redis keys (and of hash
//! tags, which must not hold braces), so they are checked once, up front,
//! with an error that says what is wrong.

use crate::error::BrokerError;

/// Longest service name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Checks a service (or queue) name: 1 to 128 characters out of ASCII letters,
/// digits, `-`, `_` and `.`.
///
/// ```
/// assert!(rota_core::names::validate_service("billing.v2").is_ok());
/// assert!(rota_core::names::validate_service("bill{ing}").is_err());
/// ```
pub fn validate_service(name: &str) -> Result<(), BrokerError> {
    validate(
        "service name",
        name,
        "ASCII letters, digits, '-', '_' or '.'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    )
}

/// Checks a lease name ([`ConsumerOptions::name`](crate::rpc::ConsumerOptions::name)):
/// as a service name, ASCII letters, digits, `-`, `_` and `.`, at most
/// [`MAX_NAME_LEN`] bytes.
pub fn validate_lease_name(name: &str) -> Result<(), BrokerError> {
    validate(
        "lease name",
        name,
        "ASCII letters, digits, '-', '_' or '.'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'),
    )
}

/// Checks a key prefix: 1 to 128 characters out of ASCII letters, digits,
/// `-`, `_`, `.` and `:`.
pub fn validate_prefix(prefix: &str) -> Result<(), BrokerError> {
    validate(
        "key prefix",
        prefix,
        "ASCII letters, digits, '-', '_', '.' or ':'",
        |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
    )
}

fn validate(
    what: &str,
    name: &str,
    charset: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), BrokerError> {
    if name.is_empty() {
        return Err(BrokerError::InvalidName(format!("{what} is empty")));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(BrokerError::InvalidName(format!(
            "{what} is {} bytes long; at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Err(BrokerError::InvalidName(format!(
            "{what} {name:?} holds {bad:?}; use {charset}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_key_syntax_are_refused() {
        for bad in ["", "a b", "a{b", "a}b", "a:b", "é", &"x".repeat(129)] {
            assert!(validate_service(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_service("Billing-v2_eu.west").is_ok());
        assert!(validate_prefix("app:rota").is_ok());
        assert!(validate_prefix("app{x}").is_err());
    }
}
