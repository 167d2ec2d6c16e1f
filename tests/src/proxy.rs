//! A TCP proxy that can go silent: it keeps the connections open but stops forwarding, as
//! a router host that died or a network that drops packets looks to both ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// A proxy on 127.0.0.1 to one target address.
#[derive(Debug)]
pub struct SilentProxy {
    port: u16,
    /// Connections numbered below this one are silent.
    silent_below: Arc<AtomicU64>,
    /// The number of the next accepted connection.
    next: Arc<AtomicU64>,
}

impl SilentProxy {
    /// Starts forwarding to `target` (`host:port`).
    pub async fn start(target: String) -> SilentProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let silent_below = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicU64::new(0));
        let (silent, counter) = (silent_below.clone(), next.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(router) = TcpStream::connect(&target).await else {
                    return;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let (cr, cw) = client.into_split();
                let (rr, rw) = router.into_split();
                tokio::spawn(pump(cr, rw, n, silent.clone()));
                tokio::spawn(pump(rr, cw, n, silent.clone()));
            }
        });
        SilentProxy {
            port,
            silent_below,
            next,
        }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Silences the connections open now; later ones are forwarded.
    pub fn silence_open(&self) {
        let n = self.next.load(Ordering::SeqCst);
        self.silent_below.store(n, Ordering::SeqCst);
    }

    /// Silences every connection, open now or later.
    pub fn silence_all(&self) {
        self.silent_below.store(u64::MAX, Ordering::SeqCst);
    }
}

/// Forwards `from` to `to` while connection `n` is not silenced; then reads and drops
/// everything, holding both open (the proxy never closes a side by itself).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, n: u64, silent: Arc<AtomicU64>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n_read @ 1..) = from.read(&mut buf).await {
        let forward = n >= silent.load(Ordering::SeqCst);
        if forward && to.write_all(&buf[..n_read]).await.is_err() {
            return;
        }
    }
    std::future::pending::<()>().await;
}
