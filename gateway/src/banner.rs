//! What `aurora serve` prints for a person at a terminal once it listens: the console's
//! address, where the data is, and — on an empty store — how to get in. (Not a log line:
//! logs go on, as text on a terminal or JSON lines for collectors.)

use std::fmt::Write;
use std::net::SocketAddr;

use crate::state::AppState;

/// The address a browser on this machine opens for `listen` (on `port`).
pub fn base_url(listen: SocketAddr, port: u16) -> String {
    let ip = listen.ip();
    let host = if ip.is_unspecified() || ip.is_loopback() {
        "localhost".to_string()
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("http://{host}:{port}")
}

/// The banner: a few lines, ending in a blank one.
pub async fn banner(state: &AppState, port: u16) -> String {
    let config = &state.config;
    let url = base_url(config.listen, port);
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "  Aurora {} is running", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out);
    let _ = writeln!(out, "  Console   {url}/console/");
    let _ = writeln!(out, "  API docs  {url}/api-docs/");
    let store = match &config.database_url {
        Some(_) => "Postgres".to_string(),
        None => format!("SQLite under {}", config.data_dir.display()),
    };
    let bus = if config.nats_url.is_some() {
        "NATS JetStream"
    } else {
        "in-process bus"
    };
    let _ = writeln!(out, "  Storage   {store}, {bus}");
    // On an empty store nobody can sign in yet: say how to make the first admin.
    if matches!(state.users.list(None, 1).await, Ok(users) if users.is_empty()) {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "  No users yet. Create the first admin (asks for a password):"
        );
        let _ = writeln!(out, "    aurora admin create --username admin");
        let _ = writeln!(
            out,
            "    (from the source tree: cargo run --release -p aurora-gateway -- admin create --username admin)"
        );
        let _ = writeln!(
            out,
            "  then sign in at {url}/console/ — or create an account there (role user)."
        );
    }
    let _ = writeln!(out);
    out
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn the_url_is_one_a_browser_here_opens() {
        let url = |s: &str| base_url(s.parse().unwrap(), 9000);
        assert_eq!(url("127.0.0.1:8080"), "http://localhost:9000");
        assert_eq!(url("0.0.0.0:8080"), "http://localhost:9000");
        assert_eq!(url("[::]:8080"), "http://localhost:9000");
        assert_eq!(url("10.1.2.3:8080"), "http://10.1.2.3:9000");
        assert_eq!(url("[fd00::1]:8080"), "http://[fd00::1]:9000");
    }
}
