//! An existing database as the baseline (`--from-url`). The source is only
//! ever read: it is dumped with `pg_dump` on a connection whose transactions
//! are read-only, and no patch statement is ever sent to it. A source whose
//! host or database name looks like production needs an explicit flag.

use std::path::Path;
use std::process::Command;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Words that mark a production host or database name by default.
pub const DEFAULT_PRODUCTION_PATTERNS: &[&str] = &["prod", "production", "live"];

/// The flag that lets downtime read from a production-looking source.
pub const PRODUCTION_FLAG: &str = "--i-know-this-is-production";

/// A source database given by URL or connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    url: String,
}

impl Source {
    pub fn new(url: &str) -> Result<Source> {
        tokio_postgres::Config::from_str(url).map_err(|e| {
            Error::Usage(format!(
                "--from-url {}: not a PostgreSQL URL or connection string: {e}",
                redact(url)
            ))
        })?;
        Ok(Source {
            url: url.to_string(),
        })
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.url)
    }

    /// The hosts and the database name, for the production guard.
    fn names(&self) -> Vec<String> {
        let Ok(config) = tokio_postgres::Config::from_str(&self.url) else {
            return Vec::new();
        };
        let mut names: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        names.extend(config.get_dbname().map(str::to_string));
        names
    }

    /// Refuse a production-looking source unless the user said it is meant.
    pub fn guard(&self, patterns: &[String], i_know_this_is_production: bool) -> Result<()> {
        let hit = self.names().into_iter().find(|name| {
            name.split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| patterns.iter().any(|p| word.eq_ignore_ascii_case(p)))
        });
        match hit {
            Some(name) if !i_know_this_is_production => Err(Error::Usage(format!(
                "--from-url {}: `{name}` looks like production (patterns: {}). downtime only \
                 reads from it (a read-only pg_dump), but copying production data must be meant: \
                 add {PRODUCTION_FLAG} to go ahead, or point --from-url at a staging copy",
                self.redacted(),
                patterns.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// Dump the source to `archive` (custom format) with pg_dump from `bin_dir`,
    /// on read-only transactions.
    pub fn dump(&self, bin_dir: &Path, archive: &Path) -> Command {
        let mut cmd = Command::new(bin_dir.join("pg_dump"));
        cmd.env("PGOPTIONS", "-c default_transaction_read_only=on")
            .env("PGAPPNAME", "downtime (read-only dump)")
            .args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(archive)
            .arg("--dbname")
            .arg(&self.url);
        cmd
    }

    /// Remove the password from text that may echo the URL.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.url, &self.redacted());
        if let Some(pw) = password(&self.url).filter(|p| !p.is_empty()) {
            out = out.replace(&pw, "***");
        }
        out
    }
}

/// The password in a URL (`postgresql://user:PW@…`, `?password=PW`) or a
/// key-value connection string (`password=PW`).
fn password(url: &str) -> Option<String> {
    tokio_postgres::Config::from_str(url)
        .ok()?
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// Replace the password in a URL or connection string with `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    // userinfo of a URL: scheme://user:password@host
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    }
    // password=… in a query string or a key-value string.
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find("password=") {
        let boundary_ok = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ');
        result.push_str(&rest[..i + "password=".len()]);
        rest = &rest[i + "password=".len()..];
        if boundary_ok {
            let end = rest.find(['&', ' ']).unwrap_or(rest.len());
            result.push_str("***");
            rest = &rest[end..];
        }
    }
    result.push_str(rest);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgresql://app:s3cret@db.example.com:5432/shop"),
            "postgresql://app:***@db.example.com:5432/shop"
        );
        assert_eq!(
            redact("postgres://app@db/shop?password=s3cret&sslmode=require"),
            "postgres://app@db/shop?password=***&sslmode=require"
        );
        assert_eq!(
            redact("host=db user=app password=s3cret dbname=shop"),
            "host=db user=app password=*** dbname=shop"
        );
        assert_eq!(redact("postgresql://db/shop"), "postgresql://db/shop");
        let s = Source::new("postgresql://app:s3cret@db/shop").unwrap();
        assert_eq!(
            s.scrub("failed for s3cret at postgresql://app:s3cret@db/shop"),
            "failed for *** at postgresql://app:***@db/shop"
        );
    }

    #[test]
    fn production_guard_matches_words() {
        let patterns: Vec<String> = DEFAULT_PRODUCTION_PATTERNS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for url in [
            "postgresql://db-prod-1.example.com/shop",
            "postgresql://db.example.com/shop_production",
            "postgresql://live.example.com/shop",
            "host=/tmp dbname=PROD",
        ] {
            assert!(
                Source::new(url).unwrap().guard(&patterns, false).is_err(),
                "{url}"
            );
            assert!(
                Source::new(url).unwrap().guard(&patterns, true).is_ok(),
                "{url}"
            );
        }
        for url in [
            "postgresql://staging.example.com/shop",
            "postgresql://db/liveness_probe",
            "postgresql://products.example.com/x",
        ] {
            assert!(
                Source::new(url).unwrap().guard(&patterns, false).is_ok(),
                "{url}"
            );
        }
        let e = Source::new("postgresql://u:pw@prod/x")
            .unwrap()
            .guard(&patterns, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(PRODUCTION_FLAG) && !e.contains("pw@"), "{e}");
    }
}
