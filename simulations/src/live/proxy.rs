//! A TCP proxy the nemesis controls: in front of Postgres and NATS, it passes traffic on,
//! delays it, cuts every connection (and refuses new ones), or partitions (holds every byte
//! without closing anything, as a network that silently drops packets).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward as received.
    Pass,
    /// Hold each chunk this long before forwarding it.
    Delay(Duration),
    /// Close every connection and refuse new ones.
    Cut,
    /// Forward nothing, close nothing.
    Partition,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// The address clients connect to.
    pub port: u16,
    mode: watch::Sender<Mode>,
    stop: CancellationToken,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Proxy {
    /// Listens on a free local port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (mode, modes) = watch::channel(Mode::Pass);
        let stop = CancellationToken::new();
        let upstream = Arc::new(upstream);
        tokio::spawn({
            let stop = stop.clone();
            async move {
                loop {
                    let (client, _) = tokio::select! {
                        () = stop.cancelled() => return,
                        accepted = listener.accept() => match accepted {
                            Ok(accepted) => accepted,
                            Err(_) => continue,
                        },
                    };
                    if *modes.borrow() == Mode::Cut {
                        drop(client);
                        continue;
                    }
                    let (upstream, modes, stop) = (upstream.clone(), modes.clone(), stop.clone());
                    tokio::spawn(async move {
                        let Ok(server) = TcpStream::connect(upstream.as_str()).await else {
                            return;
                        };
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        let connection = CancellationToken::new();
                        let up = pump(client_read, server_write, modes.clone(), connection.clone());
                        let down = pump(server_read, client_write, modes, connection.clone());
                        tokio::select! {
                            () = stop.cancelled() => {}
                            _ = async { tokio::join!(up, down) } => {}
                        }
                    });
                }
            }
        });
        Ok(Proxy { port, mode, stop })
    }

    /// Changes what the proxy does from now on.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// What it does now.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

/// Copies `from` to `to` under the proxy's mode until either side closes or the mode cuts.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut modes: watch::Receiver<Mode>,
    connection: CancellationToken,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        // Held while partitioned; closed when cut.
        loop {
            match *modes.borrow_and_update() {
                Mode::Cut => {
                    connection.cancel();
                    return;
                }
                Mode::Partition => {}
                _ => break,
            }
            tokio::select! {
                () = connection.cancelled() => return,
                changed = modes.changed() => if changed.is_err() { return },
            }
        }
        let read = tokio::select! {
            () = connection.cancelled() => return,
            changed = modes.changed() => {
                if changed.is_err() { return }
                continue;
            }
            read = from.read(&mut buffer) => read,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                connection.cancel();
                return;
            }
            Ok(n) => n,
        };
        // What was read before a partition or cut is still subject to it.
        loop {
            let mode = *modes.borrow_and_update();
            match mode {
                Mode::Pass => break,
                Mode::Delay(pause) => {
                    tokio::time::sleep(pause).await;
                    break;
                }
                Mode::Cut => {
                    connection.cancel();
                    return;
                }
                Mode::Partition => tokio::select! {
                    () = connection.cancelled() => return,
                    changed = modes.changed() => if changed.is_err() { return },
                },
            }
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            connection.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind the proxy: passed, delayed, partitioned, cut.
    #[tokio::test]
    async fn the_proxy_passes_delays_holds_and_cuts() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 1024];
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let proxy = Proxy::start(upstream).await.unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        let mut answer = [0u8; 4];
        client.write_all(b"ping").await.unwrap();
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"ping");

        proxy.set(Mode::Delay(Duration::from_millis(200)));
        let sent = std::time::Instant::now();
        client.write_all(b"slow").await.unwrap();
        client.read_exact(&mut answer).await.unwrap();
        assert!(
            sent.elapsed() >= Duration::from_millis(400),
            "delayed both ways"
        );

        proxy.set(Mode::Partition);
        client.write_all(b"held").await.unwrap();
        let held =
            tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut answer)).await;
        assert!(held.is_err(), "nothing passes a partition");
        proxy.set(Mode::Pass);
        client.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"held", "held bytes pass once healed");

        proxy.set(Mode::Cut);
        let n = client.read(&mut answer).await.unwrap_or(0);
        assert_eq!(n, 0, "a cut closes the connection");
        let mut refused = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert_eq!(
            refused.read(&mut answer).await.unwrap_or(0),
            0,
            "and refuses new ones"
        );
    }
}
