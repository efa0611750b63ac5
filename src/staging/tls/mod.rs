//! TLS for downtime's own connections, as libpq has it: encrypted when the
//! server offers TLS (`prefer`, the default) or must be (`require`); the
//! server's certificate checked against root certificates (`verify-ca`,
//! and `require` when a root certificate file is there) and its host name
//! too (`verify-full`, [`names`]); a client certificate presented when
//! one is given (`sslcert`/`sslkey`), for servers that authenticate by
//! certificate. Which files those come from is decided where the
//! connection string is read ([`super::source::ssl`]). Channel binding
//! (`tls-server-end-point`, SCRAM-SHA-256-PLUS) is offered with the hash
//! the certificate's own signature names, so `channel_binding=require`
//! holds.

pub mod names;
mod verify;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

pub use verify::Trust;

/// The TLS connector of every connection downtime opens.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// The host name is checked (`verify-full`): a host that is no name
    /// is refused instead of stood in for.
    host_name: bool,
}

/// The TLS versions a connection may speak: libpq's
/// `ssl_min_protocol_version` and `ssl_max_protocol_version` within what
/// rustls speaks (1.2 and 1.3; both by default, libpq's default range
/// being 1.2 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub tls12: bool,
    pub tls13: bool,
}

impl Default for Versions {
    fn default() -> Versions {
        Versions {
            tls12: true,
            tls13: true,
        }
    }
}

/// A client certificate (with the chain to send) and its private key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Tls {
    /// A connector that encrypts and does not check the certificate.
    pub fn new() -> Result<Tls, rustls::Error> {
        Tls::with(None, None, Versions::default())
    }

    /// A connector that checks what `trust` says, presents `identity`,
    /// and speaks `versions`.
    pub fn with(
        trust: Option<Trust>,
        identity: Option<Identity>,
        versions: Versions,
    ) -> Result<Tls, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let host_name = trust.as_ref().is_some_and(|t| t.host_name);
        let verifier = verify::Verifier::new(provider.clone(), trust)?;
        let mut speaks = Vec::new();
        if versions.tls12 {
            speaks.push(&rustls::version::TLS12);
        }
        if versions.tls13 {
            speaks.push(&rustls::version::TLS13);
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&speaks)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match identity {
            Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
            None => builder.with_no_client_auth(),
        };
        Ok(Tls {
            config: Arc::new(config),
            host_name,
        })
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connector;
    type Error = rustls::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connector, rustls::Error> {
        // No host name (a Unix socket, where the server offers no TLS, or
        // an address alone): where the name is not checked, any stands in.
        let name = match ServerName::try_from(domain.to_string()) {
            Ok(name) => name,
            Err(_) if self.host_name => {
                return Err(rustls::Error::General(format!(
                    "sslmode=verify-full: `{domain}` is not a host name the server's \
                     certificate can be checked against"
                )))
            }
            Err(_) => ServerName::try_from("localhost".to_string())
                .map_err(|e| rustls::Error::General(e.to_string()))?,
        };
        Ok(Connector {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name,
        })
    }
}

/// One connection's handshake.
pub struct Connector {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let tls = self
                .connector
                .connect(self.name, stream)
                .await
                .map_err(in_words)?;
            Ok(TlsStream(tls))
        })
    }
}

/// A certificate [`verify`] refused, in its own words (rustls shows them
/// as a debug structure); any other error as it is.
fn in_words(e: io::Error) -> io::Error {
    let why = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(|r| match r {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) => {
                Some(o.0.to_string())
            }
            _ => None,
        });
    match why {
        Some(why) => io::Error::new(e.kind(), why),
        None => e,
    }
}

/// An encrypted connection.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        let hash = session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| end_point_hash(cert.as_ref()));
        match hash {
            Some(h) => ChannelBinding::tls_server_end_point(h),
            None => ChannelBinding::none(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The `tls-server-end-point` channel binding of a certificate (RFC 5929):
/// its hash with the function its signature uses, SHA-256 for MD5 and
/// SHA-1; `None` for a signature without one (Ed25519) or one not known.
fn end_point_hash(der: &[u8]) -> Option<Vec<u8>> {
    // The signature algorithms' object identifiers, as DER content bytes.
    const SHA256: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x04], // md5WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05], // sha1WithRSA
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b], // sha256WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01],             // ecdsa-with-SHA1
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],       // ecdsa-with-SHA256
    ];
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSA
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    let oid = signature_algorithm(der)?;
    if SHA256.contains(&oid) {
        Some(sha2::Sha256::digest(der).to_vec())
    } else if SHA384.contains(&oid) {
        Some(sha2::Sha384::digest(der).to_vec())
    } else if SHA512.contains(&oid) {
        Some(sha2::Sha512::digest(der).to_vec())
    } else {
        None
    }
}

/// The object identifier of a certificate's `signatureAlgorithm`:
/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm
/// SEQUENCE { algorithm OID, … }, signature }`.
fn signature_algorithm(der: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = element(der)?;
    if tag != 0x30 {
        return None;
    }
    let (_, _, after_tbs) = element(certificate)?;
    let (tag, algorithm, _) = element(after_tbs)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: its tag, its content, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DER element with its length.
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.extend([0x82, (content.len() >> 8) as u8, content.len() as u8]);
        }
        out.extend_from_slice(content);
        out
    }

    /// A certificate's shape, with `oid` as its signature algorithm.
    fn certificate(oid: &[u8]) -> Vec<u8> {
        let tbs = der(0x30, &[0x02; 300]);
        let algorithm = der(0x30, &[der(0x06, oid), vec![0x05, 0x00]].concat());
        let signature = der(0x03, &[0x00, 0x01, 0x02]);
        der(0x30, &[tbs, algorithm, signature].concat())
    }

    #[test]
    fn the_end_point_hash_follows_the_signature() {
        let ecdsa384 = certificate(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        let rsa256 = certificate(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b]);
        let sha1 = certificate(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05]);
        let ed25519 = certificate(&[0x2b, 0x65, 0x70]);
        assert_eq!(end_point_hash(&ecdsa384).map(|h| h.len()), Some(48));
        assert_eq!(
            end_point_hash(&rsa256),
            Some(sha2::Sha256::digest(&rsa256).to_vec())
        );
        assert_eq!(end_point_hash(&sha1).map(|h| h.len()), Some(32));
        assert_eq!(end_point_hash(&ed25519), None);
        assert_eq!(end_point_hash(&[0x30, 0x85, 0x01]), None);
        assert_eq!(end_point_hash(&rsa256[..20]), None);
    }
}
