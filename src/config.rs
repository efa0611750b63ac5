//! `downtime.toml`: the project's policy in a file. Found in the current
//! directory or the nearest parent up to the repository root, or named with
//! `--config`. Paths in it are relative to the file's directory. Unknown keys
//! are errors that name the key and its line; every number is checked
//! against the same range as its flag ([`crate::limits`]), at its line.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::limits::{self, Quantity};
use crate::verdict::policy::{AppliesTo, Profile};

pub const FILE_NAME: &str = "downtime.toml";

/// A number as written in the file, with where it was written.
pub type Number = Option<Spanned<f64>>;

/// The value of a [`Number`].
pub fn value(n: &Number) -> Option<f64> {
    n.as_ref().map(|s| *s.get_ref())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Patch files and folders.
    pub patches: Option<Vec<PathBuf>>,
    /// The layout (and so the tool) the patches are read as.
    pub layout: Option<crate::patch::Layout>,
    #[serde(default)]
    pub budget: BudgetSection,
    #[serde(default)]
    pub staging: StagingSection,
    #[serde(default)]
    pub classify: ClassifySection,
    #[serde(default)]
    pub signoff: SignoffSection,
    #[serde(default)]
    pub probe: ProbeSection,
    /// Production's statistics (`--prod-stats`).
    pub prod_stats: Option<PathBuf>,
    #[serde(default)]
    pub tables: TablesSection,
}

/// `[tables]`: what is known of production's tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TablesSection {
    /// Tables that stay small in production (`schema.table` or a bare
    /// name): work over them is judged as staging measured it.
    pub small: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BudgetSection {
    pub per_patch_seconds: Number,
    pub applies_to: Option<AppliesTo>,
    pub post_deploy_seconds: Number,
    pub warn_at_seconds: Number,
    pub cold_window_seconds: Number,
    pub total_seconds: Number,
    pub notify_seconds: Number,
}

/// A PostgreSQL major version, written as a number or a string.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PgVersion {
    Number(u32),
    Text(String),
}

impl std::fmt::Display for PgVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgVersion::Number(n) => write!(f, "{n}"),
            PgVersion::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct StagingSection {
    pub baseline: Option<PathBuf>,
    /// `local` (also `embedded`), `docker`, `server` or `command`.
    pub backend: Option<crate::staging::BackendKind>,
    /// For the Docker backend: run `postgres:<pg-version>`.
    pub pg_version: Option<PgVersion>,
    /// For the Docker backend: the image, overriding pg-version.
    pub image: Option<String>,
    pub pg_conf: Option<PathBuf>,
    pub pg_bin: Option<PathBuf>,
    pub timeout_seconds: Number,
    pub max_run_seconds: Number,
    /// Words in a --from-url host or database name that mean production.
    pub production_patterns: Option<Vec<String>>,
    /// For the server backend: the server to stage on (`--url`).
    pub url: Option<String>,
    /// For the command backend: the provisioner's commands.
    pub command: Option<CommandSection>,
}

/// `[staging.command]`: the external provisioner of the command backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CommandSection {
    /// Run with `sh -c` for each fresh copy, `DOWNTIME_CLONE` naming it;
    /// its last line of output is the clone's connection URL.
    pub create: Option<String>,
    /// Run with `sh -c` when the copy is done with, the same
    /// `DOWNTIME_CLONE` set.
    pub destroy: Option<String>,
    /// How long each of them may run before its process group is killed
    /// (default 600).
    pub timeout_seconds: Number,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClassifySection {
    pub profile: Option<Profile>,
    pub require_lock_timeout: Option<bool>,
    pub live_lock_threshold_seconds: Number,
    pub bulk_write_fraction: Number,
    pub bulk_write_rows: Number,
}

/// `[probe]`: simulated application traffic while each patch applies.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProbeSection {
    pub enabled: Option<bool>,
    /// The application's own queries (files as `--probe-sql` reads them).
    pub sql: Option<Vec<PathBuf>>,
    /// Only those queries: none derived from the schema.
    pub sql_only: Option<bool>,
    pub long_query_seconds: Number,
    pub threshold_seconds: Number,
    pub rate: Number,
    pub sessions: Number,
    pub tables: Number,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SignoffSection {
    pub file: Option<PathBuf>,
}

/// A config file read from disk, with paths made relative to the caller's
/// working directory.
#[derive(Debug, Default)]
pub struct Config {
    pub path: Option<PathBuf>,
    pub file: ConfigFile,
}

impl Config {
    /// The directory paths in the file are relative to (`.` without a file).
    pub fn base(&self) -> PathBuf {
        self.path
            .as_ref()
            .and_then(|p| p.parent())
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Resolve a path written in the file.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base().join(p)
        }
    }
}

/// Parse a config file's text; errors name the file, the line and the key.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| Error::toml(path, text, &e))?;
    check_numbers(path, text, &file)?;
    Ok(file)
}

impl ConfigFile {
    /// Every number in the file: its key as written, its value and what it may be.
    pub fn numbers(&self) -> Vec<(&'static str, &Number, Quantity)> {
        let (b, st, c, p) = (&self.budget, &self.staging, &self.classify, &self.probe);
        vec![
            (
                "budget.per-patch-seconds",
                &b.per_patch_seconds,
                limits::SECONDS,
            ),
            (
                "budget.post-deploy-seconds",
                &b.post_deploy_seconds,
                limits::SECONDS,
            ),
            (
                "budget.warn-at-seconds",
                &b.warn_at_seconds,
                limits::SECONDS,
            ),
            (
                "budget.cold-window-seconds",
                &b.cold_window_seconds,
                limits::SECONDS,
            ),
            ("budget.total-seconds", &b.total_seconds, limits::SECONDS),
            ("budget.notify-seconds", &b.notify_seconds, limits::SECONDS),
            (
                "staging.timeout-seconds",
                &st.timeout_seconds,
                limits::STATEMENT_TIMEOUT,
            ),
            (
                "staging.max-run-seconds",
                &st.max_run_seconds,
                limits::SECONDS,
            ),
            (
                "classify.live-lock-threshold-seconds",
                &c.live_lock_threshold_seconds,
                limits::SECONDS,
            ),
            (
                "classify.bulk-write-fraction",
                &c.bulk_write_fraction,
                limits::FRACTION,
            ),
            ("classify.bulk-write-rows", &c.bulk_write_rows, limits::ROWS),
            (
                "probe.long-query-seconds",
                &p.long_query_seconds,
                limits::STATEMENT_TIMEOUT,
            ),
            (
                "probe.threshold-seconds",
                &p.threshold_seconds,
                limits::SECONDS,
            ),
            ("probe.rate", &p.rate, limits::PROBE_RATE),
            ("probe.sessions", &p.sessions, limits::PROBE_SESSIONS),
            ("probe.tables", &p.tables, limits::PROBE_TABLES),
            (
                "staging.command.timeout-seconds",
                st.command.as_ref().map_or(&None, |c| &c.timeout_seconds),
                limits::COMMAND_SECONDS,
            ),
        ]
    }
}

/// Each number in its range, else an error at its line naming its key.
fn check_numbers(path: &Path, text: &str, f: &ConfigFile) -> Result<()> {
    for (key, number, quantity) in f.numbers() {
        let Some(n) = number else { continue };
        if let Err(why) = quantity.check(*n.get_ref()) {
            let start = n.span().start.min(text.len());
            return Err(Error::InputAt {
                path: path.to_path_buf(),
                line: 1 + text[..start].matches('\n').count(),
                message: format!("{key} = {why}"),
            });
        }
    }
    Ok(())
}

/// Read `explicit`, or find `downtime.toml` from the working directory up to
/// the repository root. No file is not an error (the defaults apply).
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    let path = match explicit {
        Some(p) => {
            if std::fs::symlink_metadata(p).is_err() {
                return Err(Error::input(p, "config file not found"));
            }
            Some(p.to_path_buf())
        }
        None => find(),
    };
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = crate::fsutil::read_text(&path, crate::fsutil::CONFIG)?;
    let file = parse(&path, &text)?;
    Ok(Config {
        path: Some(path),
        file,
    })
}

fn find() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        // Anything by that name is the config: one that cannot be read (a
        // directory, a pipe, a broken link) is an error, not passed over.
        if std::fs::symlink_metadata(&candidate).is_ok() {
            // Relative to the working directory when it is there.
            return Some(if dir == cwd {
                PathBuf::from(FILE_NAME)
            } else {
                candidate
            });
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let f = parse(
            Path::new("downtime.toml"),
            r#"
patches = ["db/migrate", "db/post_migrate"]
[budget]
per-patch-seconds = 180
post-deploy-seconds = 600
warn-at-seconds = 120
cold-window-seconds = 900
total-seconds = 3600
notify-seconds = 1200
applies-to = "all"
[staging]
baseline = "db/structure.sql"
backend = "embedded"
pg-conf = "prod.conf"
[classify]
profile = "gitlab"
require-lock-timeout = true
[signoff]
file = "db/signoffs.toml"
"#,
        )
        .unwrap();
        assert_eq!(value(&f.budget.per_patch_seconds), Some(180.0));
        assert_eq!(f.classify.profile, Some(Profile::Gitlab));
        assert_eq!(f.classify.require_lock_timeout, Some(true));
        assert_eq!(f.patches.unwrap().len(), 2);
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let e = parse(
            Path::new("downtime.toml"),
            "[budget]\nper-patch-seconds = 5\nper-patch = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("downtime.toml:3"), "{e}");
        assert!(e.contains("per-patch"), "{e}");
        let e = parse(Path::new("d.toml"), "[classify]\nprofile = \"lenient\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.toml:2"), "{e}");
        let e = parse(Path::new("d.toml"), "[budget]\n\nper-patch-seconds = -1\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("d.toml:3: budget.per-patch-seconds = -1 is out of range"),
            "{e}"
        );
        // The same key in another table is found at its own line.
        let e = parse(
            Path::new("d.toml"),
            "[staging]\nmax-run-seconds = 60\n[budget]\ntotal-seconds = 60\n[classify]\nbulk-write-fraction = 7\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("d.toml:6: classify.bulk-write-fraction = 7"),
            "{e}"
        );
        let e = parse(Path::new("d.toml"), "[staging]\ntimeout-seconds = inf\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("d.toml:2: staging.timeout-seconds = inf is not a finite number"),
            "{e}"
        );
        let e = parse(Path::new("d.toml"), "[budget\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.toml:1"), "{e}");
    }
}

/// Command-line values that override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub profile: Option<Profile>,
    pub per_patch_seconds: Option<f64>,
    pub total_seconds: Option<f64>,
    pub cold_window_seconds: Option<f64>,
    pub live_lock_threshold_seconds: Option<f64>,
    pub bulk_write_fraction: Option<f64>,
    pub bulk_write_rows: Option<f64>,
    pub require_lock_timeout: bool,
}

impl Config {
    /// The effective policy: the profile's numbers, then the file's, then
    /// the command line's.
    pub fn policy(&self, o: &Overrides) -> crate::verdict::Policy {
        let f = &self.file;
        let profile = o
            .profile
            .or(f.classify.profile)
            .unwrap_or(Profile::Standard);
        let mut p = crate::verdict::Policy::for_profile(profile);
        let b = &f.budget;
        let budget = &mut p.budget;
        let set = |slot: &mut Option<f64>, v: Option<f64>| {
            if v.is_some() {
                *slot = v;
            }
        };
        if let Some(v) = value(&b.per_patch_seconds) {
            budget.per_patch_seconds = v;
        }
        if let Some(v) = b.applies_to {
            budget.applies_to = v;
        }
        set(
            &mut budget.post_deploy_seconds,
            value(&b.post_deploy_seconds),
        );
        set(&mut budget.warn_at_seconds, value(&b.warn_at_seconds));
        set(
            &mut budget.cold_window_seconds,
            value(&b.cold_window_seconds),
        );
        set(&mut budget.total_seconds, value(&b.total_seconds));
        set(&mut budget.notify_seconds, value(&b.notify_seconds));
        if let Some(v) = o.per_patch_seconds {
            budget.per_patch_seconds = v;
        }
        set(&mut budget.total_seconds, o.total_seconds);
        set(&mut budget.cold_window_seconds, o.cold_window_seconds);

        let c = &mut p.classify;
        let fc = &f.classify;
        c.live_lock_threshold_seconds = o
            .live_lock_threshold_seconds
            .or(value(&fc.live_lock_threshold_seconds))
            .unwrap_or(c.live_lock_threshold_seconds);
        c.bulk_write_fraction = o
            .bulk_write_fraction
            .or(value(&fc.bulk_write_fraction))
            .unwrap_or(c.bulk_write_fraction);
        c.bulk_write_rows = o
            .bulk_write_rows
            .or(value(&fc.bulk_write_rows))
            .unwrap_or(c.bulk_write_rows);
        c.require_lock_timeout =
            o.require_lock_timeout || fc.require_lock_timeout.unwrap_or(c.require_lock_timeout);

        p.config = self.path.as_ref().map(|p| p.display().to_string());
        p
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_the_profile() {
        let file = parse(
            Path::new("downtime.toml"),
            "[classify]\nprofile = \"gitlab\"\n[budget]\npost-deploy-seconds = 900\ntotal-seconds = 100\n",
        )
        .unwrap();
        let c = Config {
            path: Some("downtime.toml".into()),
            file,
        };
        let p = c.policy(&Overrides::default());
        assert_eq!(p.profile, Profile::Gitlab);
        assert_eq!(p.budget.per_patch_seconds, 180.0);
        assert_eq!(p.budget.post_deploy_seconds, Some(900.0));
        assert_eq!(p.budget.total_seconds, Some(100.0));
        let p = c.policy(&Overrides {
            profile: Some(Profile::Strict),
            total_seconds: Some(50.0),
            ..Overrides::default()
        });
        assert_eq!(p.profile, Profile::Strict);
        assert_eq!(p.budget.per_patch_seconds, 15.0);
        assert_eq!(p.budget.total_seconds, Some(50.0));
        assert!(!p.classify.allow_cold);
        assert_eq!(p.config.as_deref(), Some("downtime.toml"));
    }
}
