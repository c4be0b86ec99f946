//! TEMPORARY stand-in for the Basic-Auth verifier (replaced by the real module).
use crate::rules::Credential;
use http::HeaderValue;

/// What a check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A user's password matched.
    Allowed {
        /// The user.
        user: String,
    },
    /// No match.
    Denied,
    /// Too many checks at once.
    Busy,
}

/// Verifier.
#[derive(Debug)]
pub struct BasicAuth {
    users: Vec<Credential>,
    realm: String,
}

impl BasicAuth {
    /// New.
    #[must_use]
    pub fn new(users: Vec<Credential>, realm: &str) -> Self {
        Self {
            users,
            realm: realm.to_owned(),
        }
    }
    /// Users.
    #[must_use]
    pub fn credentials(&self) -> &[Credential] {
        &self.users
    }
    /// Check.
    pub async fn check(&self, _header: Option<&HeaderValue>) -> Outcome {
        Outcome::Denied
    }
    /// Challenge.
    #[must_use]
    pub fn challenge(&self) -> HeaderValue {
        HeaderValue::from_str(&format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            self.realm
        ))
        .unwrap_or(HeaderValue::from_static("Basic"))
    }
}
