//! TLS material for both sides, built from the settings' PEM files: the acceptor pgmux
//! uses towards clients and the client configuration it uses towards PostgreSQL.
//! TLS 1.2 and 1.3 only, with rustls and the `ring` provider.
//!
//! [`TlsState::reload`] re-reads the files, so renewed certificates take effect on
//! SIGHUP/RELOAD; connections already open keep the TLS session they have.

mod end_point;
mod subject;
mod verify;

use std::path::Path;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{SslMode, TlsSettings};

pub use end_point::end_point_hash;
pub use subject::common_name;

/// ALPN protocol name PostgreSQL 17 uses; older servers and clients ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// A TLS file or setting that cannot be used, naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct TlsError {
    pub key: &'static str,
    pub problem: String,
}

fn error(key: &'static str, problem: impl std::fmt::Display) -> TlsError {
    TlsError {
        key,
        problem: problem.to_string(),
    }
}

/// pgmux as the TLS server, towards clients.
pub struct ClientTls {
    pub mode: SslMode,
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` channel-binding data of our certificate, for
    /// SCRAM-SHA-256-PLUS.
    pub end_point: Vec<u8>,
}

/// pgmux as the TLS client, towards PostgreSQL: what a server connection needs. Equal
/// when the mode is: the configuration inside follows reloads without making every
/// pool's target look changed.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: SslMode,
    config: Arc<ArcSwapOption<ClientConfig>>,
}

impl ServerTls {
    /// No TLS towards the server (tests, and `server_tls_sslmode = "disable"`).
    pub fn disabled() -> ServerTls {
        ServerTls {
            mode: SslMode::Disable,
            config: Arc::new(ArcSwapOption::empty()),
        }
    }

    /// The connector for a new server connection; None when TLS is off (or its
    /// configuration failed to load, which the settings' validation makes unlikely).
    pub fn connector(&self) -> Option<TlsConnector> {
        self.config.load_full().map(TlsConnector::from)
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode
    }
}

impl Eq for ServerTls {}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerTls({})", self.mode)
    }
}

/// Both sides, swapped whole on reload.
pub struct TlsState {
    client: ArcSwapOption<ClientTls>,
    server_mode: ArcSwap<SslMode>,
    server: Arc<ArcSwapOption<ClientConfig>>,
}

impl TlsState {
    /// Builds both sides; a failure leaves that side without TLS and is logged (the
    /// settings' validation has loaded the same files moments before, see [`check`]).
    pub fn new(settings: &TlsSettings) -> TlsState {
        let state = TlsState {
            client: ArcSwapOption::empty(),
            server_mode: ArcSwap::from_pointee(settings.server_tls_sslmode),
            server: Arc::new(ArcSwapOption::empty()),
        };
        if let Err(error) = state.reload(settings) {
            tracing::error!("TLS not available: {error}");
        }
        state
    }

    /// Re-reads certificates and keys. On error nothing changes: the previous material
    /// stays in force. Call on every settings reload (`Shared::reload` does).
    pub fn reload(&self, settings: &TlsSettings) -> Result<(), TlsError> {
        let client = client_side(settings)?;
        let server = server_side(settings)?;
        self.client.store(client.map(Arc::new));
        self.server.store(server.map(Arc::new));
        self.server_mode
            .store(Arc::new(settings.server_tls_sslmode));
        Ok(())
    }

    /// The client-facing side, when `client_tls_sslmode` is not `disable`.
    pub fn client(&self) -> Option<Arc<ClientTls>> {
        self.client.load_full()
    }

    /// The handle server connections use (kept in each pool's target).
    pub fn server(&self) -> ServerTls {
        ServerTls {
            mode: **self.server_mode.load(),
            config: Arc::clone(&self.server),
        }
    }
}

/// Loads every file the settings name, so a bad certificate fails the configuration
/// (at start, or a reload, which then keeps the old settings) with one clear line.
pub fn check(settings: &TlsSettings) -> Result<(), TlsError> {
    client_side(settings)?;
    server_side(settings)?;
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn client_side(settings: &TlsSettings) -> Result<Option<ClientTls>, TlsError> {
    let mode = settings.client_tls_sslmode;
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let cert_key = "client_tls_cert_file";
    let key_key = "client_tls_key_file";
    let certs = certificates(cert_key, settings.client_tls_cert_file.as_deref())?;
    let key = private_key(key_key, settings.client_tls_key_file.as_deref())?;
    let end_point = end_point_hash(certs[0].as_ref());
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| error(cert_key, e))?;
    let builder = if mode.verifies() {
        let ca_key = "client_tls_ca_file";
        let roots = roots(ca_key, settings.client_tls_ca_file.as_deref())?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| error(ca_key, e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| error(key_key, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(ClientTls {
        mode,
        acceptor: TlsAcceptor::from(Arc::new(config)),
        end_point,
    }))
}

fn server_side(settings: &TlsSettings) -> Result<Option<ClientConfig>, TlsError> {
    let mode = settings.server_tls_sslmode;
    if mode == SslMode::Disable {
        return Ok(None);
    }
    let ca_key = "server_tls_ca_file";
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = if mode.verifies() {
        let roots = roots(ca_key, settings.server_tls_ca_file.as_deref())?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| error(ca_key, e))?;
        if mode == SslMode::VerifyFull {
            webpki
        } else {
            Arc::new(verify::IgnoreHostName(webpki))
        }
    } else {
        // allow/prefer/require: encrypted but unauthenticated, as in libpq and PgBouncer.
        Arc::new(verify::AnyCertificate(provider()))
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| error(ca_key, e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match (
        settings.server_tls_cert_file.as_deref(),
        settings.server_tls_key_file.as_deref(),
    ) {
        (Some(cert), Some(key)) => {
            let certs = certificates("server_tls_cert_file", Some(cert))?;
            let key = private_key("server_tls_key_file", Some(key))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| error("server_tls_key_file", e))?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Some(config))
}

fn certificates(
    key: &'static str,
    path: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let path = path.ok_or_else(|| error(key, "not set"))?;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| error(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            key,
            format!("{}: no PEM certificate in the file", path.display()),
        ));
    }
    Ok(certs)
}

fn private_key(key: &'static str, path: Option<&Path>) -> Result<PrivateKeyDer<'static>, TlsError> {
    let path = path.ok_or_else(|| error(key, "not set"))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| error(key, format!("{}: {e}", path.display())))
}

fn roots(key: &'static str, path: Option<&Path>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in certificates(key, path)? {
        store
            .add(cert)
            .map_err(|e| error(key, format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(store))
}
