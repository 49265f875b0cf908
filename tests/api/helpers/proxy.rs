//! A TCP proxy in front of the shared Postgres that a test can take down and bring back,
//! so "the database is unavailable" never means stopping the cluster other tests use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub struct PgProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Cancelled to cut every connection open through the proxy.
    cut: Arc<Mutex<CancellationToken>>,
    /// Cancelled to stop forwarding while keeping every connection open: a server that
    /// hangs without answering.
    hang: Arc<Mutex<CancellationToken>>,
}

impl PgProxy {
    pub async fn start(target: SocketAddr) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Mutex::new(CancellationToken::new()));
        let hang = Arc::new(Mutex::new(CancellationToken::new()));
        let (up2, cut2, hang2) = (up.clone(), cut.clone(), hang.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Down: accept and close at once, like a server that is restarting.
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let token = cut2.lock().unwrap().clone();
                let hang = hang2.lock().unwrap().clone();
                tokio::spawn(pipe(client, target, token, hang));
            }
        });
        PgProxy {
            port,
            up,
            cut,
            hang,
        }
    }

    /// Stops forwarding in both directions, on open and new connections alike, without
    /// closing any (until `down`): Postgres hung.
    pub fn hang(&self) {
        self.hang.lock().unwrap().cancel();
    }

    /// Refuses new connections and cuts the open ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let mut cut = self.cut.lock().unwrap();
        cut.cancel();
        *cut = CancellationToken::new();
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a database URL");
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }
}

async fn pipe(
    mut client: TcpStream,
    target: SocketAddr,
    cut: CancellationToken,
    hang: CancellationToken,
) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = cut.cancelled() => {}
        // Both sockets stay open, nothing moves, until the connections are cut.
        _ = hang.cancelled() => cut.cancelled().await,
    }
}
