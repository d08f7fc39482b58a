//! A TCP proxy for faults between an `ottr node` and a server, without root tools: it adds
//! latency to every chunk, can stall (connections stay open, no byte moves) and can cut every
//! open connection. It runs on a thread of its own, so it keeps forwarding whatever the test's
//! runtime does.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the bytes passing through, shared with its thread.
#[derive(Debug, Default)]
struct Faults {
    latency_ms: AtomicU64,
    stalled: AtomicBool,
    /// Connections opened before the latest cut are closed.
    generation: AtomicU64,
}

/// A proxy from a free local port to `127.0.0.1:upstream`.
pub struct FaultyProxy {
    pub port: u16,
    faults: Arc<Faults>,
}

impl FaultyProxy {
    pub fn start(upstream: u16) -> FaultyProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Faults::default());
        let shared = faults.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let faults = shared.clone();
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                            return;
                        };
                        let generation = faults.generation.load(Ordering::SeqCst);
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::select! {
                            () = pump(client_read, server_write, &faults, generation) => {}
                            () = pump(server_read, client_write, &faults, generation) => {}
                        }
                    });
                }
            });
        });
        FaultyProxy { port, faults }
    }

    /// Every chunk waits this long before it is passed on (in each direction).
    pub fn set_latency(&self, latency: Duration) {
        self.faults
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops (true) or resumes (false) moving bytes; connections stay open.
    pub fn stall(&self, stalled: bool) {
        self.faults.stalled.store(stalled, Ordering::SeqCst);
    }

    /// Closes every open connection (new ones are accepted).
    pub fn cut(&self) {
        self.faults.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes or the connection is cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: &Faults,
    generation: u64,
) {
    let cut = || faults.generation.load(Ordering::SeqCst) != generation;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            () = async {
                while !cut() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            } => return,
        };
        let Ok(read) = read else { return };
        if read == 0 {
            return;
        }
        let latency = faults.latency_ms.load(Ordering::SeqCst);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        while faults.stalled.load(Ordering::SeqCst) && !cut() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if cut() || to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
