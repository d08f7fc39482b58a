//! The reports of `ottr status` (pipelines with their lag and throughput, copies under way
//! with a progress bar, nodes, open alerts, as tables; `--watch` redraws them) and `ottr check` (the prechecks of one data source).

use crate::config::validate_data_source;
use crate::error::{Error, Result};
use crate::meta::{self, MetaDb, TextTable};
use crate::pipeline::connect;
use crate::pipeline::select::{Check, Outcome, run_prechecks};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

/// Pipelines (with lag and throughput), copies, nodes and open alerts, printed as tables.
pub async fn status_report(meta: &MetaDb) -> Result<String> {
    meta::check_schema(meta).await?;
    let pipelines = meta::pipeline_status(meta).await?;
    let copies = meta::copy_status(meta).await?;
    let verifications = meta::verify_status(meta).await?;
    let nodes = meta::node_status(meta).await?;
    let alerts = meta::open_alerts(meta).await?;
    Ok(format!(
        "Pipelines\n{}\n\nCopies\n{}\n\nVerifications (the last of each pipeline)\n{}\n\nNodes\n{}\n\nOpen alerts\n{}\n",
        render(&pipelines, "no pipelines: CALL create_channel(...)"),
        render(&copies, "none under way"),
        render(&verifications, "none yet: CALL verify(channel, NULL, NULL)"),
        render(&nodes, "no nodes: start one with `ottr node`"),
        render(&alerts, "none")
    ))
}

/// Redraws the status report every `every` until `stop` is cancelled. A failed read is shown
/// in place of the report, and the next refresh tries again.
pub async fn watch_status(
    meta: &MetaDb,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
    out: &mut (impl std::io::Write + Send),
) -> std::io::Result<()> {
    loop {
        let report = match status_report(meta).await {
            Ok(report) => report,
            Err(error) => format!("cannot read the status: {}\n", crate::error::chain(&error)),
        };
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
        // Clear the screen, cursor home.
        write!(
            out,
            "\x1b[2J\x1b[H{} every {} s, {now} UTC (Ctrl-C to stop)\n\n{report}",
            meta.display_url(),
            every.as_secs_f64()
        )?;
        out.flush()?;
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn render(table: &TextTable, empty: &str) -> String {
    if table.rows.is_empty() {
        return empty.to_owned();
    }
    let mut rendered = Table::new();
    rendered.load_preset(UTF8_FULL_CONDENSED);
    rendered.set_header(&table.header);
    for row in &table.rows {
        rendered.add_row(row);
    }
    rendered.to_string()
}

/// Runs the prechecks of data source `name`; returns the report and whether every check passed.
pub async fn check_report(meta: &MetaDb, name: &str) -> Result<(String, bool)> {
    meta::check_schema(meta).await?;
    let row = meta::read_data_source(meta, name)
        .await?
        .ok_or_else(|| Error::Precheck(format!("unknown data source '{name}'")))?;
    let source = validate_data_source(&row)?;
    let mut report = format!(
        "data source '{}' ({:?} at {}:{} as {})\n",
        source.name, source.kind, source.host, source.port, source.user
    );
    let mut conn = match connect(&source).await {
        Ok(conn) => conn,
        Err(error) => {
            report.push_str(&format!("✗ reachable: {}\n", crate::error::chain(&error)));
            return Ok((report, false));
        }
    };
    report.push_str("✓ reachable\n");
    let checks = run_prechecks(&mut conn, source.kind).await?;
    let _ = conn.disconnect().await;
    let passed = checks
        .iter()
        .all(|check| !matches!(check.outcome, Outcome::Failed { .. }));
    for Check { name, outcome } in checks {
        let line = match outcome {
            Outcome::Passed(detail) => format!("✓ {name}: {detail}"),
            Outcome::Warning(detail) => format!("! {name}: {detail}"),
            Outcome::Failed { found, fix } => format!("✗ {name}: {found}\n    fix: {fix}"),
        };
        report.push_str(&line);
        report.push('\n');
    }
    Ok((report, passed))
}
