//! downtime: apply PostgreSQL patches to throwaway staging copies, measure
//! them, classify each as live or cold, and gate CI on the downtime budget.
//!
//! The pipeline, one module per stage:
//! [`patch`] (discover, order, split) → [`staging`] (the server and its
//! copies) → [`measure`] (apply, time, trace locks and rewrites) →
//! [`verdict`] (classify, budget) → [`report`] (JSON, text).

pub mod cancel;
pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod estimate;
pub mod measure;
pub mod patch;
pub mod report;
pub mod staging;
pub mod ui;
pub mod verdict;

pub use error::{Error, Result};
