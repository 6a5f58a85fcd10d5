//! A process as the files and tools it leaves name it: pid, start time and host, so that a
//! reused pid, or a process of another host sharing the volume, is not mistaken for it.

use std::sync::OnceLock;

/// A process, as its children and partial files name it: `<pid>-<start>-<host>` (start:
/// clock ticks after boot, from `/proc/<pid>/stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Its pid.
    pub pid: u32,
    /// When it started, in clock ticks after boot.
    pub start: u64,
    /// Its host.
    pub host: String,
}

impl Owner {
    /// This process.
    pub fn this() -> &'static Owner {
        static THIS: OnceLock<Owner> = OnceLock::new();
        THIS.get_or_init(|| {
            let pid = std::process::id();
            Owner {
                pid,
                start: start_time(pid).unwrap_or(0),
                host: host_name(),
            }
        })
    }

    /// Its tag (what [`Owner::parse`] reads).
    pub fn tag(&self) -> String {
        format!("{}-{}-{}", self.pid, self.start, self.host)
    }

    /// Reads a tag.
    pub fn parse(tag: &str) -> Option<Owner> {
        let mut parts = tag.splitn(3, '-');
        let pid = parts.next()?.parse().ok()?;
        let start = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        Some(Owner { pid, start, host })
    }

    /// Is it on this host?
    pub fn is_local(&self) -> bool {
        self.host == Owner::this().host
    }

    /// Is it a process of this host that still runs (its pid not reused since)?
    pub fn is_alive(&self) -> bool {
        self.is_local() && start_time(self.pid) == Some(self.start)
    }
}

/// The host's name, as a tag may carry it (no `/` or whitespace).
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        .collect();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// When process `pid` started, in clock ticks after boot (`None`: no such process, or not
/// Linux).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses; fields after the last
    // `)` are plain. starttime is field 22, the 20th after comm.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_read_back_and_this_process_is_alive() {
        let this = Owner::this();
        assert!(this.start > 0, "a start time on Linux");
        assert_eq!(Owner::parse(&this.tag()).as_ref(), Some(this));
        assert!(this.is_alive());
        let reused = Owner {
            start: this.start + 1,
            ..this.clone()
        };
        assert!(
            !reused.is_alive(),
            "a pid with another start is another process"
        );
        let elsewhere = Owner {
            host: format!("{}-other", this.host),
            ..this.clone()
        };
        assert!(!elsewhere.is_local() && !elsewhere.is_alive());
        assert_eq!(
            Owner::parse("12-34-my-host.local").unwrap().host,
            "my-host.local"
        );
        for bad in ["", "x-1-h", "1-x-h", "1-2"] {
            assert_eq!(Owner::parse(bad), None, "{bad}");
        }
    }
}
