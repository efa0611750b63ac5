//! An existing database as the baseline (`--from-url`), and the source of
//! production statistics (`stats export --url`). The source is only ever
//! read: it is dumped with `pg_dump` on a connection whose transactions are
//! read-only, and no patch statement is ever sent to it.
//!
//! The same resolution serves the servers downtime writes to (the server
//! backend's `--url`, a provisioner's clone): [`Source::writable`] leaves
//! the read-only options out, and nothing else.
//!
//! A connection string is parsed as libpq parses it ([`conninfo`]) and
//! resolved as libpq resolves it ([`resolve`]: service files, `PG*`
//! variables, defaults), once. That resolved target is what the production
//! guard judges, what is shown (password as `***`), and what client
//! programs are handed explicitly, with libpq's variables cleared from
//! their environment and the password in a 0600 password file
//! ([`passfile`]): never on a command line.

pub mod conninfo;
pub mod options;
pub mod passfile;
pub mod resolve;
pub mod ssl;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use conninfo::{quote, Keyword, KEYWORDS};
pub use passfile::PassFile;
use resolve::{Environment, Origin, Resolved};

/// Words that mark a production host or database name by default.
pub const DEFAULT_PRODUCTION_PATTERNS: &[&str] = &["prod", "production", "live"];

/// The flag that lets downtime read from a production-looking source.
pub const PRODUCTION_FLAG: &str = "--i-know-this-is-production";

/// The server options downtime adds last to every connection to a source:
/// a later `-c` wins, so nothing given before can turn it off.
pub const READ_ONLY_OPTIONS: [&str; 2] = ["-c", "default_transaction_read_only=on"];

/// A source database, resolved to the server, database and user libpq
/// would connect to.
#[derive(Clone, PartialEq, Eq)]
pub struct Source {
    /// The flag or setting the text came from, for messages.
    arg: String,
    /// Every connection gets [`READ_ONLY_OPTIONS`] (false for a server
    /// downtime writes to).
    read_only: bool,
    target: Resolved,
    /// Every spelling of a secret in the text given (to scrub echoes).
    secrets: Vec<String>,
    /// libpq's default password file (`~/.pgpass`).
    default_passfile: Option<PathBuf>,
    /// TLS as the settings and the files found say (boxed: a source is
    /// moved about, its files seldom read).
    ssl: Box<ssl::Ssl>,
}

/// Never prints a password.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({})", self.redacted())
    }
}

/// A setting that names where the connection goes, for the production guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// `host`, `hostaddr`, `dbname` or `service`.
    pub keyword: &'static str,
    pub value: String,
    pub origin: Origin,
}

impl Source {
    /// `text` (a URL, a key/value string or a database name) resolved in
    /// this process's environment. `arg` names the flag, for messages.
    pub fn new(arg: &str, text: &str) -> Result<Source> {
        Source::with_env(arg, text, &Environment::current())
    }

    /// A server downtime creates databases on and applies patches to,
    /// resolved as [`Source::new`] resolves a source; its connections are
    /// not read-only.
    pub fn writable(arg: &str, text: &str) -> Result<Source> {
        Source::new(arg, text).map(Source::into_writable)
    }

    /// The same target, its connections not read-only.
    pub fn into_writable(mut self) -> Source {
        self.read_only = false;
        self
    }

    /// The flag or setting the text came from.
    pub fn arg(&self) -> &str {
        &self.arg
    }

    /// [`Source::new`] in a given environment.
    pub fn with_env(arg: &str, text: &str, env: &Environment) -> Result<Source> {
        let parsed = conninfo::parse(text).map_err(|e| {
            Error::Usage(format!(
                "{arg}: not a PostgreSQL URL or connection string: {e} (the value is not shown: \
                 it may hold a password)"
            ))
        })?;
        let target = resolve::resolve(&parsed.settings, env)
            .map_err(|e| Error::Usage(format!("{arg}: {e}")))?;
        let mut secrets: Vec<String> = parsed.spellings;
        for (_, v) in target.settings.iter().filter(|(k, _)| k.secret) {
            secrets.push(v.to_string());
            secrets.extend(conninfo::encodings(v));
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let ssl = ssl::Ssl::decide(|k| target.get(k), env.home());
        let mut me = Source {
            arg: arg.to_string(),
            read_only: true,
            target,
            secrets,
            default_passfile: env.home().map(|h| h.join(".pgpass")),
            ssl: Box::new(ssl::Ssl::plain()),
        };
        *me.ssl = ssl.map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{arg} {}: {m}", me.redacted())),
            e => e,
        })?;
        if me.target.get("sslpassword").is_some() {
            return Err(Error::Usage(format!(
                "{arg} {}: sslpassword cannot be handed to a client program without showing it \
                 in the process list; use a client key without a passphrase, readable only by \
                 you (sslkey=…)",
                me.redacted()
            )));
        }
        Ok(me)
    }

    /// The resolved target as a key/value string, secrets as `***`.
    pub fn redacted(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in self.ordered() {
            if matches!(k.name, "service" | "passfile") {
                continue;
            }
            let shown = if k.secret {
                "***".to_string()
            } else {
                plain(v)
            };
            parts.push(format!("{}={shown}", k.name));
        }
        parts.join(" ")
    }

    /// Resolved settings: host, address, port, user and database first.
    fn ordered(&self) -> Vec<(&'static Keyword, &str)> {
        const FIRST: [&str; 5] = ["host", "hostaddr", "port", "user", "dbname"];
        let mut out: Vec<(&'static Keyword, &str)> = Vec::new();
        for name in FIRST {
            if let Some(v) = self.target.get(name) {
                out.push((conninfo::keyword(name).expect("a keyword"), v));
            }
        }
        for k in KEYWORDS.iter().filter(|k| !FIRST.contains(&k.name)) {
            if let Some(v) = self.target.get(k.name) {
                out.push((k, v));
            }
        }
        out
    }

    /// The TLS settings decided for the target.
    pub fn ssl(&self) -> &ssl::Ssl {
        &self.ssl
    }

    /// The TLS connector of downtime's own connections to the target: the
    /// root and client certificates read and checked.
    pub fn tls(&self) -> Result<crate::staging::tls::Tls> {
        self.ssl.tls().map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("{} {}: {m}", self.arg, self.redacted())),
            e => e,
        })
    }

    /// The resolved setting `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.target.get(name)
    }

    /// Where the connection goes, for a report: `host:port/dbname`, with
    /// neither the user nor anything secret.
    pub fn address(&self) -> String {
        let host = self
            .get("host")
            .or_else(|| self.get("hostaddr"))
            .unwrap_or("localhost");
        let port = self.get("port").unwrap_or("5432");
        let db = self.get("dbname").unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }

    /// The hosts, addresses, database and service the connection goes to.
    pub fn names(&self) -> Vec<Name> {
        let mut names = Vec::new();
        for keyword in ["host", "hostaddr", "dbname", "service"] {
            if let Some(v) = self.target.get(keyword) {
                let parts: Vec<&str> = if keyword == "dbname" || keyword == "service" {
                    vec![v]
                } else {
                    v.split(',').collect()
                };
                for part in parts.into_iter().filter(|p| !p.is_empty()) {
                    names.push(Name {
                        keyword,
                        value: part.to_string(),
                        origin: self.target.origin(keyword),
                    });
                }
            }
        }
        names
    }

    /// Refuse a production-looking source unless the user said it is meant.
    /// A server downtime writes to is refused whatever the flag says.
    pub fn guard(&self, patterns: &[String], i_know_this_is_production: bool) -> Result<()> {
        let hit = self.names().into_iter().find(|name| {
            name.value
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|word| patterns.iter().any(|p| word.eq_ignore_ascii_case(p)))
        });
        let Some(name) = hit else {
            return Ok(());
        };
        let looks = format!(
            "{} {}: {} `{}` (from {}) looks like production (patterns: {})",
            self.arg,
            self.redacted(),
            what(name.keyword),
            name.value,
            name.origin,
            patterns.join(", ")
        );
        match (self.read_only, i_know_this_is_production) {
            (true, true) => Ok(()),
            (true, false) => Err(Error::Usage(format!(
                "{looks}. downtime only reads from it (a read-only pg_dump), but copying \
                 production data must be meant: add {PRODUCTION_FLAG} to go ahead, or point {} at \
                 a staging copy",
                self.arg
            ))),
            (false, _) => Err(Error::Usage(format!(
                "{looks}. downtime creates and drops databases there and applies the patches \
                 to them, so it must be a staging server: point {} at one (if this name is not \
                 production, set `production-patterns` under [staging] in downtime.toml)",
                self.arg
            ))),
        }
    }

    /// The server options of every connection to the source: the words of
    /// the ones resolved (an empty word, which only a trailing backslash
    /// makes and the server refuses, dropped), then, for a source read
    /// from, [`READ_ONLY_OPTIONS`] last, each word escaped so none can
    /// swallow the next.
    pub fn options(&self) -> String {
        let mut words = options::split(self.target.get("options").unwrap_or_default());
        words.retain(|w| !w.is_empty());
        if self.read_only {
            words.extend(READ_ONLY_OPTIONS.iter().map(|s| s.to_string()));
        }
        options::join(&words)
    }

    /// The connection string handed to a client program: every resolved
    /// setting but the secrets and the service (already applied), the
    /// read-only options, and `passfile` when given.
    pub fn client_conninfo(&self, passfile: Option<&Path>, application_name: &str) -> String {
        let mut parts = Vec::new();
        let ssl = self.ssl.for_client();
        for (k, v) in self.ordered() {
            if k.secret || matches!(k.name, "service" | "options") {
                continue;
            }
            if ssl.iter().any(|(name, _)| *name == k.name) {
                continue;
            }
            if k.name == "passfile" && passfile.is_some() {
                continue;
            }
            parts.push(format!("{}={}", k.name, quote(v)));
        }
        for (name, v) in &ssl {
            parts.push(format!("{name}={}", quote(v)));
        }
        if let Some(p) = passfile {
            parts.push(format!("passfile={}", quote(&p.display().to_string())));
        }
        parts.push(format!("options={}", quote(&self.options())));
        if self.target.get("application_name").is_none() {
            parts.push(format!("application_name={}", quote(application_name)));
        }
        parts.join(" ")
    }

    /// The same server, user and settings, another database on it.
    pub fn on_database(&self, dbname: &str) -> Source {
        let mut me = self.clone();
        if let Some(k) = conninfo::keyword("dbname") {
            me.target.settings.set(k, dbname.to_string());
            me.target.origins.insert("dbname", Origin::Given);
        }
        me
    }

    /// A client program run against the source: libpq's variables cleared,
    /// the resolved target as `--dbname`, the password in a 0600 file in
    /// `private_dir` (kept until the returned [`PassFile`] is dropped).
    pub fn client(
        &self,
        program: &Path,
        private_dir: &Path,
        application_name: &str,
    ) -> Result<(Command, Option<PassFile>)> {
        self.client_named(program, private_dir, application_name, "source.pgpass")
    }

    /// [`Source::client`] with the password file named `passfile_name`.
    pub fn client_named(
        &self,
        program: &Path,
        private_dir: &Path,
        application_name: &str,
        passfile_name: &str,
    ) -> Result<(Command, Option<PassFile>)> {
        let mut cmd = client_command(program);
        let passfile = match self.target.get("password") {
            Some(pw) => {
                let file = PassFile::write(private_dir, passfile_name, pw)?;
                if file.is_none() {
                    // A line break cannot stand in a password file; the
                    // environment is still not the process list.
                    cmd.env("PGPASSWORD", pw);
                }
                file
            }
            None => None,
        };
        let conninfo = self.client_conninfo(passfile.as_ref().map(|f| f.path()), application_name);
        cmd.arg("--dbname").arg(conninfo);
        Ok((cmd, passfile))
    }

    /// `pg_dump` of the source to `archive` (custom format), from `bin_dir`.
    pub fn dump(
        &self,
        bin_dir: &Path,
        archive: &Path,
        private_dir: &Path,
    ) -> Result<(Command, Option<PassFile>)> {
        let (mut cmd, passfile) = self.client(
            &bin_dir.join("pg_dump"),
            private_dir,
            "downtime (read-only dump)",
        )?;
        cmd.args(["--format=custom", "--no-owner", "--no-privileges", "--file"])
            .arg(archive);
        Ok((cmd, passfile))
    }

    /// Connection settings for downtime's own connections to the source
    /// (`stats export`; the server backend's server, a provisioner's clone):
    /// the same target, the same options (read-only for a source), TLS as
    /// `sslmode` says (the certificate checked by [`Source::tls`]), the
    /// password given or the one libpq would find in the password file.
    pub fn connect_config(&self, application_name: &str) -> Result<tokio_postgres::Config> {
        use std::str::FromStr;
        const SUPPORTED: [&str; 15] = [
            "host",
            "hostaddr",
            "port",
            "user",
            "dbname",
            "password",
            "application_name",
            "connect_timeout",
            "tcp_user_timeout",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "target_session_attrs",
            "channel_binding",
            "load_balance_hosts",
        ];
        let mut parts = Vec::new();
        for (k, v) in self.ordered() {
            if SUPPORTED.contains(&k.name) {
                parts.push(format!("{}={}", k.name, quote(v)));
            }
        }
        if let Some(v) = self.get("keepalives_count") {
            parts.push(format!("keepalives_retries={}", quote(v)));
        }
        // The certificate is checked by the connector ([`Source::tls`]);
        // libpq uses no TLS on a Unix socket, whatever the mode.
        let sockets_only = self.get("hostaddr").is_none_or(str::is_empty)
            && self.get("host").is_some_and(|h| {
                h.split(',')
                    .all(|h| h.starts_with('/') || h.starts_with('@'))
            });
        let mode = if sockets_only {
            "disable"
        } else {
            self.ssl.mode.driver()
        };
        parts.push(format!("sslmode={mode}"));
        if self.get("password").is_none() {
            if let Some(pw) = self.password_from_file() {
                parts.push(format!("password={}", quote(&pw)));
            }
        }
        parts.push(format!("options={}", quote(&self.options())));
        if self.get("application_name").is_none() {
            parts.push(format!("application_name={}", quote(application_name)));
        }
        tokio_postgres::Config::from_str(&parts.join(" ")).map_err(|e| {
            Error::Usage(format!(
                "{}: {}",
                self.redacted(),
                self.scrub(&e.to_string())
            ))
        })
    }

    /// The password libpq would read from the password file for the first host.
    fn password_from_file(&self) -> Option<String> {
        let file = match self.get("passfile").filter(|f| !f.is_empty()) {
            Some(f) => PathBuf::from(f),
            None => self.default_passfile.clone()?,
        };
        let host = self
            .get("host")
            .filter(|h| !h.is_empty())
            .or(self.get("hostaddr"))
            .and_then(|h| h.split(',').next())
            .unwrap_or("localhost");
        // libpq looks a socket in its default directory up as `localhost`.
        let host = if host == resolve::DEFAULT_SOCKET_DIR {
            "localhost"
        } else {
            host
        };
        let port = self.get("port").and_then(|p| p.split(',').next())?;
        passfile::lookup(&file, host, port, self.get("dbname")?, self.get("user")?)
    }

    /// `text` with every spelling of the source's secrets replaced by `***`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// A value shown in a key/value string, quoted only when it must be.
fn plain(v: &str) -> String {
    if v.is_empty() || v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        quote(v)
    } else {
        v.to_string()
    }
}

fn what(keyword: &str) -> &'static str {
    match keyword {
        "dbname" => "the database",
        "service" => "the service",
        "hostaddr" => "the address",
        _ => "the host",
    }
}

/// A PostgreSQL client program with none of libpq's variables in its
/// environment: it connects to exactly what its arguments say.
pub fn client_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    for var in resolve::libpq_variables() {
        cmd.env_remove(var);
    }
    cmd
}

#[cfg(test)]
mod tests;
