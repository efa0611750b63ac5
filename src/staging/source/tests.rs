use super::*;

fn env() -> Environment {
    Environment::new(&[], Some(Path::new("/nonexistent-home")), "osuser")
}

fn source(text: &str) -> Source {
    Source::with_env("--from-url", text, &env()).unwrap()
}

fn patterns() -> Vec<String> {
    DEFAULT_PRODUCTION_PATTERNS
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Every way a password can be written, with the password.
const FORMS: [(&str, &str); 6] = [
    ("postgresql://app:s3cret@db.example.com:5432/shop", "s3cret"),
    (
        "postgres://app@db/shop?password=s3cret&sslmode=require",
        "s3cret",
    ),
    ("host=db user=app password = s3cret dbname=shop", "s3cret"),
    ("host=db user=app password='a b c' dbname=shop", "a b c"),
    ("postgresql://app:p%40ss%2Fw%3Ard@db/shop", "p@ss/w:rd"),
    (
        r"host=db password='it\'s \\ here' dbname=shop",
        r"it's \ here",
    ),
];

#[test]
fn passwords_are_redacted_in_every_form() {
    for (text, password) in FORMS {
        let s = source(text);
        let shown = s.redacted();
        assert!(!shown.contains(password), "{text}: {shown}");
        assert!(shown.contains("password=***"), "{text}: {shown}");
        assert!(shown.contains("dbname=shop"), "{text}: {shown}");
        assert!(!format!("{s:?}").contains(password), "{text}");
        // Echoes of the text, decoded or as written, are scrubbed.
        let echo = format!("failed: {text} ({password})");
        let scrubbed = s.scrub(&echo);
        assert!(!scrubbed.contains(password), "{text}: {scrubbed}");
        for spelling in conninfo::encodings(password) {
            assert_eq!(s.scrub(&spelling), "***", "{text}");
        }
    }
    assert_eq!(
        source("postgresql://db/shop").redacted(),
        "host=db port=5432 user=osuser dbname=shop"
    );
}

#[test]
fn client_programs_get_the_target_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    for (text, password) in FORMS {
        let s = source(text);
        let (cmd, passfile) = s
            .client(Path::new("/bin/true"), dir.path(), "downtime test")
            .unwrap();
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let conninfo = &args[1];
        assert!(!args.iter().any(|a| a.contains(password)), "{args:?}");
        let passfile = passfile.expect("a password file");
        assert!(conninfo.contains(&format!(
            "passfile={}",
            quote(&passfile.path().display().to_string())
        )));
        let parsed = conninfo::parse(conninfo).unwrap().settings;
        assert_eq!(parsed.get("dbname"), Some("shop"));
        assert_eq!(parsed.get("password"), None);
        assert_eq!(
            passfile::lookup(passfile.path(), "h", "1", "d", "u").as_deref(),
            Some(password)
        );
        // libpq's variables are cleared: the child cannot be sent elsewhere.
        let cleared: Vec<String> = cmd
            .get_envs()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect();
        for var in [
            "PGDATABASE",
            "PGHOST",
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGOPTIONS",
            "PGPASSWORD",
        ] {
            assert!(cleared.contains(&var.to_string()), "{var}");
        }
    }
}

#[test]
fn read_only_comes_last_whatever_the_options_say() {
    for text in [
        "host=db dbname=shop options='-c default_transaction_read_only=off'",
        "postgresql://db/shop?options=-c%20default_transaction_read_only%3Doff",
        r"host=db dbname=shop options='-c application_name=x\\'",
        "host=db dbname=shop options='--default-transaction-read-only=off'",
    ] {
        let s = source(text);
        let words = options::split(&s.options());
        assert_eq!(
            &words[words.len() - 2..],
            &READ_ONLY_OPTIONS,
            "{text}: {words:?}"
        );
        let conninfo = s.client_conninfo(None, "x");
        let parsed = conninfo::parse(&conninfo).unwrap().settings;
        assert_eq!(parsed.get("options"), Some(s.options().as_str()), "{text}");
    }
    let e = Environment::new(
        &[("PGOPTIONS", "-c default_transaction_read_only=off")],
        None,
        "u",
    );
    let s = Source::with_env("--from-url", "dbname=shop", &e).unwrap();
    assert_eq!(
        s.options(),
        "-c default_transaction_read_only=off -c default_transaction_read_only=on"
    );
}

#[test]
fn production_guard_judges_the_resolved_target() {
    let patterns = patterns();
    for url in [
        "postgresql://db-prod-1.example.com/shop",
        "postgresql://db.example.com/shop_production",
        "postgresql://live.example.com/shop",
        "host=/tmp dbname=PROD",
        "hostaddr=10.0.0.1 host=prod.internal dbname=x",
    ] {
        assert!(source(url).guard(&patterns, false).is_err(), "{url}");
        assert!(source(url).guard(&patterns, true).is_ok(), "{url}");
    }
    for url in [
        "postgresql://staging.example.com/shop",
        "postgresql://db/liveness_probe",
        "postgresql://products.example.com/x",
    ] {
        assert!(source(url).guard(&patterns, false).is_ok(), "{url}");
    }
    let e = source("postgresql://u:pw@prod/x")
        .guard(&patterns, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains(PRODUCTION_FLAG) && !e.contains("pw"), "{e}");
    // Names from the environment and from a service count as much.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".pg_service.conf"),
        "[shop]\nhost=127.0.0.1\ndbname=prod_shop\n",
    )
    .unwrap();
    for (vars, text) in [
        (
            vec![("PGDATABASE", "prod_shop")],
            "postgresql://app@127.0.0.1",
        ),
        (vec![("PGHOST", "db.prod.internal")], "dbname=shop"),
        (vec![("PGSERVICE", "shop")], "user=app"),
        (vec![], "service=shop"),
        (vec![("PGUSER", "prod")], ""),
    ] {
        let e = Environment::new(&vars, Some(home.path()), "osuser");
        let s = Source::with_env("--from-url", text, &e).unwrap();
        let err = s.guard(&patterns, false).unwrap_err().to_string();
        assert!(err.contains("from "), "{err}");
    }
}

#[test]
fn a_server_downtime_writes_to_is_not_read_only_and_never_production() {
    let s =
        source("postgresql://app:s3cret@staging.internal/postgres?options=-c%20work_mem%3D64MB")
            .into_writable();
    assert_eq!(s.options(), "-c work_mem=64MB");
    let conninfo = s
        .on_database("downtime_0000abcd_copy_1")
        .client_conninfo(None, "x");
    assert!(!conninfo.contains("read_only"), "{conninfo}");
    assert!(
        conninfo.contains("dbname='downtime_0000abcd_copy_1'"),
        "{conninfo}"
    );
    assert!(!conninfo.contains("s3cret"), "{conninfo}");
    let prod = source("postgresql://app:s3cret@db-prod.internal/postgres").into_writable();
    for flag in [false, true] {
        let e = prod.guard(&patterns(), flag).unwrap_err().to_string();
        assert!(e.contains("must be a staging server"), "{e}");
        assert!(
            e.contains("production-patterns") && !e.contains("s3cret"),
            "{e}"
        );
    }
}

#[test]
fn a_bad_string_is_a_usage_error_that_does_not_show_it() {
    for text in ["password=a b c", "postgresql://u:p%zz@h/d", "host=x port"] {
        let e = Source::with_env("--from-url", text, &env()).unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        let shown = e.to_string();
        assert!(!shown.contains("b c") && !shown.contains("p%zz"), "{shown}");
    }
    let e = Source::with_env("--from-url", "host=x sslpassword=k3y", &env()).unwrap_err();
    assert!(!e.to_string().contains("k3y"), "{e}");
}

#[test]
fn downtimes_own_connection_uses_the_same_target() {
    let e = Environment::new(&[("PGDATABASE", "envdb"), ("PGPORT", "6543")], None, "u");
    let s = Source::with_env("--url", "postgresql://app:pw@h1", &e).unwrap();
    let c = s.connect_config("downtime").unwrap();
    assert_eq!(c.get_dbname(), Some("envdb"));
    assert_eq!(c.get_ports(), &[6543]);
    assert_eq!(c.get_user(), Some("app"));
    assert_eq!(c.get_password(), Some(&b"pw"[..]));
    assert!(c
        .get_options()
        .unwrap()
        .ends_with("-c default_transaction_read_only=on"));
    // The driver's TLS modes; the certificate is checked by the connector.
    let mode = |m: &str| {
        Source::with_env("--url", &format!("host=h sslmode={m}"), &e)
            .and_then(|s| s.connect_config("downtime"))
            .map(|c| c.get_ssl_mode())
    };
    use tokio_postgres::config::SslMode;
    assert_eq!(mode("require").unwrap(), SslMode::Require);
    assert_eq!(mode("allow").unwrap(), SslMode::Prefer);
    assert_eq!(mode("disable").unwrap(), SslMode::Disable);
    // libpq uses no TLS on a Unix socket.
    let socket = Source::with_env("--url", "host=/tmp,@abstract sslmode=require", &e)
        .and_then(|s| s.connect_config("downtime"))
        .map(|c| c.get_ssl_mode());
    assert_eq!(socket.unwrap(), SslMode::Disable);
    // No home directory to find root.crt in: libpq's error.
    for m in ["verify-ca", "verify-full"] {
        let err = mode(m).unwrap_err().to_string();
        assert!(
            err.contains("sslrootcert: could not get home directory"),
            "{err}"
        );
    }
    // Without a password, the one the password file holds for the target.
    let home = tempfile::tempdir().unwrap();
    let pgpass = home.path().join(".pgpass");
    std::fs::write(&pgpass, "h1:6543:envdb:app:from-file\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Environment::new(
        &[("PGDATABASE", "envdb"), ("PGPORT", "6543")],
        Some(home.path()),
        "u",
    );
    let s = Source::with_env("--url", "postgresql://app@h1", &e).unwrap();
    let c = s.connect_config("downtime").unwrap();
    assert_eq!(c.get_password(), Some(&b"from-file"[..]));
}

#[test]
fn a_password_no_password_file_can_hold_goes_by_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let s = source("host=db dbname=shop password='line\nbreak'");
    let (cmd, passfile) = s.client(Path::new("/bin/true"), dir.path(), "x").unwrap();
    assert!(passfile.is_none());
    assert!(!cmd
        .get_args()
        .any(|a| a.to_string_lossy().contains("break")));
    let pw = cmd
        .get_envs()
        .find(|(k, _)| *k == "PGPASSWORD")
        .and_then(|(_, v)| v);
    assert_eq!(
        pw.map(|v| v.to_string_lossy().into_owned()).as_deref(),
        Some("line\nbreak")
    );
}

/// A home directory with `~/.postgresql/` holding `files`.
fn home_with(files: &[&str]) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).unwrap();
    for f in files {
        std::fs::write(dot.join(f), "").unwrap();
    }
    home
}

#[test]
fn tls_files_are_found_as_libpq_finds_them() {
    let home = home_with(&[]);
    let e = Environment::new(&[], Some(home.path()), "u");
    let ssl = |text: &str| Source::with_env("--url", text, &e).map(|s| s.ssl().clone());
    // A missing root certificate file is an error in the modes that check,
    // naming the file and the setting; `require` then checks nothing.
    let root = home.path().join(".postgresql/root.crt");
    let err = ssl("host=h sslmode=verify-full").unwrap_err();
    assert!(matches!(err, Error::Usage(_)));
    let err = err.to_string();
    assert!(
        err.contains(&format!(
            "sslrootcert: root certificate file \"{}\" does not exist",
            root.display()
        )),
        "{err}"
    );
    let err = ssl("host=h sslmode=verify-ca sslrootcert=/nonexistent/ca.pem")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"/nonexistent/ca.pem\" does not exist"),
        "{err}"
    );
    assert_eq!(ssl("host=h sslmode=require").unwrap().root, None);
    // With the file there, `require` checks the chain as `verify-ca` does;
    // `prefer` does not check.
    std::fs::write(&root, "").unwrap();
    let s = ssl("host=h sslmode=require").unwrap();
    assert_eq!(
        (s.mode, s.root.as_deref()),
        (ssl::Mode::Require, Some(root.as_path()))
    );
    assert_eq!(ssl("host=h").unwrap().root, None);
    // verify-full checks `host`: an address alone is not one.
    let err = ssl("hostaddr=127.0.0.1 sslmode=verify-full")
        .unwrap_err()
        .to_string();
    assert!(err.contains("host name must be specified"), "{err}");
    assert!(ssl("hostaddr=127.0.0.1 sslmode=verify-ca").is_ok());
    // A bad mode, and a weak one with the system's roots, each named.
    let err = ssl("host=h sslmode=verify").unwrap_err().to_string();
    assert!(err.contains("invalid sslmode value: \"verify\""), "{err}");
    match ssl("host=h sslrootcert=system") {
        Ok(s) => assert!(s.mode == ssl::Mode::VerifyFull && s.system && s.root.is_some()),
        Err(e) => assert!(e.to_string().contains("no root certificate bundle"), "{e}"),
    }
    let err = ssl("host=h sslrootcert=system sslmode=require")
        .unwrap_err()
        .to_string();
    assert!(err.contains("weak sslmode \"require\""), "{err}");
    assert!(err.starts_with("--url host=h"), "{err}");
    // Revocation lists where the chain is checked: the default file when
    // none is named, one not there passed over, none without a check.
    let crl = home.path().join(".postgresql/root.crl");
    std::fs::write(&crl, "").unwrap();
    assert_eq!(
        ssl("host=h sslmode=verify-ca").unwrap().crl,
        Some(crl.clone())
    );
    assert_eq!(
        ssl("host=h sslmode=verify-ca sslcrl=/x.crl").unwrap().crl,
        None
    );
    let dir = ssl(&format!(
        "host=h sslmode=verify-ca sslcrldir={}",
        home.path().display()
    ));
    assert_eq!(
        (dir.as_ref().unwrap().crl.clone(), dir.unwrap().crl_dir),
        (None, Some(home.path().to_path_buf()))
    );
    assert_eq!(ssl("host=h").unwrap().crl, None);
    std::fs::remove_file(&crl).unwrap();
    // A client certificate is sent when its file is there; its key must be.
    let cert = home.path().join(".postgresql/postgresql.crt");
    std::fs::write(&cert, "").unwrap();
    let err = ssl("host=h").unwrap_err().to_string();
    assert!(
        err.contains("certificate present, but not private key file"),
        "{err}"
    );
    let key = home.path().join(".postgresql/postgresql.key");
    std::fs::write(&key, "").unwrap();
    assert_eq!(
        ssl("host=h").unwrap().client,
        Some((cert.clone(), key.clone()))
    );
    assert_eq!(ssl("host=h sslcertmode=disable").unwrap().client, None);
    assert_eq!(ssl("host=h sslmode=disable").unwrap().client, None);
}

#[test]
fn client_programs_get_the_tls_files_decided() {
    let home = home_with(&["root.crt", "postgresql.crt", "postgresql.key"]);
    let e = Environment::new(&[("PGSSLMODE", "verify-full")], Some(home.path()), "u");
    let s = Source::with_env("--url", "host=h sslcert=''", &e).unwrap();
    let info = s.client_conninfo(None, "x");
    let dot = home.path().join(".postgresql");
    for (k, f) in [
        ("sslrootcert", "root.crt"),
        ("sslcert", "postgresql.crt"),
        ("sslkey", "postgresql.key"),
    ] {
        let want = format!("{k}='{}'", dot.join(f).display());
        assert!(info.contains(&want), "{want} in {info}");
    }
    assert!(info.contains("sslmode='verify-full'"), "{info}");
    assert_eq!(info.matches("sslcert=").count(), 1, "{info}");
}

#[test]
fn a_client_key_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let home = home_with(&["postgresql.crt", "postgresql.key"]);
    let key = home.path().join(".postgresql/postgresql.key");
    let e = Environment::new(&[], Some(home.path()), "u");
    let s = Source::with_env("--url", "host=h", &e).unwrap();
    let owned_by_root = nix::unistd::geteuid().is_root();
    // 0640 passes for a root-owned file only; 0604 never.
    for (mode, ok) in [(0o640, owned_by_root), (0o604, false), (0o644, false)] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = s.tls().err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            !err.contains("group or world access"),
            ok,
            "{mode:o}: {err}"
        );
    }
    // Private enough: then the file must hold a key.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = s.tls().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("sslkey: not a PEM private key"), "{err}");
}

#[test]
fn tls_versions_are_libpqs_range_within_what_rustls_speaks() {
    use crate::staging::tls::Versions;
    let e = env();
    let v = |text: &str| Source::with_env("--url", text, &e).map(|s| s.ssl().versions);
    let (both, only12, only13) = (
        Versions::default(),
        Versions {
            tls12: true,
            tls13: false,
        },
        Versions {
            tls12: false,
            tls13: true,
        },
    );
    assert_eq!(v("host=h").unwrap(), both);
    assert_eq!(v("host=h ssl_min_protocol_version=TLSv1").unwrap(), both);
    assert_eq!(
        v("host=h ssl_min_protocol_version=TLSv1.3").unwrap(),
        only13
    );
    assert_eq!(
        v("host=h ssl_max_protocol_version=tlsv1.2").unwrap(),
        only12
    );
    for (text, says) in [
        (
            "ssl_min_protocol_version=TLSv9",
            "invalid value \"TLSv9\" for minimum",
        ),
        (
            "ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
            "invalid SSL protocol version range",
        ),
        // libpq's default minimum is TLSv1.2.
        (
            "ssl_max_protocol_version=TLSv1.1",
            "invalid SSL protocol version range",
        ),
        (
            "ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1",
            "speak TLS 1.2 and 1.3 only",
        ),
    ] {
        let err = v(&format!("host=h {text}")).unwrap_err();
        assert!(matches!(err, Error::Usage(_)));
        assert!(err.to_string().contains(says), "{text}: {err}");
    }
}
