//! The tool's books in a run: once the baseline is in the template, which
//! layout its bookkeeping table shows (when the names fit several and none
//! was chosen), what the table records, and so which patches run.

use crate::error::Result;
use crate::ledger::{self, Plan};
use crate::patch::{Layout, Migration, Patch};
use crate::staging::{self, Backend};
use crate::ui;

/// The layout of the patches, and what else their names fit.
#[derive(Debug, Clone, Default)]
pub(super) struct Layouts {
    pub layout: Option<Layout>,
    /// Chosen with --layout or in downtime.toml.
    pub forced: bool,
    pub alternatives: Vec<(Layout, Vec<Migration>)>,
}

/// Read the template's books and plan the run; may switch the patches to
/// the layout whose table the baseline holds.
pub(super) async fn settle(
    backend: &dyn Backend,
    patches: &mut [Patch],
    layouts: &Layouts,
    all: bool,
    notes: &mut Vec<String>,
) -> Result<Option<Plan>> {
    let Some(mut layout) = layouts.layout else {
        return Ok(None);
    };
    let db = staging::connect(backend, backend.template_db()).await?;
    let present = ledger::tables(&db).await?;
    if !layouts.forced && !present.contains(&layout) {
        if let Some((alt, tools)) = layouts
            .alternatives
            .iter()
            .find(|(a, _)| present.contains(a))
        {
            for (p, m) in patches.iter_mut().zip(tools) {
                p.relayout(*alt, m.clone());
            }
            let note = format!(
                "layout {}: the baseline holds {}, {}'s bookkeeping table (the names fit {} too; --layout chooses)",
                alt.name(),
                alt.table().unwrap_or_default(),
                alt.name(),
                layout.name()
            );
            ui::note(&note);
            notes.push(note);
            layout = *alt;
        }
    }
    if layout == Layout::Flyway && !present.contains(&layout) && ledger::has_tables(&db).await? {
        let note = "the baseline has tables but no flyway_schema_history: Flyway itself would refuse \
                    to migrate it (\"Found non-empty schema(s) … but no schema history table\") unless \
                    baselineOnMigrate is set; every migration is applied"
            .to_string();
        ui::note(&note);
        notes.push(note);
    }
    let state = ledger::read(&db, layout).await;
    drop(db);
    let plan = ledger::plan(layout, &state?, patches, all)?;
    for n in &plan.notes {
        ui::note(n);
    }
    notes.extend(plan.notes.iter().cloned());
    let skipped = plan
        .steps
        .iter()
        .filter(|s| matches!(s, ledger::Step::Skip(_)))
        .count();
    if skipped > 0 {
        ui::note(&format!(
            "{skipped} of {} migrations are recorded in the baseline's {} and not applied (--all applies them)",
            patches.len(),
            layout.table().unwrap_or_default()
        ));
    }
    Ok(Some(plan))
}
