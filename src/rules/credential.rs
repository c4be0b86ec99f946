//! The users of a `Basic-Auth` rule, `user:HASH [user:HASH ...]`, as both `_headers` and
//! `rampart.toml` write them. A password must be stored as a bcrypt hash; this module only
//! checks the form of each entry (it never verifies a password) and never repeats a
//! password it refuses in its error.

use super::Credential;

/// Reads the whitespace-separated `user:HASH` entries of a `Basic-Auth` value.
///
/// # Errors
/// No entry; an entry without `:` or with an empty user; a password that is not a bcrypt
/// hash (the reason says how to make one, without repeating the password).
pub fn parse(value: &str) -> Result<Vec<Credential>, String> {
    let mut out = Vec::new();
    for (n, entry) in value.split_whitespace().enumerate() {
        let Some((user, hash)) = entry.split_once(':') else {
            return Err(format!(
                "Basic-Auth entry {} is not `user:HASH` (a user name, `:`, a bcrypt hash)",
                n + 1
            ));
        };
        if user.is_empty() {
            return Err(format!(
                "Basic-Auth entry {} has an empty user name; write `user:HASH`",
                n + 1
            ));
        }
        if !is_bcrypt_hash(hash) {
            return Err(format!(
                "the password of {user} is not a bcrypt hash: store \
                 `{user}:$(rampart hash-password)` (or the hash from `htpasswd -nB {user}`), \
                 never the password itself"
            ));
        }
        out.push(Credential {
            user: user.to_owned(),
            hash: hash.to_owned(),
        });
    }
    if out.is_empty() {
        return Err("Basic-Auth names no user; write `Basic-Auth: user:HASH`".into());
    }
    Ok(out)
}

/// Whether `hash` has the form of a bcrypt hash: `$2a$`, `$2b$` or `$2y$`, a two-digit cost
/// from 04 to 31, `$`, then 53 characters of bcrypt's base64 (`./A-Za-z0-9`).
#[must_use]
pub fn is_bcrypt_hash(hash: &str) -> bool {
    let b = hash.as_bytes();
    b.len() == 60
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && (4..=31).contains(&((b[4] - b'0') * 10 + (b[5] - b'0')))
        && b[6] == b'$'
        && b[7..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::TEST_HASH as HASH;

    #[test]
    fn bcrypt_hashes_of_each_variant_are_accepted() {
        assert!(is_bcrypt_hash(HASH));
        assert!(is_bcrypt_hash(&HASH.replacen("$2y$", "$2a$", 1)));
        assert!(is_bcrypt_hash(&HASH.replacen("$2y$05", "$2b$31", 1)));
    }

    #[test]
    fn other_text_is_not_a_bcrypt_hash() {
        assert!(!is_bcrypt_hash("secret"));
        assert!(!is_bcrypt_hash(&HASH.replacen("$2y$", "$2x$", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen("$05$", "$03$", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen("$05$", "$32$", 1)));
        assert!(!is_bcrypt_hash(&HASH[..59]));
        assert!(!is_bcrypt_hash(&format!("{HASH}a")));
        assert!(!is_bcrypt_hash(&HASH.replacen('u', "é", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen('u', "!", 1)));
    }

    #[test]
    fn several_users_are_read_in_order() {
        let users = parse(&format!(" alice:{HASH}\tbob:{HASH} ")).unwrap();
        let names: Vec<&str> = users.iter().map(|c| c.user.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(users[0].hash, HASH);
    }

    #[test]
    fn a_plaintext_password_is_refused_without_repeating_it() {
        let err = parse("alice:hunter2").unwrap_err();
        assert!(
            err.contains("the password of alice is not a bcrypt hash"),
            "{err}"
        );
        assert!(err.contains("rampart hash-password"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn entries_without_a_user_are_refused() {
        assert!(parse("").unwrap_err().contains("names no user"));
        assert!(parse(&format!(":{HASH}"))
            .unwrap_err()
            .contains("empty user name"));
        assert!(parse("alice")
            .unwrap_err()
            .contains("entry 1 is not `user:HASH`"));
    }
}
