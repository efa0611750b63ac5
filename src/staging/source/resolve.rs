//! Which server, database and user a connection string reaches, decided the
//! way libpq decides it: the string itself first, then the service named by
//! `service=` or `PGSERVICE` (from `PGSERVICEFILE` or `~/.pg_service.conf`,
//! else `PGSYSCONFDIR/pg_service.conf`), then the `PG*` environment
//! variables, then the defaults (the default socket directory, port 5432,
//! the operating-system user, a database named as the user).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::conninfo::{self, Keyword, Settings, KEYWORDS, OTHER_ENV};

/// The system configuration directory of the libpq Debian and Ubuntu ship
/// (`pg_config --sysconfdir`), where `pg_service.conf` is looked for when
/// `PGSYSCONFDIR` is not set.
pub const DEFAULT_SYSCONFDIR: &str = "/etc/postgresql-common";
/// The Unix socket directory of that libpq, used when no host is given.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
pub const DEFAULT_PORT: &str = "5432";

/// What resolution reads besides the connection string: the libpq
/// environment variables, the home directory and the operating-system user.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    home: Option<PathBuf>,
    os_user: Option<String>,
}

/// Never prints `PGPASSWORD`.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vars: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| {
                let secret = k == "PGPASSWORD";
                (k.as_str(), if secret { "***" } else { v.as_str() })
            })
            .collect();
        f.debug_struct("Environment")
            .field("vars", &vars)
            .field("home", &self.home)
            .field("os_user", &self.os_user)
            .finish()
    }
}

impl Environment {
    /// This process's environment.
    pub fn current() -> Environment {
        let vars = libpq_variables()
            .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
            .collect();
        let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten();
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| user.as_ref().map(|u| u.dir.clone()));
        Environment {
            vars,
            home,
            os_user: user.map(|u| u.name),
        }
    }

    /// An environment with exactly these variables, home directory and user.
    pub fn new(vars: &[(&str, &str)], home: Option<&Path>, os_user: &str) -> Environment {
        Environment {
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home: home.map(Path::to_path_buf),
            os_user: Some(os_user.to_string()),
        }
    }

    /// The home directory (`$HOME`, else the user's entry).
    pub fn home(&self) -> Option<&Path> {
        self.home.as_deref()
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// Every environment variable libpq reads to decide a connection.
pub fn libpq_variables() -> impl Iterator<Item = &'static str> {
    KEYWORDS
        .iter()
        .filter_map(|k| k.env)
        .chain(OTHER_ENV.iter().copied())
}

/// Where a resolved setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The connection string.
    Given,
    /// A service file, at this line.
    Service { file: PathBuf, line: usize },
    /// This environment variable.
    Env(&'static str),
    /// libpq's default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Given => write!(f, "the connection string"),
            Origin::Service { file, line } => write!(f, "{}:{line}", file.display()),
            Origin::Env(var) => write!(f, "${var}"),
            Origin::Default => write!(f, "libpq's default"),
        }
    }
}

/// Resolved settings, each with where it came from.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub settings: Settings,
    pub origins: BTreeMap<&'static str, Origin>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("settings", &self.settings)
            .field("origins", &self.origins)
            .finish()
    }
}

impl Resolved {
    fn fill(&mut self, k: &'static Keyword, value: String, origin: Origin) {
        if self.settings.get(k.name).is_none() {
            self.settings.set(k, value);
            self.origins.insert(k.name, origin);
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.settings.get(name)
    }

    pub fn origin(&self, name: &str) -> Origin {
        self.origins.get(name).cloned().unwrap_or(Origin::Default)
    }
}

fn kw(name: &str) -> &'static Keyword {
    conninfo::keyword(name).expect("a libpq keyword")
}

/// Resolve `given` (a parsed connection string) in `env`.
pub fn resolve(given: &Settings, env: &Environment) -> Result<Resolved, String> {
    let mut r = Resolved::default();
    for (k, v) in given.iter() {
        r.settings.set(k, v.to_string());
        r.origins.insert(k.name, Origin::Given);
    }
    if r.get("service").is_none() {
        if let Some(s) = env.var("PGSERVICE") {
            r.fill(kw("service"), s.to_string(), Origin::Env("PGSERVICE"));
        }
    }
    if let Some(service) = r.get("service").map(str::to_string) {
        apply_service(&mut r, &service, env)?;
    }
    for k in KEYWORDS {
        if let Some(var) = k.env {
            if let Some(v) = env.var(var) {
                r.fill(k, v.to_string(), Origin::Env(var));
            }
        }
    }
    if env.var("PGREQUIRESSL").is_some_and(|v| v.starts_with('1')) {
        r.fill(kw("sslmode"), "require".into(), Origin::Env("PGREQUIRESSL"));
    }
    defaults(&mut r, env)?;
    Ok(r)
}

/// libpq's defaults for what is still unset or empty.
fn defaults(r: &mut Resolved, env: &Environment) -> Result<(), String> {
    let empty = |r: &Resolved, name| r.get(name).is_none_or(str::is_empty);
    if empty(r, "user") {
        let user = env
            .os_user
            .clone()
            .ok_or("no user given and the operating-system user has no name")?;
        r.settings.set(kw("user"), user);
        r.origins.insert("user", Origin::Default);
    }
    if empty(r, "dbname") {
        let user = r.get("user").unwrap_or_default().to_string();
        r.settings.set(kw("dbname"), user);
        r.origins.insert("dbname", Origin::Default);
    }
    if empty(r, "host") && empty(r, "hostaddr") {
        r.settings.set(kw("host"), DEFAULT_SOCKET_DIR.into());
        r.origins.insert("host", Origin::Default);
    } else if let Some(hosts) = r.get("host").filter(|h| h.split(',').any(str::is_empty)) {
        // An empty entry of a host list is the default socket directory;
        // one beside a hostaddr is that address.
        if r.get("hostaddr").is_none_or(str::is_empty) {
            let filled: Vec<&str> = hosts
                .split(',')
                .map(|h| if h.is_empty() { DEFAULT_SOCKET_DIR } else { h })
                .collect();
            let filled = filled.join(",");
            r.settings.set(kw("host"), filled);
        }
    }
    let hosts = r
        .get("host")
        .filter(|h| !h.is_empty())
        .or(r.get("hostaddr"))
        .map_or(1, |h| h.split(',').count());
    let ports: Vec<String> = match r.get("port").filter(|p| !p.is_empty()) {
        None => {
            r.origins.insert("port", Origin::Default);
            vec![DEFAULT_PORT.to_string(); 1]
        }
        Some(p) => p
            .split(',')
            .map(|p| if p.is_empty() { DEFAULT_PORT } else { p }.to_string())
            .collect(),
    };
    if ports.len() != 1 && ports.len() != hosts {
        return Err(format!(
            "{} ports given for {hosts} hosts (libpq needs one port, or one per host)",
            ports.len()
        ));
    }
    r.settings.set(kw("port"), ports.join(","));
    Ok(())
}

/// The service files libpq reads, in its order.
fn service_files(env: &Environment) -> Vec<PathBuf> {
    let user_file = match env.var("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => env.home.as_ref().map(|h| h.join(".pg_service.conf")),
    };
    let sysconf = env.var("PGSYSCONFDIR").unwrap_or(DEFAULT_SYSCONFDIR);
    user_file
        .into_iter()
        .chain([Path::new(sysconf).join("pg_service.conf")])
        .collect()
}

/// Fill unset settings from the first service file that defines `service`.
fn apply_service(r: &mut Resolved, service: &str, env: &Environment) -> Result<(), String> {
    let files = service_files(env);
    for file in &files {
        if !file.exists() {
            continue;
        }
        let text = crate::fsutil::read_text(file, crate::fsutil::CONNECTION_FILES)
            .map_err(|e| format!("cannot read service file {}: {e}", file.display()))?;
        if let Some(entries) = service_section(&text, service, file)? {
            for (line, k, v) in entries {
                r.fill(
                    k,
                    v,
                    Origin::Service {
                        file: file.clone(),
                        line,
                    },
                );
            }
            return Ok(());
        }
    }
    let looked: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(format!(
        "definition of service `{service}` not found (looked in {})",
        looked.join(", ")
    ))
}

type Entry = (usize, &'static Keyword, String);

/// The `keyword=value` lines of section `[service]`, as libpq reads them
/// (leading and trailing white space dropped, `#` comments, no nesting),
/// or `None` when the file has no such section.
fn service_section(text: &str, service: &str, file: &Path) -> Result<Option<Vec<Entry>>, String> {
    let mut found: Option<Vec<Entry>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            // libpq compares the name and the `]` after it, nothing more.
            if name
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with(']'))
            {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(entries) = found.as_mut() else {
            continue;
        };
        let at = format!("service file {}, line {}", file.display(), i + 1);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("syntax error in {at}: not `keyword=value`"));
        };
        if key == "service" {
            return Err(format!("{at}: a service cannot name another service"));
        }
        let k = conninfo::keyword(key)
            .ok_or_else(|| format!("syntax error in {at}: not a connection keyword"))?;
        entries.push((i + 1, k, value.to_string()));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_in(text: &str, env: &Environment) -> Result<Resolved, String> {
        resolve(&conninfo::parse(text).unwrap().settings, env)
    }

    fn env(vars: &[(&str, &str)], home: &Path) -> Environment {
        Environment::new(vars, Some(home), "osuser")
    }

    #[test]
    fn the_string_wins_then_the_environment_then_the_defaults() {
        let home = tempfile::tempdir().unwrap();
        let e = env(
            &[
                ("PGDATABASE", "prod_shop"),
                ("PGHOST", "envhost"),
                ("PGPORT", "6000"),
            ],
            home.path(),
        );
        let r = resolve_in("postgresql://app@h", &e).unwrap();
        assert_eq!(r.get("host"), Some("h"));
        assert_eq!(r.origin("host"), Origin::Given);
        assert_eq!(r.get("dbname"), Some("prod_shop"));
        assert_eq!(r.origin("dbname"), Origin::Env("PGDATABASE"));
        assert_eq!(r.get("port"), Some("6000"));
        let r = resolve_in("", &env(&[], home.path())).unwrap();
        assert_eq!(r.get("user"), Some("osuser"));
        assert_eq!(r.get("dbname"), Some("osuser"));
        assert_eq!(r.get("host"), Some(DEFAULT_SOCKET_DIR));
        assert_eq!(r.get("port"), Some("5432"));
        let r = resolve_in("dbname=", &env(&[("PGUSER", "u")], home.path())).unwrap();
        assert_eq!(r.get("dbname"), Some("u"));
        let r = resolve_in("hostaddr=10.0.0.1", &env(&[], home.path())).unwrap();
        assert_eq!(r.get("host"), None);
        let r = resolve_in("host=a,,b port=1,,3", &env(&[], home.path())).unwrap();
        assert_eq!(r.get("host"), Some("a,/var/run/postgresql,b"));
        assert_eq!(r.get("port"), Some("1,5432,3"));
        assert!(resolve_in("host=a,b port=1,2,3", &env(&[], home.path())).is_err());
        let r = resolve_in("", &env(&[("PGREQUIRESSL", "1")], home.path())).unwrap();
        assert_eq!(r.get("sslmode"), Some("require"));
    }

    #[test]
    fn services_come_after_the_string_and_before_the_environment() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(".pg_service.conf"),
            "# mine\n[other]\nhost=wrong\n\n[shop]\n  host=svc-host  \nport=7000\ndbname=prod_shop\n\
             password=from service\n[after]\nnot a line\n",
        )
        .unwrap();
        std::fs::write(
            sys.path().join("pg_service.conf"),
            "[global]\nhost=sys-host\ndbname=global_db\n",
        )
        .unwrap();
        let sysdir = sys.path().to_str().unwrap();
        let e = env(
            &[
                ("PGSYSCONFDIR", sysdir),
                ("PGDATABASE", "env_db"),
                ("PGUSER", "envuser"),
            ],
            home.path(),
        );
        let r = resolve_in("service=shop port=1", &e).unwrap();
        assert_eq!(r.get("host"), Some("svc-host"));
        assert_eq!(r.get("port"), Some("1"));
        assert_eq!(r.get("dbname"), Some("prod_shop"));
        assert_eq!(r.get("password"), Some("from service"));
        assert_eq!(r.get("user"), Some("envuser"));
        let home_file = home.path().join(".pg_service.conf");
        assert_eq!(
            r.origin("dbname"),
            Origin::Service {
                file: home_file.clone(),
                line: 8
            }
        );
        // PGSERVICE names it when the string does not; the system file is
        // read when the user's file lacks the service.
        let e2 = env(
            &[("PGSYSCONFDIR", sysdir), ("PGSERVICE", "global")],
            home.path(),
        );
        let r = resolve_in("user=x", &e2).unwrap();
        assert_eq!(r.get("host"), Some("sys-host"));
        assert_eq!(r.get("dbname"), Some("global_db"));
        // PGSERVICEFILE replaces ~/.pg_service.conf.
        let other = home.path().join("other.conf");
        std::fs::write(&other, "[shop]\ndbname=from_servicefile\n").unwrap();
        let e3 = env(
            &[
                ("PGSYSCONFDIR", sysdir),
                ("PGSERVICEFILE", other.to_str().unwrap()),
            ],
            home.path(),
        );
        let r = resolve_in("service=shop", &e3).unwrap();
        assert_eq!(r.get("dbname"), Some("from_servicefile"));
        let err = resolve_in("service=nope", &e).unwrap_err();
        assert!(err.contains("`nope` not found"), "{err}");
    }

    #[test]
    fn a_bad_service_file_is_an_error_at_its_line() {
        let home = tempfile::tempdir().unwrap();
        let file = home.path().join(".pg_service.conf");
        for (text, needle) in [
            ("[s]\nhost=x\nno equals sign\n", "line 3"),
            ("[s]\nservice=t\n", "line 2"),
            ("[s]\nhots=x\n", "line 2"),
            ("[s]\nhost = x\n", "line 2"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = resolve_in("service=s", &env(&[], home.path())).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
