//! Whether a server certificate names the host, as libpq decides it for
//! `sslmode=verify-full`: the subject alternative names first (`dNSName`
//! case-insensitively, a leading `*.` standing for one label; `iPAddress`
//! by its bytes), and the subject's first common name only when no
//! alternative name of the host's kind (a DNS name or an IP address) is
//! there. The messages are libpq's.

use std::net::IpAddr;

use super::element;

/// The names of a certificate that matter for the host check.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// `dNSName` entries of the subject alternative names (raw bytes: a
    /// name with a NUL in it matches nothing).
    pub dns: Vec<Vec<u8>>,
    /// `iPAddress` entries (4 or 16 bytes; any other length matches nothing).
    pub ips: Vec<Vec<u8>>,
    /// The subject's first common name.
    pub common_name: Option<Vec<u8>>,
}

/// subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The names in a DER certificate; `None` when it cannot be read.
pub fn of(der: &[u8]) -> Option<Names> {
    let (_, certificate, _) = element(der)?;
    let (_, tbs, _) = element(certificate)?;
    let mut rest = tbs;
    // [0] version, serial number, signature, issuer, validity, subject.
    let (tag, _, after) = element(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (_, subject, after_subject) = element(rest)?;
    let mut names = Names {
        common_name: common_name(subject),
        ..Names::default()
    };
    // subjectPublicKeyInfo, then the optional unique ids and [3] extensions.
    rest = element(after_subject)?.2;
    while !rest.is_empty() {
        let (tag, content, after) = element(rest)?;
        rest = after;
        if tag == 0xa3 {
            alt_names(content, &mut names)?;
        }
    }
    Some(names)
}

/// The first common name in a `Name` (a sequence of sets of
/// `{ type, value }`).
fn common_name(mut name: &[u8]) -> Option<Vec<u8>> {
    while !name.is_empty() {
        let (_, set, after) = element(name).filter(|(tag, _, _)| *tag == 0x31)?;
        name = after;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (_, attribute, after) = element(attributes)?;
            attributes = after;
            let (tag, oid, value) = element(attribute)?;
            if tag == 0x06 && oid == COMMON_NAME {
                let (tag, text, _) = element(value)?;
                return Some(match tag {
                    // BMPString: UTF-16BE; the host names compared are ASCII.
                    0x1e => text
                        .chunks(2)
                        .map(|c| if c[0] == 0 { c[1] } else { 0xff })
                        .collect(),
                    _ => text.to_vec(),
                });
            }
        }
    }
    None
}

/// The subject alternative names among the extensions
/// (`SEQUENCE { SEQUENCE { extnID, critical?, extnValue } … }`).
fn alt_names(extensions: &[u8], names: &mut Names) -> Option<()> {
    let (_, mut list, _) = element(extensions)?;
    while !list.is_empty() {
        let (_, extension, after) = element(list)?;
        list = after;
        let (_, oid, mut rest) = element(extension)?;
        if oid != SUBJECT_ALT_NAME {
            continue;
        }
        let (tag, mut value, after) = element(rest)?;
        if tag == 0x01 {
            rest = after;
            value = element(rest)?.1;
        }
        let (_, mut general, _) = element(value)?;
        while !general.is_empty() {
            let (tag, content, after) = element(general)?;
            general = after;
            match tag {
                0x82 => names.dns.push(content.to_vec()),
                0x87 => names.ips.push(content.to_vec()),
                _ => {}
            }
        }
    }
    Some(())
}

/// libpq's check of `host` against a certificate's names; the error is
/// libpq's message.
pub fn check(der: &[u8], host: &str) -> Result<(), String> {
    let names = of(der).ok_or("could not get server's host name from server certificate")?;
    names.check(host)
}

impl Names {
    /// libpq's check of `host` against these names.
    pub fn check(&self, host: &str) -> Result<(), String> {
        let names = self;
        let ip = host_ip(host);
        let mut examined: Vec<String> = Vec::new();
        let mut matched = false;
        for name in &names.dns {
            examined.push(String::from_utf8_lossy(name).into_owned());
            if ip.is_none() && dns_matches(name, host) {
                matched = true;
            }
        }
        for addr in &names.ips {
            examined.push(shown_ip(addr));
            if ip.is_some_and(|ip| ip_bytes(ip) == *addr) {
                matched = true;
            }
        }
        let same_kind = if ip.is_some() {
            !names.ips.is_empty()
        } else {
            !names.dns.is_empty()
        };
        if !matched && !same_kind {
            if let Some(cn) = &names.common_name {
                examined.push(String::from_utf8_lossy(cn).into_owned());
                // libpq compares a common name as text, also for an address.
                matched = dns_matches(cn, host);
            }
        }
        if matched {
            return Ok(());
        }
        Err(match examined.as_slice() {
            [] => "could not get server's host name from server certificate".to_string(),
            [one] => {
                format!("server certificate for \"{one}\" does not match host name \"{host}\"")
            }
            [first, rest @ ..] => format!(
            "server certificate for \"{first}\" (and {} other name{}) does not match host name \
             \"{host}\"",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ),
        })
    }
}

/// An address as libpq reads a host (`inet_aton`'s dotted forms are
/// covered for the usual four parts; IPv6 by its text form).
fn host_ip(host: &str) -> Option<IpAddr> {
    host.parse::<IpAddr>().ok()
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn shown_ip(addr: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(addr) {
        IpAddr::from(v4).to_string()
    } else if let Ok(v6) = <[u8; 16]>::try_from(addr) {
        IpAddr::from(v6).to_string()
    } else {
        "(an address of a length no address has)".to_string()
    }
}

/// A certificate name against the host: equal ignoring ASCII case, or a
/// `*.` pattern whose rest ends the host with no dot before it. A name
/// holding a NUL matches nothing.
fn dns_matches(name: &[u8], host: &str) -> bool {
    if name.contains(&0) {
        return false;
    }
    let host = host.as_bytes();
    if name.eq_ignore_ascii_case(host) {
        return true;
    }
    let Some(suffix) = name.strip_prefix(b"*") else {
        return false;
    };
    if !suffix.starts_with(b".") || suffix.len() < 2 || name.len() > host.len() {
        return false;
    }
    let start = host.len() - suffix.len();
    host[start..].eq_ignore_ascii_case(suffix) && !host[..start].contains(&b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_libpq_matches_them() {
        assert!(dns_matches(b"DB.example.com", "db.EXAMPLE.com"));
        assert!(dns_matches(b"*.example.com", "db.example.com"));
        assert!(dns_matches(b"*.example.com", "x.example.com"));
        assert!(!dns_matches(b"*.example.com", "a.db.example.com"));
        assert!(!dns_matches(b"*.example.com", "example.com"));
        assert!(!dns_matches(b"*.example.com", ".example.com"));
        assert!(!dns_matches(b"*example.com", "dbexample.com"));
        assert!(!dns_matches(b"db.example.com\0.evil", "db.example.com"));
        assert!(!dns_matches(b"db.example.com", "db.example.co"));
    }

    fn names(dns: &[&str], ips: &[&[u8]], cn: Option<&str>) -> Names {
        Names {
            dns: dns.iter().map(|d| d.as_bytes().to_vec()).collect(),
            ips: ips.iter().map(|i| i.to_vec()).collect(),
            common_name: cn.map(|c| c.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_common_name_counts_only_without_a_name_of_the_hosts_kind() {
        // A DNS name in the alternative names: the common name is ignored.
        let n = names(&["db.example.com"], &[], Some("other.example.com"));
        assert!(n.check("db.example.com").is_ok());
        let e = n.check("other.example.com").unwrap_err();
        assert_eq!(
            e,
            "server certificate for \"db.example.com\" does not match host name \"other.example.com\""
        );
        // An address as host: a DNS name does not stop the common name.
        let n = names(&["db.example.com"], &[], Some("10.0.0.7"));
        assert!(n.check("10.0.0.7").is_ok());
        // ... but an address among the alternative names does.
        let n = names(&["db"], &[&[127, 0, 0, 1]], Some("10.0.0.7"));
        assert!(n.check("127.0.0.1").is_ok());
        let e = n.check("10.0.0.7").unwrap_err();
        assert!(e.contains("\"db\" (and 1 other name)"), "{e}");
        let v6 = "::1".parse::<IpAddr>().map(ip_bytes).unwrap();
        assert!(names(&[], &[&v6], None).check("::1").is_ok());
        assert!(names(&[], &[&v6], None).check("127.0.0.1").is_err());
        // Only a common name: it is the name.
        assert!(names(&[], &[], Some("*.example.com"))
            .check("db.example.com")
            .is_ok());
        let e = names(&[], &[], None).check("db").unwrap_err();
        assert!(e.contains("could not get server's host name"), "{e}");
    }

    #[test]
    fn unreadable_certificates_name_nothing() {
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
        let e = check(&[0x30, 0x00], "db").unwrap_err();
        assert!(e.contains("could not get server's host name"), "{e}");
        assert_eq!(shown_ip(&[10, 0, 0, 1]), "10.0.0.1");
        assert!(shown_ip(&[1, 2, 3]).contains("length"));
    }
}
