//! Resolving "the current end" of a source into a position.

use crate::config::DataSourceKind;
use crate::error::{Error, Result};
use crate::model::{BinlogFilePos, GtidState, Position};
use crate::row::take;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

const SHOW_MASTER_STATUS: &str = "SHOW MASTER STATUS";
const SHOW_BINARY_LOG_STATUS: &str = "SHOW BINARY LOG STATUS";
const MARIADB_GTID_POS: &str = "SELECT @@GLOBAL.gtid_binlog_pos";

/// The source's current end: its binlog file and offset, and its GTID state.
pub async fn resolve_end(conn: &mut Conn, kind: DataSourceKind) -> Result<Position> {
    let context = "cannot read the source's binlog position";
    let status: Option<Row> = match kind {
        // MySQL 8.4 renamed the statement; 8.0 knows only the old name.
        DataSourceKind::MySql => match conn.query_first(SHOW_BINARY_LOG_STATUS).await {
            Ok(row) => row,
            Err(_) => conn
                .query_first(SHOW_MASTER_STATUS)
                .await
                .map_err(|error| Error::database(context, error))?,
        },
        DataSourceKind::MariaDb => conn
            .query_first(SHOW_MASTER_STATUS)
            .await
            .map_err(|error| Error::database(context, error))?,
    };
    let mut status = status.ok_or_else(|| {
        Error::Precheck("the source reports no binlog position: is log_bin on?".into())
    })?;
    let file: String = take(&mut status, "File", context)?;
    let offset: u64 = take(&mut status, "Position", context)?;
    let gtid_text: Option<String> = match kind {
        DataSourceKind::MariaDb => conn
            .query_first(MARIADB_GTID_POS)
            .await
            .map_err(|error| Error::database(context, error))?,
        DataSourceKind::MySql => status
            .take_opt::<String, _>("Executed_Gtid_Set")
            .and_then(Result::ok),
    };
    let gtid = match gtid_text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(text.parse::<GtidState>().map_err(|error| Error::BadRow {
            context: context.to_owned(),
            problem: error.to_string(),
        })?),
    };
    Ok(Position {
        file: Some(BinlogFilePos { file, offset }),
        gtid,
        trx_rows_done: 0,
    })
}
