//! The names of what the server backend makes on a server it does not own:
//! every database of a run is `downtime_<run>_…`, `<run>` eight hex digits
//! no other live run holds; the cached baselines are `downtime_cache_<key>`.
//! A live run holds the advisory lock ([`LOCK_CLASS`], its run number) on
//! a connection of its own for as long as it runs, so `downtime clean` can
//! tell a dead run's databases from a live one's. A name alone does not
//! make a database downtime's: each one downtime makes carries a comment
//! ([`RUN_MARK`], [`cache_mark`]), and only databases with both the name
//! and the comment are ever dropped by `clean` and `cache clear`.

use crate::error::Result;

/// What every database downtime makes on a server starts with.
pub const PREFIX: &str = "downtime_";
/// What the cached baselines' names start with.
pub const CACHE_PREFIX: &str = "downtime_cache_";
/// The first key of the advisory lock a live run holds (`"down"`); the
/// second is its run number.
pub const LOCK_CLASS: i32 = 0x646f_776e;
/// The names of every run's databases, as a regular expression.
pub const ANY_RUN: &str = "^downtime_[0-9a-f]{8}_";
/// The names of the cached baselines, as a regular expression: the
/// prefix and a 24-hex-digit cache key.
pub const ANY_CACHE: &str = "^downtime_cache_[0-9a-f]{24}$";
/// The comment on every database a run makes (its template, copies and
/// scaled copies): `downtime clean --url` drops a dead run's databases only
/// when they carry it.
pub const RUN_MARK: &str = "downtime staging database: made by a downtime run, dropped when the \
                            run ends (or by downtime clean --url when the run was killed)";

/// A run's number on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(pub u32);

impl RunId {
    /// A random run number.
    pub fn random() -> Result<RunId> {
        let hex = super::super::random_hex(4)?;
        let n = u32::from_str_radix(&hex, 16).unwrap_or_default();
        Ok(RunId(n))
    }

    /// What the names of this run's databases start with.
    pub fn prefix(self) -> String {
        format!("{PREFIX}{:08x}_", self.0)
    }

    /// The second key of the run's advisory lock (its number's bits).
    pub fn lock_key(self) -> i32 {
        self.0 as i32
    }

    /// The run a database of downtime's belongs to, from its name.
    pub fn of_database(name: &str) -> Option<RunId> {
        let rest = name.strip_prefix(PREFIX)?;
        let (hex, tail) = (rest.get(..8)?, rest.get(8..)?);
        if !tail.starts_with('_') || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(RunId)
    }

    /// The names of databases on the server that are not this run's to
    /// watch: other runs', and the cached baselines (other runs store
    /// and evict them meanwhile).
    pub fn foreign(self) -> Vec<String> {
        vec![
            format!("^{PREFIX}(?!{:08x}_)[0-9a-f]{{8}}_", self.0),
            ANY_CACHE.to_string(),
        ]
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The cached baseline with this cache key.
pub fn cache_db(key: &str) -> String {
    format!("{CACHE_PREFIX}{key}")
}

/// The comment on the cached baseline with this key: `downtime cache
/// clear --url` drops a `downtime_cache_…` database only when it carries
/// the comment made for its own key.
pub fn cache_mark(key: &str) -> String {
    format!("downtime baseline cache {key}: made by downtime, dropped by downtime cache clear")
}

/// The key of a cached baseline's name, when it is one by its name.
pub fn cache_key(name: &str) -> Option<&str> {
    let key = name.strip_prefix(CACHE_PREFIX)?;
    (key.len() == 24 && key.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_databases_are_named_after_it_and_found_by_name() {
        let run = RunId(0x00ab_cdef);
        assert_eq!(run.prefix(), "downtime_00abcdef_");
        let copy = format!("{}copy_3", run.prefix());
        assert_eq!(RunId::of_database(&copy), Some(run));
        for other in [
            "downtime_baseline",
            "downtime_copy_123_1",
            "downtime_cache_0123456789abcdef01234567",
            "downtime_00ABCDEF_copy_1",
            "downtime_00abcdef",
            "app",
        ] {
            assert_eq!(RunId::of_database(other), None, "{other}");
        }
        assert_eq!(run.lock_key(), 0x00ab_cdef);
        assert_eq!(RunId(u32::MAX).lock_key(), -1);
        assert_eq!(cache_db("k1"), "downtime_cache_k1");
        let key = "0123456789abcdef01234567";
        assert_eq!(cache_key(&cache_db(key)), Some(key));
        for other in [
            "downtime_cache_mine",
            "downtime_cache_0123456789ABCDEF01234567",
            "app",
        ] {
            assert_eq!(cache_key(other), None, "{other}");
        }
        assert!(cache_mark(key).contains(key));
    }
}
