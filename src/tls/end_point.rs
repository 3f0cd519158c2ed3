//! `tls-server-end-point` channel-binding data (RFC 5929 section 4.1): the hash of the
//! server's certificate, with the hash function of the certificate's signature
//! algorithm, except that MD5 and SHA-1 are replaced by SHA-256. PostgreSQL computes the
//! same on both sides for SCRAM-SHA-256-PLUS.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// The binding data for a DER certificate. Signature algorithms that name no hash
/// (Ed25519, RSA-PSS with parameters we do not parse) fall back to SHA-256, which is what
/// OpenSSL-based PostgreSQL does for RSA-PSS with SHA-256; for Ed25519 PostgreSQL refuses
/// channel binding altogether, so the client would fail the exchange either way.
pub fn end_point_hash(certificate: &[u8]) -> Vec<u8> {
    match signature_algorithm(certificate).as_deref() {
        Some(SHA384_RSA | ECDSA_SHA384) => Sha384::digest(certificate).to_vec(),
        Some(SHA512_RSA | ECDSA_SHA512) => Sha512::digest(certificate).to_vec(),
        _ => Sha256::digest(certificate).to_vec(),
    }
}

// DER contents of the signature algorithm OIDs that name SHA-384 and SHA-512.
/// 1.2.840.113549.1.1.12 sha384WithRSAEncryption
const SHA384_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
/// 1.2.840.113549.1.1.13 sha512WithRSAEncryption
const SHA512_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
/// 1.2.840.10045.4.3.3 ecdsa-with-SHA384
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
/// 1.2.840.10045.4.3.4 ecdsa-with-SHA512
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];

/// The OID (DER contents) of `Certificate.signatureAlgorithm`:
/// `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE { OID, … }, … }`.
fn signature_algorithm(certificate: &[u8]) -> Option<Vec<u8>> {
    let (certificate, _) = element(certificate, 0x30)?;
    let (_, rest) = element(certificate, 0x30)?; // tbsCertificate
    let (algorithm, _) = element(rest, 0x30)?;
    let (oid, _) = element(algorithm, 0x06)?;
    Some(oid.to_vec())
}

/// One DER element with the expected tag: (contents, what follows).
fn element(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, der) = der.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, mut der) = der.split_first()?;
    let length = if first < 0x80 {
        first as usize
    } else {
        let octets = (first & 0x7f) as usize;
        if octets == 0 || octets > 4 || der.len() < octets {
            return None;
        }
        let length = der[..octets]
            .iter()
            .fold(0usize, |length, &b| (length << 8) | b as usize);
        der = &der[octets..];
        length
    };
    (der.len() >= length).then(|| der.split_at(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_signature_algorithm_of_a_certificate() {
        // SEQUENCE { SEQUENCE {} (tbs), SEQUENCE { OID sha384WithRSA, NULL }, BIT STRING }
        let mut cert = vec![0x30, 0x13, 0x30, 0x00, 0x30, 0x0d, 0x06, 0x09];
        cert.extend_from_slice(SHA384_RSA);
        cert.extend_from_slice(&[0x05, 0x00, 0x03, 0x02, 0x00, 0x00]);
        assert_eq!(signature_algorithm(&cert).as_deref(), Some(SHA384_RSA));
        assert_eq!(end_point_hash(&cert), Sha384::digest(&cert).to_vec());
    }

    #[test]
    fn falls_back_to_sha256() {
        assert_eq!(
            end_point_hash(b"garbage"),
            Sha256::digest(b"garbage").to_vec()
        );
    }
}
