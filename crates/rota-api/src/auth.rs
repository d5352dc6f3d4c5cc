//! Bearer tokens: an administrator's sees everything; a tenant's sees and
//! changes its tenant's schedules, runs, jobs and dead letters only, and
//! anything of another tenant answers 404, as if it were not there.
//!
//! The configuration keeps each token's SHA-256, never the token: a token
//! is 32 random bytes (`rota token new` makes one), so a plain hash is as
//! strong as the token, and what leaks from a config file opens nothing. A
//! presented token is hashed and compared with every configured hash in
//! constant time; no token, and no hash, is ever logged.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// The prefix of a token hash in the configuration.
const HASH_PREFIX: &str = "sha256:";

/// A configured token: its name (for logs), its hash, and the tenant it
/// is limited to (none: an administrator's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// What the token is for, as logged.
    pub name: String,
    /// `sha256:` and the hex SHA-256 of the token.
    pub hash: String,
    /// The tenant it is limited to; `None` for an administrator's.
    pub tenant: Option<String>,
}

impl TokenEntry {
    /// Checks the entry: a name and a well-formed hash.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("a token needs a name".into());
        }
        digest_of(&self.hash).map(|_| ()).ok_or_else(|| {
            format!(
                "token {:?}: hash must be \"sha256:\" and 64 hex digits (`rota token hash` prints it)",
                self.name
            )
        })
    }
}

fn digest_of(hash: &str) -> Option<[u8; 32]> {
    let hex = hash.strip_prefix(HASH_PREFIX)?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The hash to configure for `token`.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{HASH_PREFIX}{hex}")
}

/// A fresh token: `rota_` and 32 random bytes (from a generator seeded by
/// the system), base64url.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "rota_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Who calls, once their token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An administrator (or anyone, when no token is configured).
    Admin,
    /// A tenant's token: that tenant only.
    Tenant(String),
}

impl Caller {
    /// Whether the caller may see `tenant`'s things.
    pub fn sees(&self, tenant: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Tenant(own) => own == tenant,
        }
    }

    /// `Ok` for an administrator; 403 for a tenant's token.
    pub fn admin(&self) -> Result<(), Problem> {
        match self {
            Caller::Admin => Ok(()),
            Caller::Tenant(_) => Err(Problem::admin_only()),
        }
    }

    /// The tenant a listing is limited to: the token's own for a tenant
    /// (another one asked for is not found), the one asked for otherwise.
    pub fn tenant_filter(&self, asked: Option<String>) -> Result<Option<String>, Problem> {
        match (self, asked) {
            (Caller::Admin, asked) => Ok(asked),
            (Caller::Tenant(own), None) => Ok(Some(own.clone())),
            (Caller::Tenant(own), Some(asked)) if *own == asked => Ok(Some(asked)),
            (Caller::Tenant(_), Some(asked)) => {
                Err(Problem::not_found(format!("no tenant {asked:?}")))
            }
        }
    }
}

/// The configured tokens; none configured means no check (for a server
/// reachable from this machine only).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    entries: Vec<(TokenEntry, [u8; 32])>,
}

impl Tokens {
    /// The tokens of `entries`, each checked.
    pub fn new(entries: Vec<TokenEntry>) -> Result<Self, String> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            entry.validate()?;
            let digest = digest_of(&entry.hash).unwrap_or_default();
            out.push((entry, digest));
        }
        Ok(Self { entries: out })
    }

    /// Whether any token is configured.
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// Who presents `token`, if anyone: every configured hash is compared,
    /// each in constant time, whichever matches.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (entry, hash) in &self.entries {
            if bool::from(hash.ct_eq(&digest)) && found.is_none() {
                found = Some(entry);
            }
        }
        found.map(|e| {
            tracing::debug!(token = %e.name, "authenticated");
            match &e.tenant {
                Some(t) => Caller::Tenant(t.clone()),
                None => Caller::Admin,
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    crate::State: axum::extract::FromRef<S>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let state = <crate::State as axum::extract::FromRef<S>>::from_ref(state);
        if !state.tokens.enabled() {
            return Ok(Caller::Admin);
        }
        let unauthorized = |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, detail.to_owned());
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send a token: Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be \"Bearer <token>\""))?;
        state
            .tokens
            .caller(token)
            .ok_or_else(|| unauthorized("the token is not one this server knows"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let admin = new_token();
        let acme = new_token();
        assert_ne!(admin, acme);
        assert!(admin.starts_with("rota_") && admin.len() > 40);
        let tokens = Tokens::new(vec![
            TokenEntry {
                name: "ops".into(),
                hash: hash_token(&admin),
                tenant: None,
            },
            TokenEntry {
                name: "acme".into(),
                hash: hash_token(&acme),
                tenant: Some("acme".into()),
            },
        ])
        .unwrap();
        assert_eq!(tokens.caller(&admin), Some(Caller::Admin));
        assert_eq!(tokens.caller(&acme), Some(Caller::Tenant("acme".into())));
        assert_eq!(tokens.caller("rota_guess"), None);
        assert_eq!(
            tokens.caller(&hash_token(&admin)),
            None,
            "the hash is no token"
        );
    }

    #[test]
    fn a_malformed_hash_is_refused() {
        for hash in ["", "sha256:", "sha256:zz", "md5:00", &"sha256:0".repeat(2)] {
            let entry = TokenEntry {
                name: "x".into(),
                hash: hash.into(),
                tenant: None,
            };
            assert!(Tokens::new(vec![entry]).is_err(), "{hash:?}");
        }
    }
}
