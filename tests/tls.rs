//! TLS that checks the server, on real servers: certificates made with
//! `openssl` at test time (a CA, a server certificate it signs for
//! `localhost` and 127.0.0.1, a CA that signed nothing, a client
//! certificate), PostgreSQL started with `ssl = on`, and downtime's own
//! connections and its `psql`/`pg_restore` children checking the server as
//! libpq does: `verify-full` (chain and host name), `verify-ca` (chain
//! only), a missing root certificate file, and a server that logs a role in
//! by its client certificate (`hostssl … cert`).

mod common;
#[path = "common/tcp.rs"]
mod tcp;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{text, Scratch};
use tcp::{ServerTls, TcpServer};

const PASSWORD: &str = "tls-test-pw";

/// The certificates of one test, in a directory of their own.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a second CA that signed nothing, a server certificate for
    /// `localhost` and 127.0.0.1, and a client certificate for `certuser`.
    fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        pki.leaf("client", "certuser", "extendedKeyUsage=clientAuth\n");
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The path as a connection string value.
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl, to make the test's certificates (install the openssl package)");
        assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    }

    fn ca(&self, name: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ]);
    }

    /// A key and a certificate `ca` signs, with `extensions`.
    fn leaf(&self, name: &str, cn: &str, extensions: &str) {
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!("basicConstraints=CA:FALSE\n{extensions}"),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ]);
        std::fs::set_permissions(
            self.path(&format!("{name}.key")),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    }

    /// A revocation list of the CA, named `name`: empty, or with the
    /// server's certificate revoked (`openssl ca`, its records in the
    /// certificates' directory).
    fn crl(&self, name: &str, revoke_server: bool) -> String {
        if !self.path("ca.cnf").exists() {
            std::fs::write(self.path("index.txt"), "").unwrap();
            std::fs::write(self.path("crlnumber"), "1000\n").unwrap();
            std::fs::write(
                self.path("ca.cnf"),
                "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
                 default_md = sha256\ndefault_crl_days = 2\n",
            )
            .unwrap();
        }
        let ca = ["-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt"];
        if revoke_server {
            self.openssl(&[&["ca"][..], &ca, &["-revoke", "server.crt"]].concat());
        }
        self.openssl(&[&["ca"][..], &ca, &["-gencrl", "-out", name]].concat());
        self.arg(name)
    }

    /// A server with the server certificate; `certuser` (a superuser
    /// without a password) logs in by its client certificate, anyone else
    /// by password, over TLS only.
    fn server(&self) -> TcpServer {
        let server = TcpServer::with_tls_files(
            PASSWORD,
            &ServerTls {
                cert: self.path("server.crt"),
                key: self.path("server.key"),
                client_ca: Some(self.path("ca.crt")),
                hba: "hostssl all certuser 127.0.0.1/32 cert\n\
                      hostssl all all 127.0.0.1/32 scram-sha-256"
                    .into(),
            },
        );
        server.psql("postgres", "create role certuser login superuser");
        server
    }
}

/// A scratch with a small baseline (loaded by `psql` on the server) and
/// one patch.
fn scratch() -> Scratch {
    let s = Scratch::new();
    s.baseline(
        "create table t (id int primary key);\ninsert into t select generate_series(1, 50);\n",
    );
    s.patch("0001-col.sql", "alter table t add column v text;\n");
    s
}

/// The superuser's connection string to `host` (with `extra` settings).
fn conninfo(server: &TcpServer, host: &str, extra: &str) -> String {
    format!(
        "host={host} port={} user=postgres password={PASSWORD} dbname=postgres {extra}",
        server.port
    )
}

/// `check` on the server backend: its exit code and stderr.
fn check(s: &Scratch, url: &str) -> (i32, String) {
    let out = s.run(&["check", "--backend", "server", "--url", url, "--no-cache"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The run passed, and left the server's databases as they were.
fn assert_passes(s: &Scratch, server: &TcpServer, before: &[String], url: &str) {
    let (code, r, err) = s.check_json(&["--backend", "server", "--url", url, "--no-cache"]);
    assert_eq!(code, 0, "{url}: {err}");
    assert_eq!(r["verdict"], "pass", "{r}");
    assert_eq!(server.databases(), before);
}

#[test]
fn verify_full_checks_the_chain_and_the_host_name() {
    let pki = Pki::new();
    let server = pki.server();
    let before = server.databases();
    let s = scratch();
    let ca = format!("sslrootcert={}", pki.arg("ca.crt"));
    // The right CA, by name and by address (both in the certificate).
    for host in ["localhost", "127.0.0.1"] {
        let url = conninfo(&server, host, &format!("sslmode=verify-full {ca}"));
        assert_passes(&s, &server, &before, &url);
    }
    // As a URL, with channel binding as well.
    let url = format!(
        "postgresql://postgres:{PASSWORD}@localhost:{}/postgres?sslmode=verify-full&\
         sslrootcert={}&channel_binding=require",
        server.port,
        pki.arg("ca.crt")
    );
    assert_passes(&s, &server, &before, &url);
    // The system's roots (here, as OpenSSL reads them, the test's CA):
    // verify-full by default, and `psql`, whose libpq may not know
    // `system`, loads the baseline from the same file.
    let out = s
        .command(&["check", "--backend", "server", "--no-cache", "--url"])
        .arg(conninfo(&server, "localhost", "sslrootcert=system"))
        .env("SSL_CERT_FILE", pki.path("ca.crt"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A CA that did not sign the server's certificate; `require` checks
    // the chain too when given a root certificate file, as libpq does.
    let other = format!("sslrootcert={}", pki.arg("other-ca.crt"));
    for mode in ["verify-full", "verify-ca", "require"] {
        let (code, err) = check(
            &s,
            &conninfo(&server, "localhost", &format!("sslmode={mode} {other}")),
        );
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("the server's certificate is not signed by a root certificate of")
                && err.contains("other-ca.crt"),
            "{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains(PASSWORD),
            "{err}"
        );
        assert_eq!(
            mode == "require",
            err.contains("sslmode=require checks the chain"),
            "{err}"
        );
    }
    // A host name the certificate does not hold (the address connected to
    // is the server's: libpq checks `host`, connects to `hostaddr`).
    let wrong = |mode: &str| {
        conninfo(
            &server,
            "db.wrong.test",
            &format!("hostaddr=127.0.0.1 sslmode={mode} {ca}"),
        )
    };
    let (code, err) = check(&s, &wrong("verify-full"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(
            "server certificate for \"localhost\" (and 1 other name) does not match host name \
             \"db.wrong.test\""
        ),
        "{err}"
    );
    // verify-ca checks the chain only: the same target passes, `psql`
    // loading the baseline included.
    assert_passes(&s, &server, &before, &wrong("verify-ca"));
    // A server that speaks TLS 1.2 at most, and a client that wants 1.3.
    server.psql(
        "postgres",
        "alter system set ssl_max_protocol_version = 'TLSv1.2'",
    );
    server.psql("postgres", "select pg_reload_conf()");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let full = format!("sslmode=verify-full {ca}");
    let (code, err) = check(
        &s,
        &conninfo(
            &server,
            "localhost",
            &format!("{full} ssl_min_protocol_version=TLSv1.3"),
        ),
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("TLS handshake"), "{err}");
    assert_passes(&s, &server, &before, &conninfo(&server, "localhost", &full));
    s.assert_clean();
}

#[test]
fn a_missing_root_certificate_file_is_named() {
    let pki = Pki::new();
    let server = pki.server();
    let s = scratch();
    let missing = pki.path("nowhere/root.crt");
    for mode in ["verify-full", "verify-ca"] {
        let url = conninfo(
            &server,
            "localhost",
            &format!("sslmode={mode} sslrootcert={}", missing.display()),
        );
        let (code, err) = check(&s, &url);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(&format!(
                "sslrootcert: root certificate file \"{}\" does not exist",
                missing.display()
            )),
            "{err}"
        );
    }
    // Without sslrootcert, the default file in the home directory.
    let home = tempfile::tempdir().unwrap();
    let out = s
        .command(&["check", "--backend", "server", "--url"])
        .arg(conninfo(&server, "localhost", "sslmode=verify-full"))
        .env("HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let root = home.path().join(".postgresql/root.crt");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "root certificate file \"{}\" does not exist",
            root.display()
        )),
        "{}",
        text(&out)
    );
    s.assert_clean();
}

/// `~/.postgresql/` of a home directory with the test's CA and client
/// certificate under libpq's default names.
fn home_with_client_certificate(pki: &Pki) -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let dot = home.path().join(".postgresql");
    std::fs::create_dir(&dot).unwrap();
    for (from, to) in [
        ("ca.crt", "root.crt"),
        ("client.crt", "postgresql.crt"),
        ("client.key", "postgresql.key"),
    ] {
        std::fs::copy(pki.path(from), dot.join(to)).unwrap();
    }
    std::fs::set_permissions(
        dot.join("postgresql.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    home
}

fn run_in_home(s: &Scratch, home: &Path, args: &[&str]) -> Output {
    s.command(args).env("HOME", home).output().unwrap()
}

#[test]
fn a_client_certificate_logs_in_where_the_server_asks_for_one() {
    let pki = Pki::new();
    let server = pki.server();
    let before = server.databases();
    let s = scratch();
    let certuser = |extra: &str| {
        format!(
            "host=localhost port={} user=certuser dbname=postgres sslmode=verify-full \
             sslrootcert={} {extra}",
            server.port,
            pki.arg("ca.crt")
        )
    };
    // Named by sslcert and sslkey.
    let files = format!(
        "sslcert={} sslkey={}",
        pki.arg("client.crt"),
        pki.arg("client.key")
    );
    assert_passes(&s, &server, &before, &certuser(&files));
    // The application probe's sessions log in the same way.
    let (code, r, err) = s.check_json(&[
        "--backend",
        "server",
        "--url",
        &certuser(&files),
        "--no-cache",
        "--probe",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        r["patches"].as_array().is_some_and(|p| !p.is_empty()),
        "{r}"
    );
    assert!(!common::patch(&r, "0001-col")["probe"].is_null(), "{r}");
    // Without one, the server refuses the role.
    let empty_home = tempfile::tempdir().unwrap();
    let out = run_in_home(
        &s,
        empty_home.path(),
        &["check", "--backend", "server", "--url", &certuser("")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        text(&out)
    );
    // libpq's default files in the home directory, root certificate too;
    // `stats export` connects the same way.
    let home = home_with_client_certificate(&pki);
    let url = format!(
        "host=localhost port={} user=certuser dbname=postgres sslmode=verify-full",
        server.port
    );
    let out = run_in_home(
        &s,
        home.path(),
        &["check", "--backend", "server", "--url", &url, "--no-cache"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stats = s.path().join("stats.json");
    let out = run_in_home(
        &s,
        home.path(),
        &[
            "stats",
            "export",
            "--url",
            &url,
            "--output",
            &stats.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(
        exported["server_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{exported}"
    );
    assert_eq!(server.databases(), before);
    // A key others may read is refused before anything is tried (root's
    // own file: group read passes, world read does not).
    let key = home.path().join(".postgresql/postgresql.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_in_home(
        &s,
        home.path(),
        &["check", "--backend", "server", "--url", &url],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&key.display().to_string()) && err.contains("group or world access"),
        "{err}"
    );
    assert_eq!(server.databases(), before);
    s.assert_clean();
}

#[test]
fn a_revoked_server_certificate_is_refused() {
    let pki = Pki::new();
    let server = pki.server();
    let before = server.databases();
    let s = scratch();
    let url = |crl: &str| {
        conninfo(
            &server,
            "localhost",
            &format!(
                "sslmode=verify-full sslrootcert={} {crl}",
                pki.arg("ca.crt")
            ),
        )
    };
    // A list that revokes nothing: the run passes, `psql` reading it too.
    let empty = pki.crl("empty.crl", false);
    assert_passes(&s, &server, &before, &url(&format!("sslcrl={empty}")));
    // The server's certificate revoked, by a file or in a directory.
    let revoked = pki.crl("revoked.crl", true);
    let dir = pki.path("crls");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&revoked, dir.join("revoked.r0")).unwrap();
    for crl in [
        format!("sslcrl={revoked}"),
        format!("sslcrldir={}", dir.display()),
    ] {
        let (code, err) = check(&s, &url(&crl));
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("the server's certificate, or one of its chain, is revoked by"),
            "{err}"
        );
    }
    assert_eq!(server.databases(), before);
    s.assert_clean();
}
