//! The audit trail of configuration changes: triggers on every configuration table (and on
//! the secrets schema's password tables) append a row to `config_audit` for each insert,
//! update and delete, whether it came from a procedure or a plain statement. A row records
//! `USER()` (the session's login; a trigger runs as its definer, so `CURRENT_USER()` would
//! name the migrating administrator), the table, the row's key, the changed columns, and the
//! old and new values as JSON with passwords masked (a literal shows as `********`, a
//! `env:`/`file:` reference as itself).
//!
//! The triggers are generated from the tables' columns as `information_schema` lists them,
//! dropped and re-created by every `ottr migrate`, so that they follow new columns. Every
//! name in them is quoted by doubling.

use crate::sql::{quote, string_literal};

/// Which schema a table lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The metadata schema.
    Meta,
    /// `<schema>_secret`.
    Secret,
}

/// An audited table.
#[derive(Debug, Clone, Copy)]
pub struct Audited {
    pub schema: Schema,
    pub table: &'static str,
    /// The columns that name a row.
    pub key: &'static [&'static str],
    /// Only these columns are audited (a table that also holds runtime columns); empty: all.
    pub only: &'static [&'static str],
    /// Columns whose values are masked.
    pub masked: &'static [&'static str],
}

/// Every table an operator configures.
pub const AUDITED: &[Audited] = &[
    Audited::meta("data_source", &["id"]),
    Audited::meta("channel", &["id"]),
    Audited::meta("pipeline", &["id"]),
    Audited::meta("pipeline_node", &["pipeline_id", "node"]),
    Audited::meta("table_pair", &["id"]),
    Audited::meta("column_pair", &["id"]),
    Audited::meta("setting", &["name"]),
    Audited::meta("smtp", &["id"]),
    Audited::meta("alarm_rule", &["id"]),
    Audited::meta("alarm_window", &["id"]),
    // nodes heartbeat into their rows; only the operator's drain flag is configuration
    Audited {
        only: &["drain"],
        ..Audited::meta("node", &["name"])
    },
    Audited {
        schema: Schema::Secret,
        table: "data_source_password",
        key: &["data_source_id"],
        only: &[],
        masked: &["password"],
    },
    Audited {
        schema: Schema::Secret,
        table: "smtp_password",
        key: &["id"],
        only: &[],
        masked: &["password"],
    },
];

impl Audited {
    const fn meta(table: &'static str, key: &'static [&'static str]) -> Self {
        Audited {
            schema: Schema::Meta,
            table,
            key,
            only: &[],
            masked: &[],
        }
    }

    /// The columns recorded, of all the table's `columns` (timestamps left out: the audit
    /// row has its own time).
    fn recorded<'a>(&self, columns: &'a [String]) -> Vec<&'a str> {
        columns
            .iter()
            .map(String::as_str)
            .filter(|column| !matches!(*column, "created_at" | "updated_at"))
            .filter(|column| {
                self.only.is_empty() || self.only.contains(column) || self.key.contains(column)
            })
            .collect()
    }

    /// The trigger names of this table.
    pub fn trigger_names(&self) -> [String; 3] {
        ["insert", "update", "delete"].map(|action| format!("audit_{}_{action}", self.table))
    }

    /// `CREATE TRIGGER` statements for this table, whose `columns` (in order) information_schema
    /// gave; `meta` and `secret` are the schemas' names, `audit` the qualified audit table.
    pub fn triggers(&self, columns: &[String], meta: &str, secret: &str) -> Vec<String> {
        let schema = match self.schema {
            Schema::Meta => meta,
            Schema::Secret => secret,
        };
        let table = format!("{}.{}", quote(schema), quote(self.table));
        let audit = format!("{}.{}", quote(meta), quote("config_audit"));
        let recorded = self.recorded(columns);
        let value = |image: &str, column: &str| {
            let value = format!("{image}.{}", quote(column));
            if self.masked.contains(&column) {
                format!("{}.masked_password({value})", quote(meta))
            } else {
                value
            }
        };
        let json = |image: &str| {
            let pairs: Vec<String> = recorded
                .iter()
                .map(|column| format!("{}, {}", string_literal(column), value(image, column)))
                .collect();
            format!("JSON_OBJECT({})", pairs.join(", "))
        };
        let key = |image: &str| {
            let parts: Vec<String> = self
                .key
                .iter()
                .map(|column| format!("{image}.{}", quote(column)))
                .collect();
            format!("CONCAT_WS(',', {})", parts.join(", "))
        };
        let audited_changes: Vec<&str> = recorded
            .iter()
            .copied()
            .filter(|column| self.only.is_empty() || self.only.contains(column))
            .collect();
        let changed: Vec<String> = audited_changes
            .iter()
            .map(|column| {
                format!(
                    "IF(OLD.{0} <=> NEW.{0}, NULL, {1})",
                    quote(column),
                    string_literal(column)
                )
            })
            .collect();
        let unchanged: Vec<String> = audited_changes
            .iter()
            .map(|column| format!("OLD.{0} <=> NEW.{0}", quote(column)))
            .collect();
        let columns = "(login, table_name, action, row_key, changed, old_values, new_values)";
        let name = |action: &str| {
            format!(
                "{}.{}",
                quote(schema),
                quote(&format!("audit_{}_{action}", self.table))
            )
        };
        let table_name = string_literal(self.table);
        vec![
            format!(
                "CREATE TRIGGER {} AFTER INSERT ON {table} FOR EACH ROW INSERT INTO {audit} {columns} \
                 VALUES (USER(), {table_name}, 'insert', {}, NULL, NULL, {})",
                name("insert"),
                key("NEW"),
                json("NEW")
            ),
            format!(
                "CREATE TRIGGER {} AFTER UPDATE ON {table} FOR EACH ROW INSERT INTO {audit} {columns} \
                 SELECT USER(), {table_name}, 'update', {}, CONCAT_WS(',', {}), {}, {} FROM DUAL \
                 WHERE NOT ({})",
                name("update"),
                key("NEW"),
                changed.join(", "),
                json("OLD"),
                json("NEW"),
                unchanged.join(" AND ")
            ),
            format!(
                "CREATE TRIGGER {} AFTER DELETE ON {table} FOR EACH ROW INSERT INTO {audit} {columns} \
                 VALUES (USER(), {table_name}, 'delete', {}, NULL, {}, NULL)",
                name("delete"),
                key("OLD"),
                json("OLD")
            ),
        ]
    }
}

/// The triggers that keep `config_audit` append-only: whoever may write the metadata schema
/// cannot change or erase what the trail recorded (an administrator drops them to prune).
pub fn append_only_triggers(meta: &str) -> Vec<(String, String)> {
    let audit = format!("{}.{}", quote(meta), quote("config_audit"));
    ["update", "delete"]
        .map(|action| {
            let name = format!("config_audit_no_{action}");
            let create = format!(
                "CREATE TRIGGER {}.{} BEFORE {} ON {audit} FOR EACH ROW \
                 SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'the configuration audit trail is append-only'",
                quote(meta),
                quote(&name),
                action.to_ascii_uppercase()
            );
            (name, create)
        })
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn triggers_record_the_login_the_key_and_masked_values() {
        let secret = AUDITED
            .iter()
            .find(|audited| audited.table == "data_source_password")
            .unwrap();
        let triggers = secret.triggers(
            &columns(&["data_source_id", "password", "updated_at"]),
            "ottr",
            "ottr_secret",
        );
        assert_eq!(triggers.len(), 3);
        assert!(triggers[0].starts_with(
            "CREATE TRIGGER `ottr_secret`.`audit_data_source_password_insert` AFTER INSERT ON `ottr_secret`.`data_source_password`"
        ));
        assert!(triggers[0].contains("INSERT INTO `ottr`.`config_audit`"));
        assert!(triggers[0].contains("USER()"));
        assert!(!triggers[0].contains("CURRENT_USER"));
        assert!(triggers[1].contains("`ottr`.masked_password(NEW.`password`)"));
        assert!(!triggers[1].contains("updated_at"));
        // only the drain flag of a node row is configuration
        let node = AUDITED
            .iter()
            .find(|audited| audited.table == "node")
            .unwrap();
        let triggers = node.triggers(
            &columns(&["name", "host", "pid", "last_heartbeat", "drain"]),
            "o`x",
            "o`x_secret",
        );
        assert!(
            triggers[1].contains("WHERE NOT (OLD.`drain` <=> NEW.`drain`)"),
            "{}",
            triggers[1]
        );
        assert!(!triggers[1].contains("last_heartbeat"));
        assert!(triggers[1].contains("`o``x`.`config_audit`"));
    }
}
