//! Reading typed values out of result rows (metadata and data servers alike), with errors
//! that say which column was wrong.

use crate::error::{Error, Result};
use mysql_async::Row;
use mysql_async::prelude::FromValue;

/// Takes column `name` of `row` as a `T`; `context` names the query in the error.
pub(crate) fn take<T: FromValue>(row: &mut Row, name: &str, context: &str) -> Result<T> {
    match row.take_opt::<T, _>(name) {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(Error::BadRow {
            context: context.to_owned(),
            problem: format!("column {name} holds {:?}, not the expected type", error.0),
        }),
        None => Err(Error::BadRow {
            context: context.to_owned(),
            problem: format!("column {name} is missing"),
        }),
    }
}
