//! The client's SCRAM messages, per the grammar of RFC 5802 section 7.
//! No attribute value may contain a comma (saslname escapes it as `=2C`), so
//! splitting on commas is exact.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::auth::AuthError;

/// The gs2-cbind-flag: what the client says about channel binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cbind<'a> {
    /// "n": the client does not support channel binding.
    None,
    /// "y": the client could bind but believes the server cannot.
    ClientOnly,
    /// "p=NAME": the client binds with channel-binding type NAME.
    Requested(&'a str),
}

pub(super) struct ClientFirst<'a> {
    pub cbind: Cbind<'a>,
    /// The gs2-header exactly as sent; client-final's `c=` must repeat it (followed by
    /// the channel-binding data when the client binds).
    pub gs2_header: &'a str,
    /// client-first-message-bare, which starts the AuthMessage.
    pub bare: &'a str,
    pub nonce: &'a str,
}

pub(super) struct ClientFinal<'a> {
    /// base64 of gs2-header plus channel-binding data (none without `p=`).
    pub channel_binding: Vec<u8>,
    pub nonce: &'a str,
    /// client-final-message-without-proof, which ends the AuthMessage.
    pub without_proof: &'a str,
    pub proof: [u8; 32],
}

/// `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`
pub(super) fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, AuthError> {
    let (cbind_flag, rest) = message
        .split_once(',')
        .ok_or_else(|| malformed("client-first-message lacks a gs2-header"))?;
    // Whether the flag fits the mechanism and the connection is the server's call.
    let cbind = match cbind_flag {
        "n" => Cbind::None,
        "y" => Cbind::ClientOnly,
        flag => match flag.strip_prefix("p=") {
            Some(name)
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') =>
            {
                Cbind::Requested(name)
            }
            _ => return Err(malformed("invalid gs2 channel-binding flag")),
        },
    };

    let (authzid, bare) = rest
        .split_once(',')
        .ok_or_else(|| malformed("client-first-message lacks a gs2-header"))?;
    if authzid.starts_with("a=") {
        return Err(AuthError::Unsupported(
            "SCRAM authorization identity (authzid)".into(),
        ));
    }
    if !authzid.is_empty() {
        return Err(malformed("invalid gs2 authzid"));
    }
    let gs2_header = &message[..message.len() - bare.len()];

    let mut fields = bare.split(',');
    let first = fields.next();
    if first.is_some_and(|field| field.starts_with("m=")) {
        return Err(AuthError::Unsupported(
            "mandatory SCRAM extension (reserved-mext)".into(),
        ));
    }
    // PostgreSQL takes the user name from the startup packet; libpq sends "n=".
    attribute(first, 'n')?;
    let nonce = attribute(fields.next(), 'r')?;
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(malformed("client nonce must be non-empty printable ASCII"));
    }
    check_extensions(fields)?;

    Ok(ClientFirst {
        cbind,
        gs2_header,
        bare,
        nonce,
    })
}

/// `channel-binding "," nonce ["," extensions] "," proof`
pub(super) fn parse_client_final(message: &str) -> Result<ClientFinal<'_>, AuthError> {
    let (without_proof, proof) = message
        .rsplit_once(',')
        .ok_or_else(|| malformed("client-final-message lacks a proof"))?;
    let proof = STANDARD
        .decode(attribute(Some(proof), 'p')?)
        .ok()
        .and_then(|proof| <[u8; 32]>::try_from(proof).ok())
        .ok_or_else(|| malformed("ClientProof must be 32 bytes of base64"))?;

    let mut fields = without_proof.split(',');
    let channel_binding = STANDARD
        .decode(attribute(fields.next(), 'c')?)
        .map_err(|_| malformed("channel-binding attribute is not base64"))?;
    let nonce = attribute(fields.next(), 'r')?;
    check_extensions(fields)?;

    Ok(ClientFinal {
        channel_binding,
        nonce,
        without_proof,
        proof,
    })
}

fn attribute(field: Option<&str>, name: char) -> Result<&str, AuthError> {
    field
        .and_then(|field| field.strip_prefix(name))
        .and_then(|field| field.strip_prefix('='))
        .ok_or_else(|| malformed(&format!("expected SCRAM attribute '{name}='")))
}

/// Optional extensions carry no meaning to us but must still be attributes.
fn check_extensions<'a>(mut fields: impl Iterator<Item = &'a str>) -> Result<(), AuthError> {
    let is_attribute = |field: &str| {
        let bytes = field.as_bytes();
        bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b'='
    };
    if fields.all(is_attribute) {
        Ok(())
    } else {
        Err(malformed("invalid SCRAM attribute"))
    }
}

fn malformed(detail: &str) -> AuthError {
    AuthError::Malformed(detail.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_client_first_into_header_bare_and_nonce() {
        let first = parse_client_first("y,,n=ignored,r=abc,x=ext").unwrap();
        assert_eq!(first.gs2_header, "y,,");
        assert_eq!(first.bare, "n=ignored,r=abc,x=ext");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.cbind, Cbind::ClientOnly);
        let plus = parse_client_first("p=tls-server-end-point,,n=,r=abc").unwrap();
        assert_eq!(plus.cbind, Cbind::Requested("tls-server-end-point"));
        assert_eq!(plus.gs2_header, "p=tls-server-end-point,,");
    }

    #[test]
    fn rejects_malformed_client_first() {
        for message in [
            "",
            "n",
            "n,",
            "x,,n=,r=abc",
            "n,z,n=,r=abc",
            "n,,r=abc",
            "n,,n=",
            "n,,n=,r=",
            "n,,n=,r=ab c",
            "n,,n=,r=abc,bogus",
            "p=,,n=,r=abc",
            "p=a b,,n=,r=abc",
        ] {
            assert!(
                matches!(parse_client_first(message), Err(AuthError::Malformed(_))),
                "{message:?} should be malformed"
            );
        }
    }

    #[test]
    fn reports_unsupported_client_first_features() {
        for message in ["n,a=admin,n=,r=abc", "n,,m=ext,n=,r=abc"] {
            assert!(
                matches!(parse_client_first(message), Err(AuthError::Unsupported(_))),
                "{message:?} should be unsupported"
            );
        }
    }

    #[test]
    fn splits_client_final_at_the_proof() {
        let proof = STANDARD.encode([9u8; 32]);
        let message = format!("c=biws,r=abcdef,x=ext,p={proof}");
        let last = parse_client_final(&message).unwrap();
        assert_eq!(last.channel_binding, b"n,,");
        assert_eq!(last.nonce, "abcdef");
        assert_eq!(last.without_proof, "c=biws,r=abcdef,x=ext");
        assert_eq!(last.proof, [9u8; 32]);
    }

    #[test]
    fn rejects_malformed_client_final() {
        let proof = STANDARD.encode([9u8; 32]);
        let short_proof = STANDARD.encode([9u8; 31]);
        for message in [
            String::new(),
            format!("p={proof}"),
            "c=biws,r=abc".to_owned(),
            format!("c=biws,r=abc,p={short_proof}"),
            "c=biws,r=abc,p=!!!".to_owned(),
            format!("r=abc,c=biws,p={proof}"),
            format!("c=*,r=abc,p={proof}"),
            format!("c=biws,p={proof}"),
            format!("c=biws,r=abc,,p={proof}"),
        ] {
            assert!(
                matches!(parse_client_final(&message), Err(AuthError::Malformed(_))),
                "{message:?} should be malformed"
            );
        }
    }
}
