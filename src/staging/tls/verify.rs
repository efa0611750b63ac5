//! The check of the server's certificate, as libpq makes it: none without
//! a root certificate (`prefer`, `require`), the chain up to a root
//! certificate (`verify-ca`, and `require` when a root certificate file
//! is there), and the chain and the host name (`verify-full`, with
//! libpq's name rules: [`super::names`]). The server must hold its
//! certificate's key whatever is checked.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// What the server's certificate is checked against.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The root certificates (DER).
    pub roots: Vec<CertificateDer<'static>>,
    /// Where they were read from, for messages (`sslrootcert=…`).
    pub source: String,
    /// `verify-full`: the certificate must name the host.
    pub host_name: bool,
}

/// A certificate error in words (shown as "invalid peer certificate: …").
#[derive(Debug)]
struct Why(String);

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Why {}

fn refused(why: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Why(why)))))
}

#[derive(Debug)]
pub(super) struct Verifier {
    provider: Arc<CryptoProvider>,
    trust: Option<Checked>,
}

#[derive(Debug)]
struct Checked {
    store: RootCertStore,
    trust: Trust,
}

impl Verifier {
    /// A verifier checking what `trust` says (nothing without it); the
    /// error names a root certificate that is not one.
    pub(super) fn new(
        provider: Arc<CryptoProvider>,
        trust: Option<Trust>,
    ) -> Result<Verifier, rustls::Error> {
        let trust = match trust {
            None => None,
            Some(trust) => {
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(trust.roots.iter().cloned());
                if added == 0 {
                    return Err(rustls::Error::General(format!(
                        "{}: no root certificate that can be used",
                        trust.source
                    )));
                }
                Some(Checked { store, trust })
            }
        };
        Ok(Verifier { provider, trust })
    }
}

impl Checked {
    /// The chain up to a root: a root that is the server's certificate
    /// itself (a self-signed certificate copied as `root.crt`) is trusted
    /// as it is, as OpenSSL trusts it.
    fn chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        provider: &CryptoProvider,
    ) -> Result<(), rustls::Error> {
        if self
            .trust
            .roots
            .iter()
            .any(|r| r.as_ref() == end_entity.as_ref())
        {
            return Ok(());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        let algorithms = provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.store,
            intermediates,
            now,
            algorithms,
        )
        .map_err(|e| {
            let what = match &e {
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => "is not signed by a root certificate of".to_string(),
                rustls::Error::InvalidCertificate(c) => format!("({c}) does not verify against"),
                other => format!("({other}) does not verify against"),
            };
            refused(format!(
                "the server's certificate {what} {}",
                self.trust.source
            ))
        })
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(checked) = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        checked.chain(end_entity, intermediates, now, &self.provider)?;
        if checked.trust.host_name {
            super::names::check(end_entity.as_ref(), &server_name.to_str()).map_err(refused)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
