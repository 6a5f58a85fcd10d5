//! Log files: one file a day (`<stem>.<YYYY-MM-DD>.log`, then `<stem>.<date>.1.log`, … when a
//! day's file reaches its size cap), files older than the retention deleted, and the oldest
//! deleted while the stem's files together exceed their total cap (checked at each new file,
//! so the files may pass the cap by at most the file being written).
//!
//! Each log line is written with one `write` call, so lines never interleave. Aurora writes
//! through a thread of its own ([`crate::telemetry`]), so a slow disk never stalls a request.
//! Housekeeping is best effort: a file that cannot be deleted is left and the others cleaned;
//! a directory removed at run time is made again at the next new file.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, NaiveDate, Utc};

/// How much of a stem's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Files of days older than this many days (before today) are deleted.
    pub days: u32,
    /// A day's file is continued in a new segment past this size.
    pub file_max_bytes: u64,
    /// The stem's files together: the oldest are deleted past this size.
    pub total_max_bytes: u64,
}

/// The clock deciding which day's file a line goes to (tests move it).
pub type Clock = Box<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A log file rotated daily and by size; cleaned on every rotation.
pub struct RollingFile {
    state: Mutex<State>,
}

struct State {
    dir: PathBuf,
    stem: String,
    retention: Retention,
    clock: Clock,
    open: Option<Open>,
}

struct Open {
    date: NaiveDate,
    segment: u32,
    file: File,
    written: u64,
}

/// One of a stem's files, as found in the directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    /// The day it holds.
    pub date: NaiveDate,
    /// 0 for the day's first file.
    pub segment: u32,
}

impl RollingFile {
    /// Files `<dir>/<stem>.*.log`; the directory is created if missing.
    pub fn new(dir: &Path, stem: &str, retention: Retention) -> io::Result<Self> {
        Self::with_clock(dir, stem, retention, Box::new(Utc::now))
    }

    /// Like [`RollingFile::new`], with the clock given;
    /// today's file is opened at once, so a directory Aurora cannot write to is an error now
    /// rather than lost lines later.
    pub fn with_clock(
        dir: &Path,
        stem: &str,
        retention: Retention,
        clock: Clock,
    ) -> io::Result<Self> {
        let mut state = State {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
            retention,
            clock,
            open: None,
        };
        state.file_for(0)?;
        Ok(Self {
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The path of a segment of this stem.
    pub fn path_of(&self, segment: &Segment) -> PathBuf {
        self.lock().path(segment)
    }
}

impl State {
    fn path(&self, s: &Segment) -> PathBuf {
        let name = match s.segment {
            0 => format!("{}.{}.log", self.stem, s.date),
            n => format!("{}.{}.{n}.log", self.stem, s.date),
        };
        self.dir.join(name)
    }

    /// This stem's files in the directory, oldest first, with their sizes.
    fn segments(&self) -> io::Result<Vec<(Segment, u64)>> {
        let prefix = format!("{}.", self.stem);
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(segment) = name
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(parse_segment)
            else {
                continue;
            };
            found.push((segment, entry.metadata()?.len()));
        }
        found.sort();
        Ok(found)
    }

    /// The file for a line of `len` bytes written now, opening (and cleaning) if needed.
    fn file_for(&mut self, len: u64) -> io::Result<&mut Open> {
        let today = (self.clock)().date_naive();
        let max = self.retention.file_max_bytes;
        let stale = match &self.open {
            None => true,
            Some(open) => open.date != today || (open.written > 0 && open.written + len > max),
        };
        if stale {
            std::fs::create_dir_all(&self.dir)?;
            let segment = match self.open.take() {
                Some(open) if open.date == today => open.segment + 1,
                _ => {
                    // A restart continues the day's last segment if it has room.
                    let last = self.segments()?.into_iter().rfind(|(s, _)| s.date == today);
                    match last {
                        Some((s, size)) if size == 0 || size + len <= max => s.segment,
                        Some((s, _)) => s.segment + 1,
                        None => 0,
                    }
                }
            };
            let at = Segment {
                date: today,
                segment,
            };
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path(&at))?;
            let written = file.metadata()?.len();
            self.open = Some(Open {
                date: today,
                segment,
                file,
                written,
            });
            self.clean(today);
        }
        Ok(self.open.as_mut().expect("opened above"))
    }

    /// Deletes files past the retention, then the oldest while over the total cap; never
    /// the file being written.
    fn clean(&self, today: NaiveDate) {
        let current = self.open.as_ref().map(|o| Segment {
            date: o.date,
            segment: o.segment,
        });
        // A retention reaching before the calendar's start keeps everything.
        let oldest_kept = today
            .checked_sub_days(chrono::Days::new(u64::from(self.retention.days)))
            .unwrap_or(NaiveDate::MIN);
        let Ok(segments) = self.segments() else {
            return;
        };
        let mut kept = Vec::new();
        for (segment, size) in segments {
            let expired = segment.date < oldest_kept && Some(&segment) != current.as_ref();
            if !(expired && removed(&self.path(&segment))) {
                kept.push((segment, size));
            }
        }
        let mut total: u64 = kept.iter().map(|(_, size)| size).sum();
        for (segment, size) in kept {
            if total <= self.retention.total_max_bytes {
                break;
            }
            if Some(&segment) != current.as_ref() && removed(&self.path(&segment)) {
                total -= size;
            }
        }
    }
}

/// Deletes `path`; whether it is gone.
fn removed(path: &Path) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// `2026-11-25` or `2026-11-25.3`.
fn parse_segment(rest: &str) -> Option<Segment> {
    let (date, segment) = match rest.split_once('.') {
        Some((date, n)) => (date, n.parse().ok().filter(|n| *n > 0)?),
        None => (rest, 0),
    };
    Some(Segment {
        date: NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?,
        segment,
    })
}

impl Write for RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

impl Write for &RollingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.lock();
        let open = state.file_for(buf.len() as u64)?;
        open.file.write_all(buf)?;
        open.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.lock().open.as_mut() {
            Some(open) => open.file.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use super::*;

    fn day(n: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .expect("a valid time")
            .with_timezone(&Utc)
            + chrono::Duration::days(n)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("the directory")
            .map(|e| {
                e.expect("an entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    fn rolling(dir: &Path, stem: &str, retention: Retention) -> (RollingFile, Arc<AtomicI64>) {
        let today = Arc::new(AtomicI64::new(0));
        let clock = today.clone();
        let file = RollingFile::with_clock(
            dir,
            stem,
            retention,
            Box::new(move || day(clock.load(Ordering::SeqCst))),
        )
        .expect("a log directory");
        (file, today)
    }

    #[test]
    fn a_file_a_day_old_days_past_the_retention_deleted() {
        let dir = tempdir();
        std::fs::write(dir.join("unrelated.txt"), "kept").expect("writing");
        let retention = Retention {
            days: 3,
            file_max_bytes: 1 << 20,
            total_max_bytes: 1 << 30,
        };
        let (file, today) = rolling(&dir, "aurora", retention);
        let (errors, _) = rolling(&dir, "aurora-error", retention);
        for n in 0..6 {
            today.store(n, Ordering::SeqCst);
            writeln!(&file, "line of day {n}").expect("writing");
        }
        writeln!(&errors, "an error").expect("writing");
        assert_eq!(
            names(&dir),
            [
                "aurora-error.2026-01-01.log",
                "aurora.2026-01-03.log",
                "aurora.2026-01-04.log",
                "aurora.2026-01-05.log",
                "aurora.2026-01-06.log",
                "unrelated.txt"
            ],
            "today and the three days before it are kept, other stems and files untouched"
        );
        let last = std::fs::read_to_string(dir.join("aurora.2026-01-06.log")).expect("read");
        assert_eq!(last, "line of day 5\n");
    }

    #[test]
    fn a_full_file_continues_in_a_segment_and_the_total_cap_deletes_the_oldest() {
        let dir = tempdir();
        let retention = Retention {
            days: 30,
            file_max_bytes: 100,
            total_max_bytes: 250,
        };
        let (file, today) = rolling(&dir, "aurora", retention);
        let line = format!("{}\n", "x".repeat(39)); // 40 bytes
        for _ in 0..3 {
            (&file).write_all(line.as_bytes()).expect("writing");
        }
        assert_eq!(
            names(&dir),
            ["aurora.2026-01-01.1.log", "aurora.2026-01-01.log"],
            "the third line would pass 100 bytes: a second segment"
        );
        today.store(1, Ordering::SeqCst);
        for _ in 0..6 {
            (&file).write_all(line.as_bytes()).expect("writing");
        }
        // Day 2 fills three segments of two lines. Opening the third, the files held
        // 80 + 40 + 80 + 80 > 250 bytes: the oldest (day 1's first) went.
        assert_eq!(
            names(&dir),
            [
                "aurora.2026-01-01.1.log",
                "aurora.2026-01-02.1.log",
                "aurora.2026-01-02.2.log",
                "aurora.2026-01-02.log"
            ]
        );
        for name in names(&dir) {
            let size = std::fs::metadata(dir.join(&name)).expect("meta").len();
            assert!(size <= 100, "{name} is {size} bytes");
        }
    }

    #[test]
    fn a_restart_continues_the_days_last_segment() {
        let dir = tempdir();
        let retention = Retention {
            days: 30,
            file_max_bytes: 1000,
            total_max_bytes: 1 << 20,
        };
        {
            let (file, _) = rolling(&dir, "aurora", retention);
            writeln!(&file, "before").expect("writing");
        }
        let (file, _) = rolling(&dir, "aurora", retention);
        writeln!(&file, "after").expect("writing");
        assert_eq!(names(&dir), ["aurora.2026-01-01.log"]);
        let text = std::fs::read_to_string(dir.join("aurora.2026-01-01.log")).expect("read");
        assert_eq!(text, "before\nafter\n");
    }

    #[test]
    fn a_retention_past_the_calendar_keeps_everything_and_a_removed_directory_comes_back() {
        let dir = tempdir();
        let retention = Retention {
            days: u32::MAX,
            file_max_bytes: 1 << 20,
            total_max_bytes: 1 << 30,
        };
        let (file, today) = rolling(&dir, "aurora", retention);
        writeln!(&file, "day one").expect("writing");
        std::fs::remove_dir_all(&dir).expect("removing the directory");
        today.store(1, Ordering::SeqCst);
        writeln!(&file, "day two").expect("a new day's file makes the directory again");
        assert_eq!(names(&dir), ["aurora.2026-01-02.log"]);
    }

    #[test]
    fn a_directory_that_cannot_be_written_is_an_error_at_once() {
        let dir = tempdir();
        let blocked = dir.join("not-a-directory");
        std::fs::write(&blocked, "a file").expect("writing");
        let retention = Retention {
            days: 30,
            file_max_bytes: 1 << 20,
            total_max_bytes: 1 << 30,
        };
        assert!(RollingFile::new(&blocked, "aurora", retention).is_err());
    }

    #[test]
    fn only_this_stems_names_are_segments() {
        assert_eq!(
            parse_segment("2026-11-25"),
            Some(Segment {
                date: NaiveDate::from_ymd_opt(2026, 11, 25).expect("a date"),
                segment: 0
            })
        );
        assert_eq!(parse_segment("2026-11-25.2").map(|s| s.segment), Some(2));
        assert_eq!(parse_segment("2026-11-25.0"), None);
        assert_eq!(parse_segment("2026-13-01"), None);
        assert_eq!(parse_segment("notes"), None);
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aurora-logs-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        dir
    }
}
