//! TLS settings of a connection string, decided as libpq decides them:
//! `sslmode` (default `prefer`; `verify-full` when `sslrootcert=system`
//! and no mode is given, as libpq 16 has it), the root certificates
//! (`sslrootcert`, else `~/.postgresql/root.crt`; `system` for the
//! operating system's bundle), and the client certificate (`sslcert` and
//! `sslkey`, else `~/.postgresql/postgresql.crt` and `.key`, sent when the
//! certificate file is there), and where the chain is checked the
//! revocation lists (`sslcrl`, `sslcrldir`, else `~/.postgresql/root.crl`).
//! The files are found when the string is
//! read, read when a connection is set up ([`Ssl::tls`]), and handed to
//! client programs by the paths decided here, so libpq reads the same.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::staging::tls::{Identity, Tls, Trust, Versions};

/// Where `sslrootcert=system` finds the operating system's root
/// certificates when `SSL_CERT_FILE` does not say: Debian and Ubuntu,
/// Fedora and RHEL, openSUSE, Alpine.
pub const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// libpq's advice after a missing root certificate file.
const ROOT_HINT: &str = "Either provide the file, use the system's trusted roots with \
                         sslrootcert=system, or change sslmode to disable server certificate \
                         verification.";

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Option<Mode> {
        Some(match value {
            "disable" => Mode::Disable,
            "allow" => Mode::Allow,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Allow => "allow",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }

    fn verifies(self) -> bool {
        matches!(self, Mode::VerifyCa | Mode::VerifyFull)
    }

    /// The mode of the driver (which knows disable, prefer and require;
    /// the certificate is checked by downtime's own verifier).
    pub fn driver(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            // `allow` tries TLS first, as `prefer` does.
            Mode::Allow | Mode::Prefer => "prefer",
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => "require",
        }
    }
}

/// The TLS settings decided for a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssl {
    pub mode: Mode,
    /// The root certificate file the server's certificate is checked
    /// against (`None`: not checked).
    pub root: Option<PathBuf>,
    /// `sslrootcert=system`: `root` is the operating system's bundle.
    pub system: bool,
    /// The certificate revocation list file and directory read, when the
    /// chain is checked and they are there.
    pub crl: Option<PathBuf>,
    pub crl_dir: Option<PathBuf>,
    /// The client certificate and key files, when a certificate is sent.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The TLS versions allowed.
    pub versions: Versions,
}

/// A setting, empty as absent.
fn setting<'a>(get: &impl Fn(&str) -> Option<&'a str>, name: &str) -> Option<&'a str> {
    get(name).filter(|v| !v.is_empty())
}

impl Ssl {
    /// libpq's default without any file: `prefer`, nothing checked, no
    /// client certificate.
    pub fn plain() -> Ssl {
        Ssl {
            mode: Mode::Prefer,
            root: None,
            system: false,
            crl: None,
            crl_dir: None,
            client: None,
            versions: Versions::default(),
        }
    }

    /// The settings `get` resolves to, with `home` for the default files;
    /// errors as libpq's, naming the setting.
    pub fn decide<'a>(get: impl Fn(&str) -> Option<&'a str>, home: Option<&Path>) -> Result<Ssl> {
        let rootcert = setting(&get, "sslrootcert");
        let system = rootcert == Some("system");
        let mode = match setting(&get, "sslmode") {
            None if system => Mode::VerifyFull,
            None => Mode::Prefer,
            Some(v) => Mode::parse(v).ok_or_else(|| {
                Error::Usage(format!(
                    "sslmode: invalid sslmode value: \"{v}\" (disable, allow, prefer, require, \
                     verify-ca or verify-full)"
                ))
            })?,
        };
        if system && mode != Mode::VerifyFull {
            return Err(Error::Usage(format!(
                "sslmode: weak sslmode \"{}\" may not be used with sslrootcert=system (use \
                 \"verify-full\")",
                mode.name()
            )));
        }
        if mode == Mode::VerifyFull && setting(&get, "host").is_none() {
            return Err(Error::Usage(
                "sslmode: host name must be specified for a verified SSL connection (verify-full \
                 checks the certificate against `host`; `hostaddr` alone names no host)"
                    .into(),
            ));
        }
        let versions = versions(&get)?;
        if mode == Mode::Disable {
            return Ok(Ssl {
                mode,
                versions,
                ..Ssl::plain()
            });
        }
        let dot = |file: &str| home.map(|h| h.join(".postgresql").join(file));
        let root = if system {
            Some(system_bundle()?)
        } else {
            match rootcert.map(PathBuf::from).or_else(|| dot("root.crt")) {
                Some(path) if path.exists() => Some(path),
                Some(path) if mode.verifies() => {
                    return Err(Error::Usage(format!(
                        "sslrootcert: root certificate file \"{}\" does not exist\n{ROOT_HINT}",
                        path.display()
                    )))
                }
                None if mode.verifies() => {
                    return Err(Error::Usage(format!(
                        "sslrootcert: could not get home directory to locate root certificate \
                         file\n{ROOT_HINT}"
                    )))
                }
                _ => None,
            }
        };
        // `prefer` and `allow` fall back to a connection without TLS in
        // libpq when the check fails; downtime does not check there.
        let root = root.filter(|_| !matches!(mode, Mode::Prefer | Mode::Allow));
        // Revocation lists where the chain is checked: `sslcrl` and
        // `sslcrldir`, else `~/.postgresql/root.crl`; one not there is
        // passed over, as libpq passes over it.
        let (crl, crl_dir) = match &root {
            None => (None, None),
            Some(_) => {
                let file = setting(&get, "sslcrl").map(PathBuf::from);
                let dir = setting(&get, "sslcrldir").map(PathBuf::from);
                let file = match (&file, &dir) {
                    (None, None) => dot("root.crl"),
                    _ => file,
                };
                (file.filter(|f| f.exists()), dir.filter(|d| d.is_dir()))
            }
        };
        let client = match setting(&get, "sslcertmode") {
            Some("disable") => None,
            _ => client_files(&get, dot("postgresql.crt"), dot("postgresql.key"))?,
        };
        Ok(Ssl {
            mode,
            root,
            system,
            crl,
            crl_dir,
            client,
            versions,
        })
    }

    /// The connector for these settings: the root and client files read
    /// (through [`fsutil`], within [`fsutil::CERTIFICATES`]) and checked.
    pub fn tls(&self) -> Result<Tls> {
        let trust = match &self.root {
            None => None,
            Some(path) => Some(Trust {
                roots: certificates(path, "sslrootcert")?,
                source: match (self.system, self.mode) {
                    (true, _) => format!("the system's root certificates ({})", path.display()),
                    (false, Mode::Require) => format!(
                        "sslrootcert \"{}\" (with the file there, sslmode=require checks the \
                         chain, as libpq does)",
                        path.display()
                    ),
                    (false, _) => format!("sslrootcert \"{}\"", path.display()),
                },
                host_name: self.mode == Mode::VerifyFull,
                crls: self.crls()?,
                crl_source: self.crl_source(),
            }),
        };
        let identity = match &self.client {
            None => None,
            Some((cert, key)) => {
                let key = private_key(key)?;
                Some(Identity {
                    chain: certificates(cert, "sslcert")?,
                    key,
                })
            }
        };
        let what = match (&self.client, &self.root) {
            (Some((cert, key)), _) => format!(
                "sslcert \"{}\" with sslkey \"{}\"",
                cert.display(),
                key.display()
            ),
            (None, Some(root)) => format!("sslrootcert \"{}\"", root.display()),
            (None, None) => "TLS".to_string(),
        };
        Tls::with(trust, identity, self.versions).map_err(|e| Error::Usage(format!("{what}: {e}")))
    }

    /// What a client program is handed instead of the TLS settings given:
    /// the mode and the files decided here, by path.
    pub fn for_client(&self) -> Vec<(&'static str, String)> {
        // `prefer` is libpq's default too.
        let mut out = Vec::new();
        if self.mode != Mode::Prefer {
            out.push(("sslmode", self.mode.name().to_string()));
        }
        if let Some(root) = &self.root {
            out.push(("sslrootcert", root.display().to_string()));
        }
        if let Some(crl) = &self.crl {
            out.push(("sslcrl", crl.display().to_string()));
        }
        if let Some(dir) = &self.crl_dir {
            out.push(("sslcrldir", dir.display().to_string()));
        }
        if let Some((cert, key)) = &self.client {
            out.push(("sslcert", cert.display().to_string()));
            out.push(("sslkey", key.display().to_string()));
        }
        out
    }
}

impl Ssl {
    /// The revocation lists of `sslcrl` and of every file in `sslcrldir`.
    fn crls(&self) -> Result<Vec<CertificateRevocationListDer<'static>>> {
        let mut files: Vec<(PathBuf, &str)> = Vec::new();
        if let Some(crl) = &self.crl {
            files.push((crl.clone(), "sslcrl"));
        }
        if let Some(dir) = &self.crl_dir {
            let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
            let mut in_dir: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            in_dir.sort();
            files.extend(in_dir.into_iter().map(|p| (p, "sslcrldir")));
        }
        let mut crls = Vec::new();
        for (path, setting) in files {
            let bytes = fsutil::read_regular(&path, fsutil::CERTIFICATES)?;
            let found = CertificateRevocationListDer::pem_slice_iter(&bytes)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::input(&path, format!("{setting}: not a PEM CRL file: {e}")))?;
            if found.is_empty() {
                return Err(Error::input(
                    &path,
                    format!("{setting}: no certificate revocation list in the file (PEM, `-----BEGIN X509 CRL-----`)"),
                ));
            }
            crls.extend(found);
        }
        Ok(crls)
    }

    /// Where the revocation lists come from, for messages.
    fn crl_source(&self) -> String {
        let mut parts = Vec::new();
        if let Some(crl) = &self.crl {
            parts.push(format!("sslcrl \"{}\"", crl.display()));
        }
        if let Some(dir) = &self.crl_dir {
            parts.push(format!("sslcrldir \"{}\"", dir.display()));
        }
        parts.join(" and ")
    }
}

/// The TLS versions `ssl_min_protocol_version` and
/// `ssl_max_protocol_version` allow (libpq's default: TLSv1.2 and up),
/// within the 1.2 and 1.3 rustls speaks; libpq's errors.
fn versions<'a>(get: &impl Fn(&str) -> Option<&'a str>) -> Result<Versions> {
    let version = |name: &str, which: &str| -> Result<Option<u8>> {
        let Some(v) = setting(get, name) else {
            return Ok(None);
        };
        let known = [
            ("TLSv1", 10),
            ("TLSv1.1", 11),
            ("TLSv1.2", 12),
            ("TLSv1.3", 13),
        ];
        match known.iter().find(|(n, _)| n.eq_ignore_ascii_case(v)) {
            Some((_, n)) => Ok(Some(*n)),
            None => Err(Error::Usage(format!(
                "{name}: invalid value \"{v}\" for {which} SSL protocol version (TLSv1, TLSv1.1, \
                 TLSv1.2 or TLSv1.3)"
            ))),
        }
    };
    let min = version("ssl_min_protocol_version", "minimum")?.unwrap_or(12);
    let max = version("ssl_max_protocol_version", "maximum")?.unwrap_or(13);
    if min > max {
        return Err(Error::Usage(
            "ssl_min_protocol_version: invalid SSL protocol version range (the minimum is above \
             the maximum)"
                .into(),
        ));
    }
    let allowed = Versions {
        tls12: min <= 12 && max >= 12,
        tls13: max >= 13,
    };
    if !allowed.tls12 && !allowed.tls13 {
        return Err(Error::Usage(
            "ssl_max_protocol_version: downtime's own connections speak TLS 1.2 and 1.3 only; \
             TLS 1.0 and 1.1 are not offered"
                .into(),
        ));
    }
    Ok(allowed)
}

/// The operating system's root certificates: `SSL_CERT_FILE` (as OpenSSL
/// reads it), else the first of [`SYSTEM_BUNDLES`] there is.
fn system_bundle() -> Result<PathBuf> {
    if let Some(file) = std::env::var_os("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Ok(PathBuf::from(file));
    }
    SYSTEM_BUNDLES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Usage(format!(
                "sslrootcert=system: no root certificate bundle of the system was found (looked \
                 for {}); install the CA certificates package, or name the bundle with \
                 SSL_CERT_FILE or sslrootcert",
                SYSTEM_BUNDLES.join(", ")
            ))
        })
}

/// The client certificate and key, when the certificate file is there;
/// a certificate without its key is libpq's error.
fn client_files<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    default_cert: Option<PathBuf>,
    default_key: Option<PathBuf>,
) -> Result<Option<(PathBuf, PathBuf)>> {
    let Some(cert) = setting(get, "sslcert").map(PathBuf::from).or(default_cert) else {
        return Ok(None);
    };
    match std::fs::metadata(&cert) {
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(Error::Usage(format!(
                "sslcert: could not open certificate file \"{}\": {e}",
                cert.display()
            )))
        }
    }
    let key = match setting(get, "sslkey") {
        Some(k) if k.contains(':') => {
            return Err(Error::Usage(format!(
                "sslkey: \"{k}\" names an OpenSSL engine key, which downtime's own connections \
                 cannot use; give a key file"
            )))
        }
        Some(k) => PathBuf::from(k),
        None => default_key.ok_or_else(|| {
            Error::Usage("sslkey: no home directory to find postgresql.key in".into())
        })?,
    };
    if !key.exists() {
        return Err(Error::Usage(format!(
            "sslkey: certificate present, but not private key file \"{}\"",
            key.display()
        )));
    }
    Ok(Some((cert, key)))
}

/// The certificates of a PEM file; one at least.
fn certificates(path: &Path, setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = fsutil::read_regular(path, fsutil::CERTIFICATES)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::input(path, format!("{setting}: not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(Error::input(
            path,
            format!("{setting}: no certificate in the file (PEM, `-----BEGIN CERTIFICATE-----`)"),
        ));
    }
    Ok(certs)
}

/// The client's private key, after libpq's permission rule: no group or
/// world access (0600 or less), or for a file root owns, group read at
/// most (0640 or less).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let (_, meta) = fsutil::open_regular(path)?;
    let mode = meta.mode();
    let loose = if meta.uid() == 0 {
        mode & 0o037 != 0
    } else {
        mode & 0o077 != 0
    };
    if loose {
        return Err(Error::input(
            path,
            format!(
                "sslkey: private key file has group or world access (mode {:04o}); file must \
                 have permissions u=rw (0600) or less if owned by the current user, or \
                 permissions u=rw,g=r (0640) or less if owned by root",
                mode & 0o7777
            ),
        ));
    }
    let bytes = fsutil::read_regular(path, fsutil::CERTIFICATES)?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED") {
        return Err(Error::input(
            path,
            "sslkey: the private key is encrypted, and downtime does not take sslpassword; \
             decrypt it into a file only you can read (`openssl pkey -in KEY -out KEY.plain`)",
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        Error::input(
            path,
            format!("sslkey: not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}
