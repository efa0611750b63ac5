//! The check of the server's certificate, as libpq makes it: none without
//! a root certificate (`prefer`, `require`), the chain up to a root
//! certificate (`verify-ca`, and `require` when a root certificate file
//! is there), and the chain and the host name (`verify-full`, with
//! libpq's name rules: [`super::names`]). With certificate revocation
//! lists, every certificate of the chain must be in its issuer's list and
//! not revoked, as libpq's OpenSSL checks the whole chain. The server must
//! hold its certificate's key whatever is checked.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};

/// What the server's certificate is checked against.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The root certificates (DER).
    pub roots: Vec<CertificateDer<'static>>,
    /// Where they were read from, for messages (`sslrootcert=…`).
    pub source: String,
    /// Certificate revocation lists (DER; none: revocation not checked),
    /// and where they were read from, for messages.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub crl_source: String,
    /// `verify-full`: the certificate must name the host.
    pub host_name: bool,
}

/// Why a certificate was refused, in words (which the connector shows as
/// they are, not as rustls's debug form).
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
    /// The chain's check (and the revocation lists'); its host-name check
    /// is not libpq's, and is left to [`super::names`].
    webpki: Arc<WebPkiServerVerifier>,
    trust: Trust,
}

impl Verifier {
    /// A verifier checking what `trust` says (nothing without it); the
    /// error names a root certificate or revocation list that is not one.
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
                let mut builder =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone());
                if !trust.crls.is_empty() {
                    builder = builder
                        .with_crls(trust.crls.iter().cloned())
                        .enforce_revocation_expiration();
                }
                let webpki = builder.build().map_err(|e| {
                    rustls::Error::General(format!("{} {}: {e}", trust.source, trust.crl_source))
                })?;
                Some(Checked { webpki, trust })
            }
        };
        Ok(Verifier { provider, trust })
    }
}

impl Checked {
    /// The chain up to a root, and its revocation: a root that is the
    /// server's certificate itself (a self-signed certificate copied as
    /// `root.crt`) is trusted as it is, as OpenSSL trusts it.
    fn chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let roots = &self.trust.roots;
        if roots.iter().any(|r| r.as_ref() == end_entity.as_ref()) {
            return Ok(());
        }
        let checked =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, &[], now);
        let e = match checked {
            // The name is checked after the chain and its revocation: the
            // chain held.
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => return Ok(()),
            Err(e) => e,
        };
        let (source, crls) = (&self.trust.source, &self.trust.crl_source);
        Err(refused(match e {
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => {
                format!("the server's certificate is not signed by a root certificate of {source}")
            }
            rustls::Error::InvalidCertificate(CertificateError::Revoked) => {
                format!("the server's certificate, or one of its chain, is revoked by {crls}")
            }
            rustls::Error::InvalidCertificate(CertificateError::UnknownRevocationStatus) => {
                format!(
                "a certificate of the server's chain is in no revocation list of its issuer in \
                 {crls} (libpq checks every certificate of the chain)"
            )
            }
            rustls::Error::InvalidCertificate(c) => {
                format!("the server's certificate ({c}) does not verify against {source}")
            }
            other => format!("the server's certificate ({other}) does not verify against {source}"),
        }))
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
        checked.chain(end_entity, intermediates, server_name, now)?;
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
