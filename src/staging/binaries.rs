//! Finding the PostgreSQL programs on this machine, in one order for every
//! use (the local backend's server, and the client programs that load the
//! baseline for both backends):
//!
//! 1. the directory given with `--pg-bin`, and nothing else when it is given;
//! 2. the first directory on `PATH` that holds all the programs wanted (a
//!    link there is followed to its installation directory when that holds
//!    them too, so companion programs come from the same version);
//! 3. the newest `/usr/lib/postgresql/<major>/bin` that holds them.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian and Ubuntu install each major version's programs.
const INSTALL_ROOT: &str = "/usr/lib/postgresql";

/// A set of programs that must come from one directory.
#[derive(Debug, Clone, Copy)]
pub struct Programs {
    /// The programs' file names.
    pub names: &'static [&'static str],
    /// What they are, for messages.
    pub what: &'static str,
    /// The Debian/Ubuntu package that installs them.
    pub package: &'static str,
    /// How to do without them, if there is a way (appended to the error).
    pub otherwise: &'static str,
}

/// The server programs the local backend runs.
pub const SERVER: Programs = Programs {
    names: &["postgres", "initdb"],
    what: "PostgreSQL server binaries",
    package: "postgresql",
    otherwise: ", or choose another --backend",
};

/// The client programs that load the baseline (both backends).
pub const CLIENTS: Programs = Programs {
    names: &["psql", "pg_restore", "pg_dump"],
    what: "PostgreSQL client programs (they load the baseline)",
    package: "postgresql",
    otherwise: "",
};

impl Programs {
    /// `dir` holds every one of the programs.
    pub fn all_in(&self, dir: &Path) -> bool {
        self.names.iter().all(|n| dir.join(n).is_file())
    }

    /// "`postgres` and `initdb`", "`psql`, `pg_restore` and `pg_dump`".
    fn listed(&self) -> String {
        let quoted: Vec<String> = self.names.iter().map(|n| format!("`{n}`")).collect();
        match quoted.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
            _ => quoted.concat(),
        }
    }
}

/// The directory to take `programs` from: `explicit` (`--pg-bin`) when
/// given, else `PATH`, else the newest `/usr/lib/postgresql/*/bin`.
pub fn find(explicit: Option<&Path>, programs: &Programs) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    find_in(explicit, programs, &path, Path::new(INSTALL_ROOT))
}

/// [`find`] with the search path and the installation root given.
fn find_in(
    explicit: Option<&Path>,
    programs: &Programs,
    path: &std::ffi::OsStr,
    install_root: &Path,
) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        if programs.all_in(dir) {
            return Ok(dir.to_path_buf());
        }
        return Err(Error::Usage(format!(
            "--pg-bin {}: no {} there; point --pg-bin at the directory that holds them \
             (e.g. {INSTALL_ROOT}/<major>/bin)",
            dir.display(),
            programs.listed()
        )));
    }
    if let Some(dir) = on_path(programs, path) {
        return Ok(dir);
    }
    if let Some(dir) = newest_installed(programs, install_root) {
        return Ok(dir);
    }
    Err(Error::Server(format!(
        "no {} found: looked for {} on PATH ({}) and under {}/*/bin. Install them \
         (Debian/Ubuntu: `apt-get install {}`) or point --pg-bin at their directory{}",
        programs.what,
        programs.listed(),
        path.to_string_lossy(),
        install_root.display(),
        programs.package,
        programs.otherwise
    )))
}

/// The first `PATH` directory holding every program, or the installation
/// directory its links lead to when that holds them too.
fn on_path(programs: &Programs, path: &std::ffi::OsStr) -> Option<PathBuf> {
    let dir = std::env::split_paths(path).find(|d| programs.all_in(d))?;
    let first = programs.names.first()?;
    let real = std::fs::canonicalize(dir.join(first))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|p| programs.all_in(p));
    Some(real.unwrap_or(dir))
}

/// The newest `<install_root>/<major>/bin` holding every program: one read
/// of the installation root, newest major first.
fn newest_installed(programs: &Programs, install_root: &Path) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(install_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    found
        .into_iter()
        .map(|(_, dir)| dir)
        .find(|dir| programs.all_in(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_directory_without_the_programs_is_a_usage_error() {
        let empty = tempfile::tempdir().unwrap();
        let err = find(Some(empty.path()), &SERVER).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("`postgres` and `initdb`") && text.contains("--pg-bin"),
            "{text}"
        );
    }

    #[test]
    fn an_explicit_directory_with_the_programs_is_taken_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        for n in CLIENTS.names {
            std::fs::write(dir.path().join(n), "").unwrap();
        }
        assert_eq!(find(Some(dir.path()), &CLIENTS).unwrap(), dir.path());
        assert!(!SERVER.all_in(dir.path()));
    }

    #[test]
    fn programs_are_listed_for_messages() {
        assert_eq!(SERVER.listed(), "`postgres` and `initdb`");
        assert_eq!(CLIENTS.listed(), "`psql`, `pg_restore` and `pg_dump`");
    }

    /// A directory holding empty files named like `programs`.
    fn fake_install(dir: &Path, programs: &Programs) {
        std::fs::create_dir_all(dir).unwrap();
        for n in programs.names {
            std::fs::write(dir.join(n), "").unwrap();
        }
    }

    #[test]
    fn path_comes_before_the_newest_installed_version() {
        let root = tempfile::tempdir().unwrap();
        let install = root.path().join("lib");
        fake_install(&install.join("13/bin"), &SERVER);
        fake_install(&install.join("15/bin"), &SERVER);
        std::fs::create_dir_all(install.join("17/bin")).unwrap();
        std::fs::create_dir_all(install.join("notes")).unwrap();
        let on_path = root.path().join("path-bin");
        fake_install(&on_path, &SERVER);
        let empty = root.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();

        let path = std::env::join_paths([&empty, &on_path]).unwrap();
        assert_eq!(find_in(None, &SERVER, &path, &install).unwrap(), on_path);
        // Nothing on PATH: the newest major that has them (17 has not).
        let path = std::env::join_paths([&empty]).unwrap();
        assert_eq!(
            find_in(None, &SERVER, &path, &install).unwrap(),
            install.join("15/bin")
        );
        // --pg-bin wins over both.
        let explicit = install.join("13/bin");
        assert_eq!(
            find_in(Some(&explicit), &SERVER, &path, &install).unwrap(),
            explicit
        );
        // Nowhere: the error names the programs, the places and the remedies.
        let err = find_in(None, &CLIENTS, &path, &install).unwrap_err();
        let text = err.to_string();
        for needle in [
            "`psql`",
            "PATH",
            "/*/bin",
            "apt-get install postgresql",
            "--pg-bin",
        ] {
            assert!(text.contains(needle), "{needle} missing from: {text}");
        }
    }
}
