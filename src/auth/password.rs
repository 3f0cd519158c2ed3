//! The PasswordMessage methods: md5 (AuthenticationMD5Password) and
//! cleartext (AuthenticationCleartextPassword).

use md5::{Digest, Md5};

use super::constant_time_eq;
use super::secret::{sha256, ScramSecret, Secret};

/// `"md5" + hex(md5(password + user))`: what PostgreSQL stores for an md5 role.
pub fn md5_hash(user: &str, password: &str) -> String {
    format!("md5{}", md5_hex(&[password.as_bytes(), user.as_bytes()]))
}

/// Checks a PasswordMessage answering AuthenticationMD5Password(salt). The
/// client sends `"md5" + hex(md5(hex(md5(password + user)) + salt))`, so the
/// stored md5 hash is all the server needs. A SCRAM secret cannot answer:
/// like PostgreSQL, offer SCRAM instead when the stored secret is SCRAM.
pub fn verify_md5(secret: &Secret, user: &str, salt: [u8; 4], response: &str) -> bool {
    let stored = match secret {
        Secret::Plain(password) => md5_hash(user, password),
        Secret::Md5(stored) => stored.clone(),
        Secret::Scram(_) => return false,
    };
    let Some(inner_hex) = stored.strip_prefix("md5") else {
        return false;
    };
    let expected = format!("md5{}", md5_hex(&[inner_hex.as_bytes(), &salt]));
    constant_time_eq(expected.as_bytes(), response.as_bytes())
}

/// Checks a cleartext PasswordMessage against any kind of stored secret.
pub fn verify_cleartext(secret: &Secret, user: &str, password: &str) -> bool {
    match secret {
        // Hashing first hides the stored password's length from timing.
        Secret::Plain(stored) => {
            constant_time_eq(&sha256(stored.as_bytes()), &sha256(password.as_bytes()))
        }
        Secret::Md5(stored) => {
            constant_time_eq(md5_hash(user, password).as_bytes(), stored.as_bytes())
        }
        Secret::Scram(stored) => {
            let derived = ScramSecret::from_password(password, &stored.salt, stored.iterations);
            constant_time_eq(&derived.stored_key, &stored.stored_key)
                & constant_time_eq(&derived.server_key, &stored.server_key)
        }
    }
}

fn md5_hex(parts: &[&[u8]]) -> String {
    let mut md5 = Md5::new();
    parts.iter().for_each(|part| md5.update(part));
    md5.finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::md5_hash as client_md5_response;

    const SALT: [u8; 4] = [0x2a, 0x3d, 0x8f, 0xe0];

    #[test]
    fn md5_hash_matches_postgres() {
        assert_eq!(
            md5_hash("foo", "secret"),
            "md54ab2c5d00339c4b2a4e921d2dc4edec7"
        );
        assert_eq!(
            md5_hash("alice", "wonderland"),
            postgres_protocol::password::md5(b"wonderland", "alice")
        );
    }

    #[test]
    fn md5_accepts_the_client_response_for_plain_and_md5_secrets() {
        let response = client_md5_response(b"md5_user", b"password", SALT);
        assert_eq!(response, "md562af4dd09bbb41884907a838a3233294");
        let plain = Secret::Plain("password".into());
        let hashed = Secret::parse(&md5_hash("md5_user", "password")).unwrap();
        assert!(matches!(hashed, Secret::Md5(_)));
        for secret in [&plain, &hashed] {
            assert!(verify_md5(secret, "md5_user", SALT, &response));
        }
    }

    #[test]
    fn md5_rejects_wrong_password_user_or_salt() {
        let secret = Secret::Plain("password".into());
        let wrong_password = client_md5_response(b"md5_user", b"passw0rd", SALT);
        let wrong_user = client_md5_response(b"other", b"password", SALT);
        let right = client_md5_response(b"md5_user", b"password", SALT);
        assert!(!verify_md5(&secret, "md5_user", SALT, &wrong_password));
        assert!(!verify_md5(&secret, "md5_user", SALT, &wrong_user));
        assert!(!verify_md5(&secret, "md5_user", [0; 4], &right));
        assert!(!verify_md5(
            &secret,
            "md5_user",
            SALT,
            &right.to_uppercase()
        ));
        assert!(!verify_md5(&secret, "md5_user", SALT, ""));
        assert!(!verify_md5(
            &Secret::Md5(String::new()),
            "md5_user",
            SALT,
            &right
        ));
    }

    #[test]
    fn md5_is_refused_for_scram_secrets() {
        let secret = Secret::Scram(ScramSecret::from_password("password", b"salt", 16));
        let response = client_md5_response(b"md5_user", b"password", SALT);
        assert!(!verify_md5(&secret, "md5_user", SALT, &response));
    }

    #[test]
    fn cleartext_checks_every_secret_kind() {
        let secrets = [
            Secret::Plain("s3cret".into()),
            Secret::Md5(md5_hash("bob", "s3cret")),
            Secret::Scram(ScramSecret::from_password("s3cret", b"saltsalt", 64)),
            Secret::Scram(ScramSecret::generate("s3cret")),
        ];
        for secret in &secrets {
            assert!(verify_cleartext(secret, "bob", "s3cret"), "{secret:?}");
            assert!(!verify_cleartext(secret, "bob", "s3cre"), "{secret:?}");
            assert!(!verify_cleartext(secret, "bob", ""), "{secret:?}");
        }
        assert!(!verify_cleartext(&secrets[1], "eve", "s3cret"));
    }
}
