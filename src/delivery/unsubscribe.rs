//! One-click unsubscribe (RFC 8058): every step email carries a `List-Unsubscribe` link with
//! a signed token naming its recipient, and `List-Unsubscribe-Post` so mail clients can
//! unsubscribe with one POST. The token is `base64url(email \n issued-at) . base64url(HMAC)`;
//! a forged or altered token fails the HMAC, an old one is expired.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::definitions::config::Config;
use crate::store::{Store, StoreError};

/// How long an unsubscribe link works after its mail was sent.
pub const TOKEN_DAYS: i64 = 180;
const META_KEY: &str = "unsubscribe_key";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all.
    #[error("this is not an unsubscribe token")]
    Malformed,
    /// The signature does not match: altered or made up.
    #[error("this unsubscribe link is not valid")]
    Forged,
    /// Older than [`TOKEN_DAYS`].
    #[error("this unsubscribe link has expired")]
    Expired,
}

/// The key that signs and checks unsubscribe tokens.
#[derive(Clone)]
pub struct UnsubscribeKey(Vec<u8>);

impl std::fmt::Debug for UnsubscribeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKey(..)")
    }
}

impl UnsubscribeKey {
    /// A key from raw bytes.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// The key named by `email.unsubscribe_secret_env`, else the database's own (made on
    /// first use, shared by every engine process on the database).
    pub async fn load<S: Store>(config: &Config, store: &S) -> Result<Self, StoreError> {
        if let Some(var) = &config.email.unsubscribe_secret_env {
            match std::env::var(var) {
                Ok(value) if !value.is_empty() => return Ok(Self(value.into_bytes())),
                _ => tracing::warn!(
                    "{var} is not set: unsubscribe links are signed with the database's own key"
                ),
            }
        }
        let fresh: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        Ok(Self(
            store.meta_or_insert(META_KEY, &fresh).await?.into_bytes(),
        ))
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC accepts any key");
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    /// A key of its own for another purpose (CSM sign-in links, sessions, forms), so a
    /// token made for one purpose is forged for every other.
    pub fn derive(&self, purpose: &str) -> Self {
        Self(self.mac(purpose.as_bytes()))
    }

    /// `payload`, signed: `base64url(payload) . base64url(HMAC)`.
    pub fn sign(&self, payload: &str) -> String {
        format!(
            "{}.{}",
            B64.encode(payload.as_bytes()),
            B64.encode(self.mac(payload.as_bytes()))
        )
    }

    /// The payload of a token signed with this key.
    pub fn open(&self, token: &str) -> Result<String, TokenError> {
        let (payload, signature) = token.trim().split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(payload).map_err(|_| TokenError::Malformed)?;
        let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC accepts any key");
        mac.update(&payload);
        // verify_slice compares in constant time.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Forged)?;
        String::from_utf8(payload).map_err(|_| TokenError::Malformed)
    }

    /// A token for `email`, issued at `now` (unix seconds).
    pub fn token(&self, email: &str, now: i64) -> String {
        self.sign(&format!("{}\n{now}", email.trim().to_lowercase()))
    }

    /// The address a token unsubscribes, if it is genuine and current at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Result<String, TokenError> {
        let text = self.open(token)?;
        let (email, issued) = text.split_once('\n').ok_or(TokenError::Malformed)?;
        let issued: i64 = issued.parse().map_err(|_| TokenError::Malformed)?;
        if now - issued > TOKEN_DAYS * 86_400 {
            return Err(TokenError::Expired);
        }
        Ok(email.to_string())
    }
}

/// The public base URL of the HTTP API, for links in mails.
pub fn public_url(config: &Config) -> String {
    match &config.http.public_url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => format!(
            "http://{}",
            config.http.listen.as_deref().unwrap_or("127.0.0.1:8080")
        ),
    }
}

/// The unsubscribe link for `email`.
pub fn link(config: &Config, key: &UnsubscribeKey, email: &str, now: i64) -> String {
    format!(
        "{}/unsubscribe?token={}",
        public_url(config),
        key.token(email, now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_recipient_until_it_expires() {
        let key = UnsubscribeKey::new(b"k".to_vec());
        let token = key.token("Ana@Example.com", 1_000);
        assert_eq!(key.verify(&token, 2_000), Ok("ana@example.com".into()));
        assert_eq!(
            key.verify(&token, 1_000 + TOKEN_DAYS * 86_400 + 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn altered_and_foreign_tokens_are_refused() {
        let key = UnsubscribeKey::new(b"k".to_vec());
        let token = key.token("ana@example.com", 1_000);
        let other = UnsubscribeKey::new(b"other".to_vec()).token("ana@example.com", 1_000);
        assert_eq!(key.verify(&other, 1_000), Err(TokenError::Forged));
        let (_, signature) = token.split_once('.').expect("dot");
        let swapped = format!("{}.{signature}", B64.encode("bob@example.com\n1000"));
        assert_eq!(key.verify(&swapped, 1_000), Err(TokenError::Forged));
        assert_eq!(key.verify("nonsense", 1_000), Err(TokenError::Malformed));
    }
}
