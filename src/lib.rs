//! downtime: apply PostgreSQL patches to throwaway staging copies, measure
//! them, classify each as live or cold, and gate CI on the downtime budget.
//!
//! The pipeline, one module per stage, each depending only on the ones
//! before it:
//! [`patch`] (discover, order, split) → [`staging`] (the server and its
//! copies) → [`measure`] (apply, time, trace locks and rewrites) →
//! [`outcome`] (what a run produced, read-only downstream), made by [`run`]
//! (plan, schedule, merge) → [`estimate`] (production size) and [`verdict`]
//! (classify, budget, policy, sign-off) → [`report`] (JSON, rendered into
//! every other format) → [`check`] (the stages in order) → [`cli`].
//!
//! Beneath them all, the ground floor: [`pg`] (PostgreSQL's vocabulary and
//! catalogue queries), [`rule_id`], [`error`], [`cancel`], [`time`], [`ui`],
//! [`limits`] (the range of every number a user gives), [`fsutil`]
//! (reading user files safely, checking outputs before a run) and
//! [`escape`] (foreign text made safe for each output).

pub mod cancel;
pub mod error;
pub mod escape;
pub mod fsutil;
pub mod limits;
pub mod pg;
pub mod rule_id;
pub mod time;
pub mod ui;

pub mod check;
pub mod cli;
pub mod config;
pub mod estimate;
pub mod ledger;
pub mod measure;
pub mod outcome;
pub mod patch;
pub mod report;
pub mod run;
pub mod staging;
pub mod verdict;

pub use error::{Error, Result};
