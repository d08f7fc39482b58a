//! Unit tests of `validate`.

use super::*;
use crate::config::{ChannelRow, DataSourceRow};

fn snapshot() -> ConfigSnapshot {
    let source = |id: u32, name: &str| DataSourceRow {
        id: DataSourceId(id),
        name: name.into(),
        kind: "mariadb".into(),
        host: format!("10.0.0.{id}"),
        port: 3306,
        user: "canal".into(),
        password: Secret::from_stored(Some("env:SH_PASSWORD")),
        tls_mode: "preferred".into(),
        tls_ca_file: None,
        tls_cert_file: None,
        tls_key_file: None,
    };
    ConfigSnapshot {
        data_sources: vec![source(1, "sh"), source(2, "us")],
        channels: vec![ChannelRow {
            id: ChannelId(1),
            name: "orders".into(),
            mode: "one_way".into(),
            desired: "running".into(),
            primary_source_id: None,
            conflict_policy: "primary_wins".into(),
            conflict_column: None,
        }],
        pipelines: vec![PipelineRow {
            id: PipelineId(3),
            channel_id: ChannelId(1),
            name: "orders".into(),
            source_id: DataSourceId(1),
            target_id: DataSourceId(2),
            batch_rows: 5000,
            batch_bytes: 16 << 20,
            batch_timeout_ms: 1000,
            load_parallelism: 8,
            ddl_sync: 1,
            skip_ddl_errors: 0,
            transactional: 0,
            skip_load_errors: 0,
            heartbeat_ms: 1000,
            restart_seq: 0,
            initial_copy: 0,
            copy_chunk_ms: 500,
            copy_max_lag_ms: 10_000,
            verify_repair: 0,
            verify_schedule: None,
            server_id: None,
            start_kind: "end".into(),
            start_file: None,
            start_offset: None,
            start_gtid: None,
            start_time: None,
            reverse: 0,
        }],
        table_pairs: vec![TablePairRow {
            id: TablePairId(7),
            channel_id: ChannelId(1),
            source_schema: "shop".into(),
            source_table: "order_.*".into(),
            target_schema: None,
            target_table: None,
            conflict_policy: None,
            conflict_column: None,
        }],
        column_pairs: vec![],
        pipeline_nodes: vec![],
    }
}

fn validate(snapshot: &ConfigSnapshot) -> Result<PipelineConfig, ConfigError> {
    validate_pipeline(snapshot, &snapshot.pipelines[0])
}

#[test]
fn a_complete_pipeline_validates_with_its_defaults() {
    let config = validate(&snapshot()).unwrap();
    assert_eq!(config.server_id, 1_000_003);
    assert_eq!(config.start, StartPoint::End);
    assert_eq!(config.source.password, Secret::Env("SH_PASSWORD".into()));
    assert!(config.table_pairs[0].table.matches("order_1"));
    assert_eq!(config.table_pairs[0].columns, ColumnSelection::All);
}

#[test]
fn a_regex_that_does_not_compile_names_the_table_pair() {
    let mut snapshot = snapshot();
    snapshot.table_pairs[0].source_table = "order_(".into();
    let error = validate(&snapshot).unwrap_err();
    assert_eq!(error.row, RowRef::TablePair { id: TablePairId(7) });
    assert!(
        error
            .to_string()
            .starts_with("table pair 7: source table regex 'order_(' does not compile"),
        "{error}"
    );
}

#[test]
fn a_missing_data_source_names_the_pipeline_and_the_id() {
    let mut snapshot = snapshot();
    snapshot.pipelines[0].target_id = DataSourceId(99);
    let error = validate(&snapshot).unwrap_err();
    assert_eq!(
        error.to_string(),
        "pipeline 'orders' (id 3): target data source id 99 does not exist"
    );
}

#[test]
fn bad_start_rows_and_options_are_refused() {
    let mut snapshot = snapshot();
    snapshot.pipelines[0].start_kind = "file".into();
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("needs start_file")
    );
    snapshot.pipelines[0].start_file = Some("mysql-bin.000001".into());
    snapshot.pipelines[0].start_offset = Some(120);
    assert!(validate(&snapshot).is_ok());
    snapshot.pipelines[0].load_parallelism = 0;
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("load_parallelism 0")
    );
}

#[test]
fn column_pairs_are_include_or_exclude_never_both() {
    let mut snapshot = snapshot();
    let column = |id: u32, mode: &str, name: &str, target: Option<&str>| ColumnPairRow {
        id,
        table_pair_id: TablePairId(7),
        mode: mode.into(),
        source_column: name.into(),
        target_column: target.map(str::to_owned),
    };
    snapshot.column_pairs = vec![
        column(1, "include", "id", None),
        column(2, "include", "amount", Some("total")),
    ];
    assert_eq!(
        validate(&snapshot).unwrap().table_pairs[0].columns,
        ColumnSelection::Include(vec![
            ("id".into(), None),
            ("amount".into(), Some("total".into()))
        ])
    );
    snapshot
        .column_pairs
        .push(column(3, "exclude", "secret", None));
    let error = validate(&snapshot).unwrap_err();
    assert_eq!(error.row, RowRef::ColumnPair { id: 3 });
}

#[test]
fn the_reverse_pipeline_of_a_two_way_channel_inverts_its_pairs_and_drops_the_echo() {
    let mut snapshot = snapshot();
    snapshot.channels[0].mode = "two_way".into();
    let mut reverse = snapshot.pipelines[0].clone();
    reverse.id = PipelineId(4);
    reverse.name = "orders.us.to.sh".into();
    reverse.source_id = DataSourceId(2);
    reverse.target_id = DataSourceId(1);
    reverse.reverse = 1;
    snapshot.pipelines.push(reverse);
    let pair = &mut snapshot.table_pairs[0];
    pair.source_table = "orders".into();
    pair.target_schema = Some("dc".into());
    pair.target_table = Some("orders_copy".into());
    snapshot.column_pairs.push(ColumnPairRow {
        id: 1,
        table_pair_id: TablePairId(7),
        mode: "include".into(),
        source_column: "id".into(),
        target_column: Some("order_id".into()),
    });
    let backwards = validate_pipeline(&snapshot, &snapshot.pipelines[1]).unwrap();
    let pair = &backwards.table_pairs[0];
    assert!(pair.matches("dc", "orders_copy") && !pair.matches("shop", "orders"));
    assert_eq!(
        (pair.target_schema.as_deref(), pair.target_table.as_deref()),
        (Some("shop"), Some("orders"))
    );
    assert_eq!(
        pair.columns,
        ColumnSelection::Include(vec![("order_id".into(), Some("id".into()))])
    );
    let rule = pair.conflict.clone().unwrap();
    assert_eq!(rule.policy, ConflictPolicy::PrimaryWins);
    assert!(!rule.source_is_primary, "data_source_a is the primary");
    assert_eq!(backwards.echo_pipelines, vec![PipelineId(3)]);
    let forward = validate(&snapshot).unwrap();
    assert!(
        forward.table_pairs[0]
            .conflict
            .as_ref()
            .unwrap()
            .source_is_primary
    );
    assert_eq!(forward.echo_pipelines, vec![PipelineId(4)]);
    assert_eq!(
        (forward.reverse_pipeline, backwards.reverse_pipeline),
        (Some(PipelineId(4)), Some(PipelineId(3)))
    );
    // A renaming regex cannot be inverted.
    snapshot.table_pairs[0].source_table = "order_.*".into();
    let error = validate_pipeline(&snapshot, &snapshot.pipelines[1]).unwrap_err();
    assert!(error.to_string().contains("cannot be inverted"), "{error}");
    // newer_wins needs its column.
    snapshot.table_pairs[0].source_table = "orders".into();
    snapshot.channels[0].conflict_policy = "newer_wins".into();
    let error = validate(&snapshot).unwrap_err();
    assert!(error.to_string().contains("names no column"), "{error}");
}

#[test]
fn the_same_server_without_a_rename_is_refused() {
    let mut snapshot = snapshot();
    snapshot.pipelines[0].target_id = DataSourceId(1);
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("onto themselves")
    );
    snapshot.table_pairs[0].target_schema = Some("shop_copy".into());
    assert!(validate(&snapshot).is_ok());
}

#[test]
fn system_schemas_are_never_a_source() {
    let mut snapshot = snapshot();
    snapshot.table_pairs[0].source_schema = "ottr_sys".into();
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("never synced")
    );
    snapshot.table_pairs[0].source_schema = ".*".into();
    let config = validate(&snapshot).unwrap();
    let pair = &config.table_pairs[0];
    assert!(pair.matches("shop", "order_1"));
    assert!(!pair.matches("ottr_sys", "order_1") && !pair.matches("mysql", "order_1"));
}

#[test]
fn a_pair_naming_its_own_source_on_the_same_server_is_refused() {
    let mut snapshot = snapshot();
    snapshot.pipelines[0].target_id = DataSourceId(1);
    snapshot.table_pairs[0].target_schema = Some("shop".into());
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("onto themselves")
    );
    snapshot.pipelines[0].target_id = DataSourceId(2);
    snapshot.data_sources[1].host = snapshot.data_sources[0].host.clone();
    assert!(
        validate(&snapshot)
            .unwrap_err()
            .to_string()
            .contains("onto themselves"),
        "same host and port"
    );
}
