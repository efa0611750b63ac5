//! `downtime stats export`: production statistics for `estimate`.

use super::StatsAction;
use crate::error::{Error, Result, EXIT_PASS};

pub(super) async fn run(action: StatsAction) -> Result<i32> {
    match action {
        StatsAction::Export {
            url,
            output,
            with_values,
        } => {
            crate::fsutil::check_writable(&output, "stats file")?;
            let source = crate::staging::source::Source::new("--url", &url)?;
            let stats = crate::estimate::prod_stats::export(&source, with_values).await?;
            let text = serde_json::to_string_pretty(&stats)
                .map_err(|e| Error::write("stats file", &output, e))?;
            crate::fsutil::replace(&output, "stats file", (text + "\n").as_bytes())?;
            let values = if stats.with_values {
                "with data values (most common values, histogram bounds)"
            } else {
                "without data values"
            };
            println!(
                "wrote {} tables of {} to {}, {values}",
                stats.tables.len(),
                stats.source,
                output.display()
            );
            Ok(EXIT_PASS)
        }
    }
}
