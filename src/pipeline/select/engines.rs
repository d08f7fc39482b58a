//! Which source tables are transactional (their engine supports transactions), for a
//! ROLLBACK that the binlog carries with rows: the rows of non-transactional tables persisted
//! on the source and are kept, the others are dropped.

use crate::config::DataSource;
use crate::error::{Error, Result};
use crate::model::TableId;
use crate::pipeline::connect;
use mysql_async::prelude::Queryable;
use std::collections::HashMap;

/// Engines of tables, and whether each supports transactions; the WHERE clause lists one
/// `(TABLE_SCHEMA = ? AND TABLE_NAME = ?)` per table.
const ENGINES: &str = "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, COALESCE(e.TRANSACTIONS = 'YES', 1) \
     FROM information_schema.TABLES t LEFT JOIN information_schema.ENGINES e ON e.ENGINE = t.ENGINE \
     WHERE ";

/// Whether each of `tables` is transactional on `source`; a table the source no longer has
/// counts as transactional (its rows are dropped, as before ottr knew engines).
pub async fn transactional(
    source: &DataSource,
    tables: &[TableId],
) -> Result<HashMap<TableId, bool>> {
    let mut found: HashMap<TableId, bool> =
        tables.iter().map(|table| (table.clone(), true)).collect();
    if tables.is_empty() {
        return Ok(found);
    }
    let mut conn = connect(source).await?;
    let condition = vec!["(t.TABLE_SCHEMA = ? AND t.TABLE_NAME = ?)"; tables.len()].join(" OR ");
    let params: Vec<String> = tables
        .iter()
        .flat_map(|table| [table.schema.clone(), table.table.clone()])
        .collect();
    let rows: Vec<(String, String, bool)> = conn
        .exec(format!("{ENGINES}{condition}"), params)
        .await
        .map_err(|error| {
            Error::database(
                format!(
                    "cannot read the table engines of data source '{}'",
                    source.name
                ),
                error,
            )
        })?;
    let _ = conn.disconnect().await;
    for (schema, table, transactional) in rows {
        found.insert(TableId { schema, table }, transactional);
    }
    Ok(found)
}
