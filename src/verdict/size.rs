//! The size a table is judged at: production's, when its statistics are
//! given; staging's, when staging holds its rows; otherwise unknown, which
//! never passes for small. Work that grows with a table is judged at the
//! size production would run it at, not at the size of the copy.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::estimate::{ProdStats, WorkKind};
use crate::measure::calibrate::Costs;
use crate::pg::Relation;

/// Where a table's judged size comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// Measured on the staging copy.
    Staging,
    /// Production's statistics (`--prod-stats`).
    Production,
    /// Empty on staging, and production's size not given: work over it is
    /// judged as if it had rows.
    Unknown,
    /// Declared small in production (`[tables] small`, `-- downtime: small`).
    Declared,
    /// Created by an earlier patch of this run: production has it empty too,
    /// so what staging measured stands.
    New,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Staging => "staging",
            Basis::Production => "production statistics",
            Basis::Unknown => "unknown",
            Basis::Declared => "declared small",
            Basis::New => "created in this run",
        }
    }
}

/// A table's size as the verdict judges it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Size {
    pub relation: String,
    pub basis: Basis,
    /// Rows on the staging copy (planner estimate).
    pub staging_rows: f64,
    /// Rows production holds, when its statistics are given and know them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_rows: Option<f64>,
    /// Main-fork bytes production holds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_bytes: Option<i64>,
    /// When production's statistics were exported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_exported_at: Option<String>,
    /// The statement's time at production's size, when it can be told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_seconds: Option<f64>,
}

impl Size {
    /// Work over the table grows with rows it holds (or may hold) where the
    /// patch will run.
    pub fn has_rows(&self) -> bool {
        match self.basis {
            Basis::Unknown => true,
            Basis::Declared => false,
            Basis::Production => {
                self.production_rows.unwrap_or(0.0) > 0.0 || self.production_bytes.unwrap_or(0) > 0
            }
            Basis::Staging | Basis::New => self.staging_rows > 0.0,
        }
    }

    /// The rows the work is judged at (0 when unknown).
    pub fn rows(&self) -> f64 {
        match self.basis {
            Basis::Production => self.production_rows.unwrap_or(0.0),
            Basis::Staging | Basis::New => self.staging_rows,
            Basis::Unknown | Basis::Declared => 0.0,
        }
    }

    /// Seconds that took `seconds` on staging's rows, at production's rows:
    /// work that is a pass over the rows grows linearly with them. None
    /// unless production's statistics give the size and staging had rows
    /// to measure the cost per row on.
    pub fn at_production(&self, seconds: f64) -> Option<f64> {
        if self.basis != Basis::Production || self.staging_rows < 1.0 {
            return None;
        }
        Some(seconds * self.production_rows? / self.staging_rows)
    }

    /// "20000 rows", "0 rows here, 900000 in production (stats of
    /// 2026-12-01)", "empty here, size in production unknown".
    pub fn describe(&self) -> String {
        let here = rows_text(self.staging_rows);
        match self.basis {
            Basis::Staging | Basis::New | Basis::Declared => format!("{here} rows"),
            Basis::Production => {
                let prod = match self.production_rows {
                    Some(r) => format!("{} rows", rows_text(r)),
                    None => "rows not counted".into(),
                };
                let when = self
                    .stats_exported_at
                    .as_deref()
                    .map(|d| d.get(..10).unwrap_or(d))
                    .unwrap_or("?");
                format!("{here} rows here, {prod} in production (stats of {when})")
            }
            Basis::Unknown => "empty here, its size in production unknown".into(),
        }
    }
}

/// A row count as reports print it: whole, with thin groups of thousands.
pub fn rows_text(rows: f64) -> String {
    let n = rows.max(0.0).round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The message appended to a reason judged on a table of unknown size.
pub const UNKNOWN_ADVICE: &str = "cold wherever it has rows: give --prod-stats from production, or list the table under [tables] small in downtime.toml if it stays small there";

/// What the verdict knows of production's tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    /// Production's statistics (`--prod-stats`).
    #[serde(skip)]
    pub production: Option<Arc<ProdStats>>,
    /// Tables declared small in production (`[tables] small`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub small: Vec<String>,
    /// The relations the baseline had (`schema.name`); the others were
    /// created by a patch of this run. None: every relation a patch found
    /// is taken as the baseline's.
    #[serde(skip)]
    pub baseline: Option<Arc<BTreeSet<String>>>,
    /// What work costs on this server, for tables staging holds no rows of.
    #[serde(skip)]
    pub costs: Option<Arc<Costs>>,
}

/// A statement's time at production's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predicted {
    pub seconds: f64,
    /// What it is from.
    pub from: PredictedFrom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictedFrom {
    /// The cost per row staging measured, scaled to production's rows.
    StagingRows,
    /// This server's measured cost of the kind of work, at production's size.
    ServerCosts,
}

impl Sizes {
    /// Nothing the report records: no table declared small.
    pub fn is_empty(&self) -> bool {
        self.small.is_empty()
    }

    /// The time work of `kind` that took `seconds` here over the tables of
    /// `sizes` (a partitioned table's leaves) takes in production.
    pub fn predict_many(&self, sizes: &[&Size], kind: WorkKind, seconds: f64) -> Option<Predicted> {
        match sizes {
            [one] => self.predict(one, kind, seconds),
            _ if sizes.iter().all(|s| s.basis == Basis::Production) => {
                let staging: f64 = sizes.iter().map(|s| s.staging_rows).sum();
                let production: f64 = sizes.iter().map(|s| s.rows()).sum();
                if sizes.iter().all(|s| s.staging_rows >= 1.0) {
                    return Some(Predicted {
                        seconds: seconds * production / staging,
                        from: PredictedFrom::StagingRows,
                    });
                }
                let mut total = seconds;
                for s in sizes {
                    let empty = Size {
                        staging_rows: 0.0,
                        ..(*s).clone()
                    };
                    total += self.predict(&empty, kind, 0.0)?.seconds;
                }
                Some(Predicted {
                    seconds: total,
                    from: PredictedFrom::ServerCosts,
                })
            }
            _ => None,
        }
    }

    /// The time work of `kind` that took `seconds` here takes over a table
    /// of `size` in production: scaled from staging's rows where it had
    /// some, else from this server's costs and production's size.
    pub fn predict(&self, size: &Size, kind: WorkKind, seconds: f64) -> Option<Predicted> {
        if let Some(s) = size.at_production(seconds) {
            return Some(Predicted {
                seconds: s,
                from: PredictedFrom::StagingRows,
            });
        }
        if size.basis != Basis::Production {
            return None;
        }
        let costs = self.costs.as_ref()?;
        let bytes = size.production_bytes? as f64;
        let rows = size.production_rows.unwrap_or(0.0);
        let work = crate::estimate::work::at_costs(costs, kind, rows, bytes);
        Some(Predicted {
            seconds: seconds + work,
            from: PredictedFrom::ServerCosts,
        })
    }

    /// The size `rel` is judged at; `small` adds the patch's own
    /// declarations.
    pub fn of(&self, rel: &Relation, small: &[String]) -> Size {
        let mut size = Size {
            relation: rel.name.clone(),
            basis: Basis::Staging,
            staging_rows: rel.rows.max(0.0),
            production_rows: None,
            production_bytes: None,
            stats_exported_at: None,
            production_seconds: None,
        };
        let staging_has_rows = rel.populated();
        if named(&self.small, &rel.name) || named(small, &rel.name) {
            size.basis = Basis::Declared;
        } else if self
            .baseline
            .as_ref()
            .is_some_and(|b| !b.contains(&rel.name))
        {
            size.basis = Basis::New;
        } else if let Some(t) = self
            .production
            .as_ref()
            .and_then(|p| p.table(&rel.name).map(|t| (p, t)))
        {
            let (p, t) = t;
            size.basis = Basis::Production;
            size.production_rows = t.rows;
            size.production_bytes = Some(t.table_bytes);
            size.stats_exported_at = Some(p.exported_at.clone());
        } else if !staging_has_rows {
            size.basis = Basis::Unknown;
        }
        if size.basis == Basis::Staging && rel.rows <= 0.0 && rel.bytes > 0 {
            // Pages without a row estimate: rows are there.
            size.staging_rows = size.staging_rows.max(1.0);
        }
        size
    }
}

/// Whether `name` (`schema.table`) is in `list` (as `schema.table`, or a
/// bare name that is the table's).
fn named(list: &[String], name: &str) -> bool {
    let bare = name.rsplit('.').next().unwrap_or(name);
    list.iter()
        .any(|n| n == name || (!n.contains('.') && n == bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(name: &str, rows: f64, bytes: i64) -> Relation {
        Relation {
            oid: 1,
            name: name.into(),
            kind: 'r',
            filenode: 1,
            rows,
            bytes,
            table: None,
            valid: true,
        }
    }

    #[test]
    fn an_empty_table_without_statistics_is_of_unknown_size_and_has_rows() {
        let s = Sizes::default().of(&rel("public.t", 0.0, 0), &[]);
        assert_eq!(s.basis, Basis::Unknown);
        assert!(s.has_rows());
        assert!(s.describe().contains("unknown"));
    }

    #[test]
    fn declared_small_and_new_tables_are_judged_as_measured() {
        let sizes = Sizes {
            small: vec!["country".into()],
            baseline: Some(Arc::new(["public.t".to_string()].into_iter().collect())),
            ..Sizes::default()
        };
        let s = sizes.of(&rel("public.country", 0.0, 0), &[]);
        assert_eq!(s.basis, Basis::Declared);
        assert!(!s.has_rows());
        let s = sizes.of(&rel("public.made_here", 0.0, 0), &[]);
        assert_eq!(s.basis, Basis::New);
        assert!(!s.has_rows());
        let s = sizes.of(&rel("public.t", 0.0, 0), &["public.t".into()]);
        assert_eq!(s.basis, Basis::Declared);
    }

    #[test]
    fn rows_print_in_groups_of_thousands() {
        assert_eq!(rows_text(900000.0), "900 000");
        assert_eq!(rows_text(12.0), "12");
        assert_eq!(rows_text(1234567.4), "1 234 567");
    }
}
