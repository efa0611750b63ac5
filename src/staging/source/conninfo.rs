//! libpq connection strings, parsed the way libpq parses them: the
//! key/value form (`host=db password = 's e c'`) and the URI form
//! (`postgresql://user:pw@host:5432/db?sslmode=require`), into keyword
//! settings. Errors never quote the text they failed on: it may hold a
//! password.

/// A libpq connection keyword: its environment variable, and whether its
/// value is a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    pub env: Option<&'static str>,
    pub secret: bool,
}

const fn kw(name: &'static str, env: Option<&'static str>) -> Keyword {
    Keyword {
        name,
        env,
        secret: false,
    }
}

/// Every keyword libpq (10 to 17) accepts, in libpq's order.
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE")),
    kw("user", Some("PGUSER")),
    Keyword {
        name: "password",
        env: Some("PGPASSWORD"),
        secret: true,
    },
    kw("passfile", Some("PGPASSFILE")),
    kw("channel_binding", Some("PGCHANNELBINDING")),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    kw("dbname", Some("PGDATABASE")),
    kw("host", Some("PGHOST")),
    kw("hostaddr", Some("PGHOSTADDR")),
    kw("port", Some("PGPORT")),
    kw("client_encoding", Some("PGCLIENTENCODING")),
    kw("options", Some("PGOPTIONS")),
    kw("application_name", Some("PGAPPNAME")),
    kw("fallback_application_name", None),
    kw("keepalives", None),
    kw("keepalives_idle", None),
    kw("keepalives_interval", None),
    kw("keepalives_count", None),
    kw("tcp_user_timeout", None),
    kw("replication", None),
    kw("sslmode", Some("PGSSLMODE")),
    kw("sslnegotiation", Some("PGSSLNEGOTIATION")),
    kw("sslcompression", Some("PGSSLCOMPRESSION")),
    kw("sslcert", Some("PGSSLCERT")),
    kw("sslkey", Some("PGSSLKEY")),
    kw("sslcertmode", Some("PGSSLCERTMODE")),
    Keyword {
        name: "sslpassword",
        env: None,
        secret: true,
    },
    kw("sslrootcert", Some("PGSSLROOTCERT")),
    kw("sslcrl", Some("PGSSLCRL")),
    kw("sslcrldir", Some("PGSSLCRLDIR")),
    kw("sslsni", Some("PGSSLSNI")),
    kw("requirepeer", Some("PGREQUIREPEER")),
    kw("require_auth", Some("PGREQUIREAUTH")),
    kw("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    kw("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    kw("gssencmode", Some("PGGSSENCMODE")),
    kw("krbsrvname", Some("PGKRBSRVNAME")),
    kw("gsslib", Some("PGGSSLIB")),
    kw("gssdelegation", Some("PGGSSDELEGATION")),
    kw("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    kw("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

/// Environment variables libpq reads besides the keywords' own: where the
/// service files are, and the old spelling of `sslmode=require`.
pub const OTHER_ENV: &[&str] = &["PGSERVICEFILE", "PGSYSCONFDIR", "PGREQUIRESSL"];

/// The keyword of this name.
pub fn keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// Keyword settings, each keyword at most once (a later setting replaces
/// an earlier one, as in libpq).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Settings(Vec<(&'static Keyword, String)>);

impl Settings {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, keyword: &'static Keyword, value: String) {
        match self.0.iter_mut().find(|(k, _)| k.name == keyword.name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((keyword, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static Keyword, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }
}

/// Never prints secret values.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.iter()
                    .map(|(k, v)| (k.name, if k.secret { "***" } else { v })),
            )
            .finish()
    }
}

/// A parsed connection string: its settings, and every spelling of a
/// secret value as it appears in the text (to scrub echoes of it).
#[derive(Debug, Default)]
pub struct Parsed {
    pub settings: Settings,
    pub spellings: Vec<String>,
}

impl Parsed {
    fn store(&mut self, name: &str, value: String, raw: &str) -> Result<(), String> {
        let k = keyword(name).ok_or_else(|| unknown(name))?;
        if k.secret {
            self.spellings.push(raw.to_string());
            self.spellings.push(value.clone());
        }
        self.settings.set(k, value);
        Ok(())
    }
}

/// An unknown keyword is named only when it is a near miss of a real one
/// (a typo, then suggested): anything else may be a misplaced piece of a
/// password and must not reach a message.
fn unknown(name: &str) -> String {
    let near = KEYWORDS
        .iter()
        .map(|k| (distance(name, k.name), k.name))
        .min()
        .filter(|(d, _)| *d <= 2 && name.len() >= 3);
    match near {
        Some((_, k)) => format!("unknown connection option `{name}` (did you mean `{k}`?)"),
        None => "an unknown connection option (not shown: it may be part of a password)".into(),
    }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(ca != *cb));
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

const URI_PREFIXES: [&str; 2] = ["postgresql://", "postgres://"];

/// Parse a connection string as libpq does. A string that is neither a
/// URI nor holds an `=` is a database name (as `pg_dump --dbname` reads it).
pub fn parse(text: &str) -> Result<Parsed, String> {
    if let Some(rest) = URI_PREFIXES.iter().find_map(|p| text.strip_prefix(p)) {
        parse_uri(rest)
    } else if text.contains('=') {
        parse_key_value(text)
    } else {
        let mut p = Parsed::default();
        if !text.is_empty() {
            p.store("dbname", text.to_string(), text)?;
        }
        Ok(p)
    }
}

pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// `keyword = value` pairs; values are bare (a backslash escapes the next
/// character) or single-quoted (`\'` and `\\` inside).
fn parse_key_value(text: &str) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let at = |i: usize| chars.get(i).map_or(text.len(), |c| c.0);
    while i < chars.len() {
        if is_space(chars[i].1) {
            i += 1;
            continue;
        }
        let name_start = i;
        while i < chars.len() && chars[i].1 != '=' && !is_space(chars[i].1) {
            i += 1;
        }
        let name = &text[at(name_start)..at(i)];
        while i < chars.len() && is_space(chars[i].1) {
            i += 1;
        }
        if chars.get(i).map(|c| c.1) != Some('=') {
            return Err(match keyword(name) {
                Some(_) => format!("missing `=` after `{name}`"),
                None => format!(
                    "missing `=` after the word at character {} (a value with spaces must be \
                     quoted, in single quotes)",
                    name_start + 1
                ),
            });
        }
        i += 1;
        while i < chars.len() && is_space(chars[i].1) {
            i += 1;
        }
        let value_start = i;
        let mut value = String::new();
        if chars.get(i).map(|c| c.1) == Some('\'') {
            i += 1;
            loop {
                match chars.get(i).map(|c| c.1) {
                    None => {
                        return Err(format!(
                            "unterminated quoted value for `{}`",
                            keyword(name).map_or("an option", |k| k.name)
                        ))
                    }
                    Some('\\') if i + 1 < chars.len() => {
                        value.push(chars[i + 1].1);
                        i += 2;
                    }
                    Some('\\') => i += 1,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !is_space(chars[i].1) {
                if chars[i].1 == '\\' {
                    i += 1;
                    if let Some(c) = chars.get(i) {
                        value.push(c.1);
                    }
                } else {
                    value.push(chars[i].1);
                }
                i += 1;
            }
        }
        let raw = &text[at(value_start)..at(i)];
        out.store(name, value, raw)?;
    }
    Ok(out)
}

/// Percent-decoding as libpq does it (`+` stays `+`).
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("an invalid percent-encoded character in the URI")?;
            if hex == 0 {
                return Err("%00 is not allowed in a URI".into());
            }
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URI decodes to text that is not UTF-8".into())
}

/// Every byte but the URI's unreserved characters percent-encoded, in
/// upper- and lower-case hex: the spellings of a secret in a URI.
pub fn encodings(value: &str) -> [String; 2] {
    let mut upper = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            upper.push(b as char);
        } else {
            upper.push_str(&format!("%{b:02X}"));
        }
    }
    let mut lower = String::new();
    let mut rest = upper.as_str();
    while let Some(i) = rest.find('%') {
        lower.push_str(&rest[..i]);
        lower.push_str(&rest[i..i + 3].to_ascii_lowercase());
        rest = &rest[i + 3..];
    }
    lower.push_str(rest);
    [upper, lower]
}

/// `[user[:password]@][host[:port][,…]][/dbname][?key=value&…]` (after the scheme).
fn parse_uri(rest: &str) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut p = rest;
    // Credentials: everything before the first `@` that comes before any `/`.
    let before_slash = &p[..p.find('/').unwrap_or(p.len())];
    if let Some(at) = before_slash.find('@') {
        let userinfo = &p[..at];
        let (user, password) = match userinfo.find(':') {
            Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            out.store("user", decode(user)?, user)?;
        }
        if let Some(pw) = password {
            out.store("password", decode(pw)?, pw)?;
        }
        p = &p[at + 1..];
    }
    let (hosts, ports, after) = uri_hosts(p)?;
    if !hosts.is_empty() {
        out.store("host", decode(&hosts)?, &hosts)?;
    }
    if !ports.is_empty() {
        out.store("port", decode(&ports)?, &ports)?;
    }
    let mut p = after;
    if let Some(path) = p.strip_prefix('/') {
        let end = path.find('?').unwrap_or(path.len());
        if end > 0 {
            out.store("dbname", decode(&path[..end])?, &path[..end])?;
        }
        p = &path[end..];
    }
    if let Some(query) = p.strip_prefix('?') {
        for pair in query.split('&').filter(|s| !s.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err("a URI query parameter without `=`".into());
            };
            if v.contains('=') {
                return Err("a URI query parameter with a second `=`".into());
            }
            let (k, value) = (decode(k)?, decode(v)?);
            if k == "ssl" && value == "true" {
                out.store("sslmode", "require".into(), v)?;
            } else {
                out.store(&k, value, v)?;
            }
        }
    }
    Ok(out)
}

/// The comma-separated hosts and ports of a URI (IPv6 addresses in
/// brackets, which are dropped), and the rest after them.
fn uri_hosts(mut p: &str) -> Result<(String, String, &str), String> {
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    let mut any_port = false;
    loop {
        let host;
        if let Some(v6) = p.strip_prefix('[') {
            let close = v6
                .find(']')
                .ok_or("a URI IPv6 host without its closing `]`")?;
            if close == 0 {
                return Err("an empty IPv6 host in the URI".into());
            }
            host = &v6[..close];
            p = &v6[close + 1..];
            if !p.is_empty() && !p.starts_with([':', '/', '?', ',']) {
                return Err("a URI IPv6 host followed by something unexpected".into());
            }
        } else {
            let end = p.find([':', '/', '?', ',']).unwrap_or(p.len());
            host = &p[..end];
            p = &p[end..];
        }
        hosts.push(host.to_string());
        let mut port = "";
        if let Some(rest) = p.strip_prefix(':') {
            let end = rest.find(['/', '?', ',']).unwrap_or(rest.len());
            port = &rest[..end];
            any_port = true;
            p = &rest[end..];
        }
        ports.push(port.to_string());
        match p.strip_prefix(',') {
            Some(rest) => p = rest,
            None => break,
        }
    }
    // An empty entry in a port list is the default port, as no list at all.
    let ports = if any_port {
        ports.join(",")
    } else {
        String::new()
    };
    Ok((hosts.join(","), ports, p))
}

/// A value quoted for a key/value connection string.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(text: &str, key: &str) -> Option<String> {
        parse(text).unwrap().settings.get(key).map(str::to_string)
    }

    #[test]
    fn key_value_strings_are_read_as_libpq_reads_them() {
        let t = "host=db  user = app password = s3cret dbname=shop";
        assert_eq!(get(t, "password").as_deref(), Some("s3cret"));
        assert_eq!(get(t, "user").as_deref(), Some("app"));
        assert_eq!(get(t, "dbname").as_deref(), Some("shop"));
        let t = r"password='a b \'c\' \\d' port=5433";
        assert_eq!(get(t, "password").as_deref(), Some(r"a b 'c' \d"));
        assert_eq!(get(t, "port").as_deref(), Some("5433"));
        assert_eq!(get(r"password=a\ b", "password").as_deref(), Some("a b"));
        assert_eq!(
            get("password= x password=y", "password").as_deref(),
            Some("y")
        );
        assert_eq!(get("shop", "dbname").as_deref(), Some("shop"));
        assert!(parse("").unwrap().settings.iter().next().is_none());
        let p = parse("password = 'a b c' host=x").unwrap();
        assert!(
            p.spellings.contains(&"'a b c'".to_string()),
            "{:?}",
            p.spellings
        );
    }

    #[test]
    fn errors_never_quote_what_may_be_a_password() {
        for text in [
            "password=a b c host=x",
            "password=a b=c",
            "password='Zq9x b c",
            "host=x 9zq$Secret",
        ] {
            let e = parse(text).unwrap_err();
            for word in ["b c", "9zq$Secret", "Zq9x", "`b`"] {
                assert!(!e.contains(word), "{text}: {e}");
            }
        }
        assert!(parse("hots=x").unwrap_err().contains("did you mean `host`"));
        assert!(parse("postgresql://h/db?passwrd=x").is_err());
    }

    #[test]
    fn uris_are_read_as_libpq_reads_them() {
        let t = "postgresql://app:p%40ss%2Fw%3Ard@db.example.com:5433/shop?sslmode=require";
        assert_eq!(get(t, "password").as_deref(), Some("p@ss/w:rd"));
        assert_eq!(get(t, "host").as_deref(), Some("db.example.com"));
        assert_eq!(get(t, "port").as_deref(), Some("5433"));
        assert_eq!(get(t, "dbname").as_deref(), Some("shop"));
        assert_eq!(get(t, "sslmode").as_deref(), Some("require"));
        let p = parse(t).unwrap();
        assert!(p.spellings.contains(&"p%40ss%2Fw%3Ard".to_string()));
        let t = "postgres://a@h1:1,[::1]:2,h3/x?password=s%20t&host=/tmp";
        assert_eq!(get(t, "host").as_deref(), Some("/tmp"));
        assert_eq!(get(t, "port").as_deref(), Some("1,2,"));
        assert_eq!(get(t, "password").as_deref(), Some("s t"));
        assert_eq!(get("postgresql://", "dbname"), None);
        assert_eq!(get("postgresql:///", "dbname"), None);
        assert_eq!(
            get("postgresql://h?ssl=true", "sslmode").as_deref(),
            Some("require")
        );
        assert!(parse("postgresql://h/db?x").is_err());
        assert!(parse("postgresql://u:p%zz@h/db").is_err());
    }

    /// Where both parsers read a string, they agree with tokio-postgres.
    #[test]
    fn agrees_with_tokio_postgres() {
        use std::str::FromStr;
        for t in [
            "postgresql://app:s3cret@db.example.com:5432/shop",
            "postgres://app@db/shop?password=s3cret&sslmode=require",
            "host=db user=app password = s3cret dbname=shop",
            "host=db password='a b c' dbname=shop",
            "postgresql://app:p%40ss%2Fw%3Ard@h:1/d",
        ] {
            let ours = parse(t).unwrap().settings;
            let theirs = tokio_postgres::Config::from_str(t).unwrap();
            assert_eq!(
                ours.get("password").map(str::as_bytes),
                theirs.get_password(),
                "{t}"
            );
            assert_eq!(ours.get("user"), theirs.get_user(), "{t}");
            assert_eq!(ours.get("dbname"), theirs.get_dbname(), "{t}");
        }
    }

    #[test]
    fn values_are_quoted_and_encoded() {
        assert_eq!(quote(r"it's a \ b"), r"'it\'s a \\ b'");
        assert_eq!(
            encodings("a b/é"),
            ["a%20b%2F%C3%A9".to_string(), "a%20b%2f%c3%a9".to_string()]
        );
    }
}
