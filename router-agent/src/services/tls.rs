//! TLS for `https://` checks (cargo feature `https`): rustls with ring. The server's
//! certificate is verified against `ca_file`, else the Mozilla roots (webpki-roots); with
//! `insecure = true` any certificate is taken (the handshake's signatures still are checked).

use std::{fmt, path::Path, sync::Arc};

use tokio::net::TcpStream;
use tokio_rustls::{
    TlsConnector,
    client::TlsStream,
    rustls::{
        self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
        client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        crypto::{CryptoProvider, ring},
        pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
    },
};

use super::error::CheckError;

pub struct Tls {
    connector: TlsConnector,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// A client for one check: trusts `ca_file`'s certificates (PEM), else the Mozilla roots;
    /// `insecure`: any certificate.
    pub fn new(ca_file: Option<&Path>, insecure: bool) -> Result<Self, String> {
        let provider = ring_provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?;
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(roots(ca_file)?)
                .with_no_client_auth()
        };
        Ok(Tls {
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// The handshake, with `host` as the name (or address) the certificate must be for.
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, CheckError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|err| CheckError::Tls(format!("{host:?}: {err}")))?;
        self.connector
            .connect(name, stream)
            .await
            .map_err(|err| CheckError::Tls(err.to_string()))
    }
}

/// ring, as chosen for the build (aws-lc needs cmake and minutes of C). rustls 0.23.48
/// deprecates it for lacking post-quantum key exchange, which a health check on the host's own
/// network does not need.
#[allow(deprecated)]
pub(super) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(path) = ca_file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| format!("{}: {err}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{}: {err}", path.display()))?;
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(format!("{}: no usable certificate", path.display()));
    }
    Ok(roots)
}

/// `insecure = true`: whatever certificate the server shows (a self-signed one on a health
/// port), its handshake signatures verified all the same.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
