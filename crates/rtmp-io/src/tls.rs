//! The TLS client for `rtmps://`: the one certificate verifier of the workspace.

use std::{path::PathBuf, sync::Arc};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{self, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use crate::TlsError;

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Against the system's trusted roots.
    System,
    /// Against the CA certificate(s) in this PEM file (e.g. a server's self-signed cert).
    CaFile(PathBuf),
    /// Not at all (self-signed test and benchmark servers; never on the internet). The
    /// handshake signatures are still checked against the presented certificate.
    Insecure,
}

/// A TLS client verifying as `verify` says.
pub fn tls_connector(verify: &Verify) -> Result<TlsConnector, TlsError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = match verify {
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
        Verify::CaFile(p) => {
            let bad = |e: &dyn std::fmt::Display| {
                TlsError::Config(format!("--ca-file {}: {e}", p.display()))
            };
            let pem = std::fs::read(p).map_err(|e| bad(&e))?;
            let mut roots = RootCertStore::empty();
            for c in rustls_pemfile::certs(&mut &pem[..]) {
                roots.add(c.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no PEM certificate in it"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Verify::System => {
            let mut roots = RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                // One unusable system certificate should not cost the others.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(TlsError::Config(
                    "no trusted root certificates found on this system (install ca-certificates), or pass --ca-file".into(),
                ));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Accepts any certificate, but still checks that the handshake was signed with it.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
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
        crypto::verify_tls13_signature(
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
