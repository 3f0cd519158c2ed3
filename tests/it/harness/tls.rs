//! Test certificates made with rcgen: a CA per [`TestPki`], server certificates for
//! `localhost`/127.0.0.1, and client certificates, written as PEM files into a temp dir.

use std::path::{Path, PathBuf};

use super::text::toml_path;
use super::PgmuxBuilder;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct TestPki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate, DER (for channel-binding assertions).
    pub der: Vec<u8>,
}

impl TestPki {
    /// A fresh CA named `name`, its certificate written to `ca.crt`.
    pub fn new(name: &str) -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("pgmux-it-tls-")
            .tempdir()
            .expect("temp dir for certificates");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-signed CA");
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, ca.pem()).expect("write CA certificate");
        TestPki { dir, ca, ca_file }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate valid for `localhost` and 127.0.0.1.
    pub fn server_cert(&self, file_stem: &str) -> CertFiles {
        self.server_cert_for(file_stem, &["localhost", "127.0.0.1"])
    }

    /// A server certificate valid for `names` (host names or IP addresses).
    pub fn server_cert_for(&self, file_stem: &str, names: &[&str]) -> CertFiles {
        self.issue(
            file_stem,
            names[0],
            names.iter().map(|name| name.to_string()).collect(),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose common name is `user` (libpq's convention).
    pub fn client_cert(&self, file_stem: &str, user: &str) -> CertFiles {
        self.issue(
            file_stem,
            user,
            Vec::new(),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn issue(
        &self,
        file_stem: &str,
        common_name: &str,
        names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> CertFiles {
        let mut params = CertificateParams::new(names).expect("certificate params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign certificate");
        let files = CertFiles {
            cert: self.dir.path().join(format!("{file_stem}.crt")),
            key: self.dir.path().join(format!("{file_stem}.key")),
            der: cert.der().to_vec(),
        };
        std::fs::write(&files.cert, cert.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        set_mode(&files.key, 0o600);
        files
    }
}

/// libpq and PostgreSQL refuse private keys that others can read.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

impl PgmuxBuilder {
    /// TLS towards clients in `mode`, with `cert` as pgmux's certificate and `pki`'s CA
    /// for client certificates.
    pub fn client_tls(self, mode: &str, pki: &TestPki, cert: &CertFiles) -> Self {
        self.setting("client_tls_sslmode", &format!("\"{mode}\""))
            .setting("client_tls_cert_file", &toml_path(&cert.cert))
            .setting("client_tls_key_file", &toml_path(&cert.key))
            .setting("client_tls_ca_file", &toml_path(pki.ca_file()))
    }
}
