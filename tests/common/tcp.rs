//! A PostgreSQL server of a test's own, reached over TCP on 127.0.0.1 with
//! SCRAM passwords: as downtime meets a server it does not start itself.
//! The test's own setup goes through its Unix socket, in the server's
//! private directory: with trust ([`TcpServer::start`]), or with the
//! superuser's password too ([`TcpServer::with_password`]).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use downtime::staging::embedded::find_bin_dir;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub struct TcpServer {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    /// The bootstrap superuser.
    pub superuser: String,
    /// Its password, when the socket asks for one too.
    password: Option<String>,
}

impl TcpServer {
    /// Superuser `downtime`, trusted on the socket; SCRAM over TCP for
    /// the roles a test makes with [`TcpServer::role`].
    pub fn start() -> TcpServer {
        TcpServer::boot("downtime", None, None)
    }

    /// Superuser `postgres` with `password`, asked for on the socket and
    /// over TCP alike (`initdb --auth=scram-sha-256`).
    pub fn with_password(password: &str) -> TcpServer {
        TcpServer::boot("postgres", Some(password), None)
    }

    /// As [`TcpServer::with_password`], but TCP connections must use TLS
    /// (`hostssl` only), with a self-signed certificate made by
    /// `openssl req` with `key_args` (`-newkey rsa:2048 -sha256`, …).
    pub fn with_tls(password: &str, key_args: &[&str]) -> TcpServer {
        TcpServer::boot("postgres", Some(password), Some(Tls::SelfSigned(key_args)))
    }

    /// As [`TcpServer::with_password`], with the certificate, key, client
    /// CA and `hostssl` lines of `files`.
    pub fn with_tls_files(password: &str, files: &ServerTls) -> TcpServer {
        TcpServer::boot("postgres", Some(password), Some(Tls::Files(files)))
    }

    /// As [`TcpServer::with_password`], with `wal_level = logical`: a
    /// publisher subscriptions can make replication slots on.
    pub fn publisher(password: &str) -> TcpServer {
        TcpServer::boot_with("postgres", Some(password), None, &["wal_level=logical"])
    }

    /// As [`TcpServer::with_password`], with these settings given to the
    /// server (`name=value`, as `-c` takes them).
    pub fn with_settings(password: &str, settings: &[&str]) -> TcpServer {
        TcpServer::boot_with("postgres", Some(password), None, settings)
    }

    fn boot(superuser: &str, password: Option<&str>, tls: Option<Tls>) -> TcpServer {
        TcpServer::boot_with(superuser, password, tls, &[])
    }

    fn boot_with(
        superuser: &str,
        password: Option<&str>,
        tls: Option<Tls>,
        settings: &[&str],
    ) -> TcpServer {
        let bin = find_bin_dir(None).expect("PostgreSQL server binaries");
        let dir = tempfile::Builder::new()
            .prefix("tcp-server-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            superuser,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        match password {
            Some(pw) => {
                let pwfile = dir.path().join("pwfile");
                std::fs::write(&pwfile, format!("{pw}\n")).unwrap();
                std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o644)).unwrap();
                initdb
                    .arg("--auth=scram-sha-256")
                    .arg("--pwfile")
                    .arg(&pwfile);
            }
            None => {
                initdb.args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
            }
        }
        as_server(&mut initdb);
        let out = initdb.output().unwrap();
        let _ = std::fs::remove_file(dir.path().join("pwfile"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        match tls {
            Some(Tls::SelfSigned(key_args)) => require_tls(&data, key_args),
            Some(Tls::Files(files)) => install_tls(&data, files),
            None => {}
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                &format!("port={port}"),
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "fsync=off"])
            .args(settings.iter().flat_map(|s| ["-c", s]))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_server(&mut postgres);
        unsafe {
            postgres.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGQUIT).map_err(std::io::Error::from)
            });
        }
        let child = postgres.spawn().unwrap();
        let me = TcpServer {
            dir,
            child,
            port,
            superuser: superuser.to_string(),
            password: password.map(str::to_string),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !me.psql_raw("postgres", "select 1").status.success() {
            assert!(Instant::now() < deadline, "the TCP server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    /// psql as the superuser over the socket (the password, if any, from
    /// the environment).
    pub fn psql_raw(&self, db: &str, sql: &str) -> std::process::Output {
        let bin = find_bin_dir(None).unwrap();
        let mut cmd = Command::new(bin.join("psql"));
        cmd.env_clear();
        if let Some(pw) = &self.password {
            cmd.env("PGPASSWORD", pw);
        }
        cmd.arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                &self.superuser,
                "-d",
                db,
            ])
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .unwrap()
    }

    /// Run SQL as the superuser over the socket; returns stdout.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self.psql_raw(db, sql);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// A client program of the server's bin directory (`psql`, `pg_dump`,
    /// …) connecting as the superuser over the socket to `db`, the password
    /// (if any) from the environment; the caller adds the rest.
    pub fn client(&self, program: &str, db: &str) -> Command {
        let bin = find_bin_dir(None).unwrap();
        let mut cmd = Command::new(bin.join(program));
        cmd.env_clear();
        if let Some(pw) = &self.password {
            cmd.env("PGPASSWORD", pw);
        }
        cmd.arg("-h").arg(self.dir.path()).args([
            "-p",
            &self.port.to_string(),
            "-U",
            &self.superuser,
            "-d",
            db,
        ]);
        cmd
    }

    /// Run the SQL script `file` with psql as the superuser over the
    /// socket, stopping at its first error; returns stdout.
    pub fn psql_file(&self, db: &str, file: &Path) -> String {
        let out = self
            .client("psql", db)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `postgresql://` URL of `db` over TCP, with the superuser and its
    /// password (percent-encoded) when the server has one.
    pub fn url(&self, db: &str) -> String {
        let auth = match &self.password {
            Some(pw) => format!("{}:{}", self.superuser, percent_encode(pw)),
            None => self.superuser.clone(),
        };
        format!("postgresql://{auth}@127.0.0.1:{}/{db}", self.port)
    }

    /// A login role with this password (superuser: a write the read-only
    /// session lets through would succeed).
    pub fn role(&self, name: &str, password: &str) {
        self.psql(
            "postgres",
            &format!(
                "create role {name} login superuser password '{}'",
                password.replace('\'', "''")
            ),
        );
    }

    /// The names of the server's databases, sorted.
    pub fn databases(&self) -> Vec<String> {
        self.psql(
            "postgres",
            "select datname from pg_database order by datname",
        )
        .lines()
        .map(str::to_string)
        .collect()
    }
}

/// How a server takes TLS.
enum Tls<'a> {
    /// A self-signed certificate made with these `openssl req` key arguments.
    SelfSigned(&'a [&'a str]),
    Files(&'a ServerTls),
}

/// A server's TLS files, and who logs in how.
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are checked against this CA (`ssl_ca_file`).
    pub client_ca: Option<PathBuf>,
    /// The `pg_hba.conf` lines after the socket's (`hostssl …`).
    pub hba: String,
}

/// `files` installed in `data` (owned by the server's user, the key
/// 0600), `ssl = on`, and `files.hba` as the TCP lines.
/// The key only its owner may read, as the server demands; the files the
/// server's, when the server runs as `postgres`.
fn give_to_server(data: &Path, names: &[&str]) {
    std::fs::set_permissions(
        data.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if nix::unistd::geteuid().is_root() {
        let u = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        for name in names {
            nix::unistd::chown(&data.join(name), Some(u.uid), Some(u.gid)).unwrap();
        }
    }
}

fn install_tls(data: &Path, files: &ServerTls) {
    let mut copies = vec![("server.crt", &files.cert), ("server.key", &files.key)];
    if let Some(ca) = &files.client_ca {
        copies.push(("client-ca.crt", ca));
    }
    for (name, from) in &copies {
        std::fs::copy(from, data.join(name)).unwrap();
    }
    let names: Vec<&str> = copies.iter().map(|(name, _)| *name).collect();
    give_to_server(data, &names);
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\n");
    if files.client_ca.is_some() {
        text.push_str("ssl_ca_file = 'client-ca.crt'\n");
    }
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        format!("local all all scram-sha-256\n{}\n", files.hba),
    )
    .unwrap();
}

/// A self-signed certificate for the server in `data`, `ssl = on`, and
/// TCP connections without TLS refused.
fn require_tls(data: &Path, key_args: &[&str]) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(key_args)
        .arg("-keyout")
        .arg(data.join("server.key"))
        .arg("-out")
        .arg(data.join("server.crt"))
        .output()
        .expect("openssl, to make the server's certificate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    give_to_server(data, &["server.key", "server.crt"]);
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\n");
    std::fs::write(&conf, text).unwrap();
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
}

/// Run a server program as `postgres` when the test runs as root.
fn as_server(cmd: &mut Command) {
    if nix::unistd::geteuid().is_root() {
        let u = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user to run the server as");
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGQUIT);
        let _ = self.child.wait();
    }
}

/// `text` with every byte but URL-unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
