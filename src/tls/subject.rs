//! The subject common name of a client certificate, for pg_hba's `cert` method (the CN
//! must equal the requested user name, as in PostgreSQL). rustls has already verified
//! the certificate against the CA; this only walks its DER to the one field needed.
//!
//! ```text
//! Certificate  ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
//! TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature,
//!                               issuer, validity, subject Name, ... }
//! Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value DirectoryString }
//! ```

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const EXPLICIT_VERSION: u8 = 0xa0;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: [u8; 3] = [0x55, 0x04, 0x03];

/// The subject's first commonName, if the certificate has one in a text form.
pub fn common_name(certificate: &[u8]) -> Option<String> {
    let (certificate, _) = expect(SEQUENCE, certificate)?;
    let (mut tbs, _) = expect(SEQUENCE, certificate)?;
    if tbs.first() == Some(&EXPLICIT_VERSION) {
        tbs = element(tbs)?.2;
    }
    // serialNumber, signature, issuer, validity.
    for _ in 0..4 {
        tbs = element(tbs)?.2;
    }
    let (mut names, _) = expect(SEQUENCE, tbs)?;
    while !names.is_empty() {
        let (set, rest) = expect(SET, names)?;
        names = rest;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, rest) = expect(SEQUENCE, attributes)?;
            attributes = rest;
            let (kind, value) = expect(OID, attribute)?;
            if kind == COMMON_NAME {
                let (tag, text, _) = element(value)?;
                return directory_string(tag, text);
            }
        }
    }
    None
}

/// DirectoryString's forms (UTF8String, PrintableString, IA5String, BMPString).
fn directory_string(tag: u8, text: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x13 | 0x16 => String::from_utf8(text.to_vec()).ok(),
        0x1e if text.len() % 2 == 0 => {
            let units: Vec<u16> = text
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// The contents of the element at the start of `input` if it has tag `tag`, and what
/// follows it.
fn expect(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = element(input)?;
    (found == tag).then_some((contents, rest))
}

/// One DER element: (tag, contents, rest). Certificates use only low tag numbers and
/// definite lengths.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (length, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, input) = input.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |length, byte| length << 8 | usize::from(*byte));
        (length, input)
    };
    if input.len() < length {
        return None;
    }
    let (contents, rest) = input.split_at(length);
    Some((tag, contents, rest))
}

#[cfg(test)]
mod tests {
    use super::common_name;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn certificate(subject: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in subject {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn finds_the_common_name_among_other_attributes() {
        let der = certificate(&[
            (DnType::OrganizationName, "Example"),
            (DnType::CommonName, "app"),
            (DnType::CountryName, "SE"),
        ]);
        assert_eq!(common_name(&der).as_deref(), Some("app"));
        let der = certificate(&[(DnType::CommonName, "Ünïcode user")]);
        assert_eq!(common_name(&der).as_deref(), Some("Ünïcode user"));
    }

    #[test]
    fn none_without_a_common_name_or_for_garbage() {
        assert_eq!(
            common_name(&certificate(&[(DnType::OrganizationName, "x")])),
            None
        );
        assert_eq!(common_name(b""), None);
        assert_eq!(common_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        let der = certificate(&[(DnType::CommonName, "app")]);
        for cut in [1, 10, der.len() / 2, der.len() - 1] {
            // Truncated input never panics (the name may or may not still be reachable).
            let _ = common_name(&der[..cut]);
        }
    }
}
