//! A real ZooKeeper server for the tests: Debian's `zookeeper` package, run standalone with
//! `java` on a free port in a temporary directory (Debian's zkServer.sh insists on /etc and
//! /var/log), killed by a watchdog when the test process exits.

use super::{free_port, temp_dir, watch};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const JAR: &str = "/usr/share/java/zookeeper.jar";

/// A standalone ZooKeeper server; sessions may be as short as one second.
pub struct ZooKeeperServer {
    pub port: u16,
    dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl ZooKeeperServer {
    /// Starts a server and waits until it serves.
    pub fn start() -> ZooKeeperServer {
        assert!(
            Path::new(JAR).exists(),
            "{JAR} not found: install ZooKeeper with `apt-get install -y zookeeper` (scripts/test.sh does it)"
        );
        let port = free_port();
        let dir = temp_dir("zookeeper");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime=250\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 minSessionTimeout=1000\nmaxSessionTimeout=60000\nadmin.enableServer=false\n\
                 4lw.commands.whitelist=srvr\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        watch(std::process::id(), Some(&dir));
        let server = ZooKeeperServer {
            port,
            dir,
            child: Mutex::new(None),
        };
        server.launch();
        server
    }

    /// `127.0.0.1:PORT`, for `--zk`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: every session is cut off at once.
    pub fn kill9(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory, after [`Self::kill9`].
    pub fn restart(&self) {
        self.launch();
    }

    fn launch(&self) {
        let log = std::fs::File::create(self.dir.join("zk.out")).unwrap();
        let child = Command::new("java")
            .args([
                "-Xms32m",
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-cp",
                &format!("/etc/zookeeper/conf:{JAR}"),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start java for ZooKeeper");
        watch(child.id(), None);
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.serving() {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper on port {} did not serve within 30 s:\n{}",
                self.port,
                std::fs::read_to_string(self.dir.join("zk.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers `srvr` as a standalone server (`ruok` answers too early).
    fn serving(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = String::new();
        stream.write_all(b"srvr").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.contains("Mode: standalone")
    }
}
