//! Test harness: real `mariadbd` servers on free ports in temporary directories, `ottr node`
//! processes, and bounded polling.
//!
//! Servers are started once per test binary (see [`shared`]) and killed by a watchdog when the
//! test process exits, however it exits. Each test works in its own schemas.

#![allow(dead_code)]

pub mod installation;
pub mod proxy;
pub mod tls;
pub mod zookeeper;

#[allow(unused_imports)]
pub use installation::{Installation, SHORT};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How a test server is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Binary log on, ROW format, FULL row image, FULL row metadata: a valid source.
    Source,
    /// No binary log: the metadata server, and an invalid source.
    Plain,
    /// No binary log: a target server.
    Target,
}

/// A `mariadbd` started by the tests.
#[derive(Debug)]
pub struct MariaDb {
    pub port: u16,
    pub dir: PathBuf,
    /// The running process (changes at a restart).
    pid: std::sync::Mutex<u32>,
    /// Every argument it was started with, to restart it alike.
    args: Vec<String>,
}

/// The server of `kind` shared by every test of this binary, started on first use.
pub fn shared(kind: ServerKind) -> &'static MariaDb {
    static SOURCE: OnceLock<MariaDb> = OnceLock::new();
    static PLAIN: OnceLock<MariaDb> = OnceLock::new();
    static TARGET: OnceLock<MariaDb> = OnceLock::new();
    let cell = match kind {
        ServerKind::Source => &SOURCE,
        ServerKind::Plain => &PLAIN,
        ServerKind::Target => &TARGET,
    };
    cell.get_or_init(|| MariaDb::start(kind))
}

fn find_binary(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
            let path = Path::new(dir).join(name);
            if path.exists() {
                return path;
            }
        }
    }
    panic!(
        "{} not found: install MariaDB with `apt-get install -y mariadb-server` (scripts/test.sh does it)",
        names[0]
    );
}

/// A TCP port that was free a moment ago and that this process has never handed out before:
/// two servers started at once by parallel tests must not both be given the port the kernel
/// offers first (the loser would exit, and the winner would answer its readiness check).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("bind a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A new temporary directory, removed by the watchdog of the server that uses it.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let base = std::env::var_os("OTTR_TEST_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = base.join(format!(
        "ottr-{prefix}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create a temporary directory");
    dir
}

impl MariaDb {
    /// Installs a data directory and starts a server; panics with the server's log if it
    /// does not answer within 30 s.
    pub fn start(kind: ServerKind) -> MariaDb {
        MariaDb::start_with(kind, &[])
    }

    /// Like [`MariaDb::start`], with extra `mariadbd` arguments (which win over the defaults).
    pub fn start_with(kind: ServerKind, extra: &[&str]) -> MariaDb {
        let install = find_binary(&["mariadb-install-db", "mysql_install_db"]);
        let dir = temp_dir(match kind {
            ServerKind::Source => "source",
            ServerKind::Plain => "plain",
            ServerKind::Target => "target",
        });
        let data = dir.join("data");
        // One install at a time: several at once on two cores have been seen to fail.
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _installing = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let output = Command::new(&install)
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .arg(format!("--datadir={}", data.display()))
            .output()
            .expect("run mariadb-install-db");
        assert!(
            output.status.success(),
            "mariadb-install-db failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let port = free_port();
        let mut args: Vec<String> = vec![
            "--no-defaults".into(),
            "--user=root".into(),
            format!("--datadir={}", data.display()),
            "--bind-address=127.0.0.1".into(),
            format!("--port={port}"),
            format!("--socket={}", dir.join("mysqld.sock").display()),
            format!("--pid-file={}", dir.join("mysqld.pid").display()),
            format!("--log-error={}", dir.join("error.log").display()),
            "--server-id=1".into(),
            "--character-set-server=utf8mb4".into(),
            "--collation-server=utf8mb4_general_ci".into(),
            "--innodb-buffer-pool-size=32M".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
            "--performance-schema=OFF".into(),
            "--skip-name-resolve".into(),
            "--max-connections=1000".into(),
        ];
        if kind == ServerKind::Source {
            args.extend(
                [
                    "--log-bin=mysql-bin",
                    "--binlog-format=ROW",
                    "--binlog-row-image=FULL",
                    "--binlog-row-metadata=FULL",
                    "--sync-binlog=0",
                ]
                .map(String::from),
            );
        }
        args.extend(extra.iter().map(|arg| arg.to_string()));
        let server = MariaDb {
            port,
            dir,
            pid: std::sync::Mutex::new(0),
            args,
        };
        server.launch();
        watch(server.pid(), Some(&server.dir));
        server
    }

    /// Starts the process and waits until it answers. The server outlives this call on
    /// purpose: its watchdog kills it when the test process exits.
    #[allow(clippy::zombie_processes)]
    fn launch(&self) {
        let mut child = Command::new(find_binary(&["mariadbd", "mysqld"]))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        *self.pid.lock().unwrap() = child.id();
        self.wait_ready(&mut child);
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        *self.pid.lock().unwrap()
    }

    /// SIGKILL, and waits until the process is gone.
    pub fn kill9(&self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-9", &pid]).status();
        // Gone, or a zombie (nobody waits for it): either way it no longer holds the port.
        let running = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit(')')
                    .next()
                    .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
            })
        };
        while running() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the server again on the same port and data directory, after [`MariaDb::kill9`].
    pub fn restart(&self) {
        self.launch();
        watch(self.pid(), None);
    }

    /// Waits until the server answers, and panics with its log if it does not within 30 s or
    /// exits first (an answer on the port from some other process is not taken for ready).
    fn wait_ready(&self, child: &mut std::process::Child) {
        let client = find_binary(&["mariadb", "mysql"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                panic!(
                    "mariadbd on port {} exited before it was ready ({status}):\n{log}",
                    self.port
                );
            }
            let status = Command::new(&client)
                .args([
                    "-h127.0.0.1",
                    "-uroot",
                    "--connect-timeout=1",
                    "-e",
                    "SELECT 1",
                ])
                .arg(format!("-P{}", self.port))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if status.is_ok_and(|status| status.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        panic!(
            "mariadbd on port {} did not start within 30 s:\n{log}",
            self.port
        );
    }

    /// `mysql://root@127.0.0.1:PORT/SCHEMA`
    pub fn url(&self, schema: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{schema}", self.port)
    }

    /// The address as `add_data_source` takes it.
    pub fn source_url(&self, user: &str) -> String {
        format!("mysql://{user}@127.0.0.1:{}", self.port)
    }

    /// This server as a data source of kind mariadb, as root.
    pub fn data_source(&self) -> ottr::config::DataSource {
        ottr::config::DataSource {
            id: ottr::model::DataSourceId(1),
            name: "sh".into(),
            kind: ottr::config::DataSourceKind::MariaDb,
            host: "127.0.0.1".into(),
            port: self.port,
            user: "root".into(),
            password: ottr::config::Secret::None,
            tls: ottr::config::Tls {
                mode: ottr::config::TlsMode::Disabled,
                ..Default::default()
            },
        }
    }

    /// Runs `sql` (several statements may follow each other) as root, panicking on an error.
    pub async fn run(&self, sql: &str) {
        self.conn().await.query_drop(sql).await.unwrap();
    }

    /// A root connection without a default schema.
    pub async fn conn(&self) -> Conn {
        let opts = Opts::from_url(&format!(
            "mysql://root@127.0.0.1:{}?prefer_socket=false",
            self.port
        ))
        .unwrap();
        match Conn::new(opts).await {
            Ok(conn) => conn,
            // a server that died (it has been seen to crash): its log says why
            Err(error) => {
                let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                panic!(
                    "connect to the test server on port {}: {error}\nthe end of its error.log:\n{}",
                    self.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            }
        }
    }
}

/// Starts a watchdog that kills `pid` once this test process has exited. With a `dir` (a
/// server), it then removes the directory; without one (a node), it also ends when `pid` does.
/// It is never waited for: it must outlive the test process.
#[allow(clippy::zombie_processes)]
fn watch(pid: u32, dir: Option<&Path>) {
    let (alive, cleanup) = match dir {
        Some(dir) => (
            String::new(),
            format!("; sleep 0.5; rm -rf '{}'", dir.display()),
        ),
        None => (format!(" && kill -0 {pid} 2>/dev/null"), String::new()),
    };
    let script = format!(
        "while kill -0 {me} 2>/dev/null{alive}; do sleep 0.5; done; kill -9 {pid} 2>/dev/null{cleanup}",
        me = std::process::id(),
    );
    Command::new("bash")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the watchdog");
}

/// Drops and re-creates the metadata schema `schema` (and its secrets schema) on `server`
/// with `ottr migrate`'s code, and returns its URL.
pub async fn fresh_meta(server: &MariaDb, schema: &str) -> String {
    let mut conn = server.conn().await;
    conn.query_drop(format!(
        "DROP DATABASE IF EXISTS `{schema}_secret`; DROP DATABASE IF EXISTS `{schema}`"
    ))
    .await
    .unwrap();
    drop(conn);
    let url = server.url(schema);
    ottr::meta::migrate(&url, None)
        .await
        .expect("migrate a fresh schema");
    url
}

/// A connection whose default schema is `schema`.
pub async fn conn_to(server: &MariaDb, schema: &str) -> Conn {
    let opts = Opts::from_url(&format!("{}?prefer_socket=false", server.url(schema))).unwrap();
    Conn::new(opts).await.expect("connect to the test schema")
}

/// Evaluates `$probe` (an expression, usually a block with `.await`s) every 100 ms until it
/// is `Some(value)`, and yields the value; panics after `$limit` naming `$what`.
#[macro_export]
macro_rules! eventually {
    ($limit:expr, $what:expr, $probe:expr) => {
        $crate::eventually!($limit, $what, $probe, else String::new())
    };
    // With a diagnostic evaluated at the deadline and added to the panic's message.
    ($limit:expr, $what:expr, $probe:expr, else $diagnostic:expr) => {{
        let limit: std::time::Duration = $limit;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(value) = $probe {
                break value;
            }
            if std::time::Instant::now() >= deadline {
                let diagnostic: String = $diagnostic;
                panic!("timed out after {:?} waiting for {}\n{}", limit, $what, diagnostic);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }};
}

/// A running `ottr node` process; killed with SIGKILL when dropped.
pub struct NodeProcess {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl NodeProcess {
    /// Starts `ottr node --meta URL --name NAME`, logging to a file in `dir`.
    pub fn spawn(meta_url: &str, name: &str, dir: &Path, env: &[(&str, &str)]) -> NodeProcess {
        let log = dir.join(format!(
            "node-{name}-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let file = std::fs::File::create(&log).expect("create the node log");
        let child = Command::new(env!("CARGO_BIN_EXE_ottr"))
            .args(["node", "--meta", meta_url, "--name", name])
            .env("OTTR_LOG", "debug,mysql_async=info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start ottr node");
        watch(child.id(), None);
        NodeProcess {
            name: name.to_owned(),
            log,
            child,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the node dies without releasing anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the node: a frozen process, not a dead one.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {}", self.pid());
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        self.child.wait().expect("wait for the node")
    }

    /// The exit status, if the process has exited.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("poll the node")
    }

    /// Everything the node logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill9();
        }
    }
}

/// Writes to every table (`schema.table`, columns id and n) of `server` until `stop`, one
/// round every `pause`: each round inserts a row and increments an older one, so that a
/// change applied twice (or lost) shows. Returns the number of rounds.
pub fn spawn_writer(
    server: &'static MariaDb,
    pause: Duration,
    tables: Vec<String>,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut conn = server.conn().await;
        let mut round = 0;
        while !stop.is_cancelled() {
            round += 1;
            for table in &tables {
                conn.query_drop(format!(
                    "INSERT INTO {table} VALUES ({round}, 0); UPDATE {table} SET n = n + 1 WHERE id = {};",
                    (round + 1) / 2
                ))
                .await
                .unwrap();
            }
            tokio::time::sleep(pause).await;
        }
        round
    })
}

/// Reads, every 20 ms until `stop`, the least fencing token of the pipelines whose name is
/// LIKE `pattern` in `server`'s `ottr_sys.applied`; returns each new value in order.
pub fn watch_tokens(
    server: &'static MariaDb,
    pattern: String,
    stop: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut conn = server.conn().await;
        let mut seen: Vec<u64> = Vec::new();
        while !stop.is_cancelled() {
            let least: Option<u64> = conn
                .exec_first(
                    "SELECT MIN(fencing_token) FROM ottr_sys.applied WHERE pipeline_name LIKE ?",
                    (&pattern,),
                )
                .await
                .unwrap_or(None);
            if let Some(least) = least
                && seen.last() != Some(&least)
            {
                seen.push(least);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    })
}

/// The binlog position a server is at now.
pub async fn binlog_end(conn: &mut Conn) -> ottr::model::BinlogFilePos {
    let row: mysql_async::Row = conn
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    ottr::model::BinlogFilePos {
        file: row.get("File").unwrap(),
        offset: row.get("Position").unwrap(),
    }
}

/// Rows of a table as text, as [`table_rows`] reads them.
pub type Rows = Vec<Vec<Option<String>>>;

/// Every row of `schema.table` on a server, ordered by its first two columns, as text
/// (empty when the table is missing).
pub async fn table_rows(server: &MariaDb, table: &str) -> Rows {
    let mut conn = server.conn().await;
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    let rows: Vec<mysql_async::Row> = conn
        .query(format!("SELECT * FROM {table} ORDER BY 1, 2"))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .map(|row| {
            row.unwrap()
                .into_iter()
                .map(|value| match value {
                    mysql_async::Value::NULL => None,
                    value => Some(value.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

/// Select options with short timings for tests.
pub fn select_options(
    server_id: u32,
    stop_at_end: bool,
    batch_rows: usize,
    batch_bytes: usize,
) -> ottr::pipeline::select::SelectOptions {
    ottr::pipeline::select::SelectOptions {
        reader: ottr::pipeline::select::ReaderOptions {
            server_id,
            heartbeat: Duration::from_millis(300),
            stop_at_end,
        },
        batch_rows,
        batch_bytes,
        batch_timeout: Duration::from_millis(200),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_millis(1000),
        split_transactions: true,
        cut_when_idle: None,
        echo_keys: Default::default(),
    }
}

/// A replica server id base for `name` (a test's schema), so that pipelines of different tests
/// reading the shared source never use the same server id: 5,000,000 + a multiple of 100.
pub fn server_id_base(name: &str) -> u32 {
    let hash = name.bytes().fold(0u32, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u32::from(byte))
    });
    5_000_000 + (hash % 10_000) * 100
}

/// A real SMTP server that keeps every message it receives: Debian's python3-aiosmtpd, started
/// on a free port and killed by a watchdog when the test process exits.
pub struct SmtpSink {
    pub port: u16,
    output: PathBuf,
    child: std::sync::Mutex<Option<Child>>,
}

/// One received mail: its subject and its whole text (headers and body).
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub subject: String,
    pub text: String,
}

impl SmtpSink {
    /// Starts the sink and waits until it accepts connections.
    pub fn start() -> SmtpSink {
        SmtpSink::start_with(&[])
    }

    /// Like [`SmtpSink::start`], with STARTTLS required, serving `cert` and `key`.
    pub fn start_tls(cert: &Path, key: &Path) -> SmtpSink {
        SmtpSink::start_with(&[
            "--tlscert",
            cert.to_str().unwrap(),
            "--tlskey",
            key.to_str().unwrap(),
        ])
    }

    fn start_with(extra: &[&str]) -> SmtpSink {
        let python = Path::new("/usr/bin/python3");
        let has_aiosmtpd = Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            has_aiosmtpd,
            "aiosmtpd not found for /usr/bin/python3: install it with `apt-get install -y python3-aiosmtpd` (scripts/test.sh does it)"
        );
        let port = free_port();
        let dir = temp_dir("smtp");
        let output = dir.join("smtp.out");
        let file = std::fs::File::create(&output).unwrap();
        let child = Command::new(python)
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start aiosmtpd");
        watch(child.id(), None);
        watch(std::process::id(), Some(&dir));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpSink {
            port,
            output,
            child: std::sync::Mutex::new(Some(child)),
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.split("---------- MESSAGE FOLLOWS ----------")
            .skip(1)
            .filter_map(|chunk| {
                let (message, _) = chunk.split_once("------------ END MESSAGE ------------")?;
                let subject = message
                    .lines()
                    .find_map(|line| line.strip_prefix("Subject: "))?
                    .trim()
                    .to_owned();
                Some(ReceivedMail {
                    subject,
                    text: message.to_owned(),
                })
            })
            .collect()
    }

    /// Messages whose subject contains `needle`.
    pub fn with_subject(&self, needle: &str) -> Vec<ReceivedMail> {
        self.messages()
            .into_iter()
            .filter(|mail| mail.subject.contains(needle))
            .collect()
    }

    /// Stops the sink: mail sent from now on fails.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
