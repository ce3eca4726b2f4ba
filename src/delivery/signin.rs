//! Sign-in without passwords: a CSM's notice mails carry a link that signs them in
//! (`touchline csm link CSM` prints one). The link, the session cookie it sets and the
//! token every form carries are HMAC-signed with keys derived from the database's signing
//! key, one per purpose, so none can stand in for another.

use crate::delivery::unsubscribe::{TokenError, UnsubscribeKey};

/// How long a sign-in link works.
pub const LINK_DAYS: i64 = 7;
/// How long a session lasts.
pub const SESSION_DAYS: i64 = 14;
/// The session cookie's name.
pub const COOKIE: &str = "touchline_session";

/// Why a link or session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Not a link of touchline's, or altered.
    #[error("this sign-in link is not valid: it was altered or was never made by touchline")]
    Forged,
    /// Too old.
    #[error("this sign-in link has expired; ask for a new one (touchline csm link)")]
    Expired,
}

/// The keys pages sign with.
#[derive(Debug, Clone)]
pub struct PageKeys {
    links: UnsubscribeKey,
    sessions: UnsubscribeKey,
    forms: UnsubscribeKey,
    messages: UnsubscribeKey,
}

impl PageKeys {
    /// Keys derived from the database's signing key.
    pub fn new(key: &UnsubscribeKey) -> Self {
        Self {
            links: key.derive("touchline csm sign-in link"),
            sessions: key.derive("touchline csm session"),
            forms: key.derive("touchline form"),
            messages: key.derive("touchline page message"),
        }
    }

    /// A sign-in link token for `csm`, valid until `expires` (unix seconds).
    pub fn link_token(&self, csm: &str, expires: i64) -> String {
        self.links.sign(&format!("{csm}\n{expires}"))
    }

    /// The CSM a sign-in link token is for, if it is genuine and current at `now`.
    pub fn check_link(&self, token: &str, now: i64) -> Result<String, SignInError> {
        open(&self.links, token, now)
    }

    /// A session cookie value for `csm`, valid until `expires`.
    pub fn session(&self, csm: &str, expires: i64) -> String {
        self.sessions.sign(&format!("{csm}\n{expires}"))
    }

    /// The CSM of a session cookie value, if it is genuine and current.
    pub fn check_session(&self, value: &str, now: i64) -> Result<String, SignInError> {
        open(&self.sessions, value, now)
    }

    /// The token a form carries for a session (the session cookie's value): a page of
    /// another site cannot know it, so it cannot post a form as the CSM.
    pub fn form_token(&self, session: &str) -> String {
        self.forms.sign(session)
    }

    /// `text` signed, to carry what an action did across a redirect: a page shows only
    /// messages touchline made, never words a crafted link puts in its address.
    pub fn message(&self, text: &str) -> String {
        self.messages.sign(text)
    }

    /// The text of a signed message, if genuine.
    pub fn check_message(&self, token: &str) -> Option<String> {
        self.messages.open(token).ok()
    }

    /// Whether `token` is the form token of `session`.
    pub fn check_form(&self, session: &str, token: &str) -> bool {
        self.forms.open(token).is_ok_and(|signed| signed == session)
    }
}

fn open(key: &UnsubscribeKey, token: &str, now: i64) -> Result<String, SignInError> {
    let text = key.open(token).map_err(|e| match e {
        TokenError::Expired => SignInError::Expired,
        TokenError::Malformed | TokenError::Forged => SignInError::Forged,
    })?;
    let (csm, expires) = text.split_once('\n').ok_or(SignInError::Forged)?;
    let expires: i64 = expires.parse().map_err(|_| SignInError::Forged)?;
    if now > expires {
        return Err(SignInError::Expired);
    }
    Ok(csm.to_string())
}

/// The sign-in link for `csm`, valid for [`LINK_DAYS`] from `now` (unix seconds).
pub fn link(base_url: &str, keys: &PageKeys, csm: &str, now: i64) -> String {
    format!(
        "{base_url}/signin?token={}",
        keys.link_token(csm, now + LINK_DAYS * 86_400)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_sessions_and_forms_do_not_stand_in_for_each_other() {
        let keys = PageKeys::new(&UnsubscribeKey::new(b"k".to_vec()));
        let link = keys.link_token("ana", 2_000);
        assert_eq!(keys.check_link(&link, 1_000), Ok("ana".into()));
        assert_eq!(keys.check_link(&link, 2_001), Err(SignInError::Expired));
        // A link is not a session, and another key's link is forged.
        assert_eq!(keys.check_session(&link, 1_000), Err(SignInError::Forged));
        let other = PageKeys::new(&UnsubscribeKey::new(b"other".to_vec()));
        assert_eq!(
            keys.check_link(&other.link_token("ana", 2_000), 1_000),
            Err(SignInError::Forged)
        );
        let session = keys.session("ana", 5_000);
        let form = keys.form_token(&session);
        assert!(keys.check_form(&session, &form));
        assert!(!keys.check_form(&keys.session("ben", 5_000), &form));
        assert!(!keys.check_form(&session, "nonsense"));
    }
}
