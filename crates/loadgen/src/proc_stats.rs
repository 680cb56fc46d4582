//! CPU time and memory of a process, read from Linux's `/proc`.
//!
//! CPU time is `utime` and `stime` from `/proc/PID/stat` (fields 14 and 15, in clock ticks,
//! summed over every thread of the process): time in user space and in the kernel; memory is `VmRSS` and `VmHWM` (the peak resident set)
//! from `/proc/PID/status`. Clock ticks are converted with `getconf CLK_TCK`, read once; when
//! that command is missing the Linux default of 100 ticks per second is assumed. At 100 Hz a
//! CPU time is only good to 10 ms, which is why measured windows are seconds long.

use std::io;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Clock ticks per second assumed when `getconf CLK_TCK` cannot be run.
const DEFAULT_CLOCK_TICKS: u64 = 100;

/// A process whose statistics can be read.
#[derive(Debug, Clone)]
pub struct Proc {
    dir: PathBuf,
}

/// CPU time used so far, split as the kernel accounts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTime {
    /// `utime`: running the process's own code and its libraries.
    pub user: Duration,
    /// `stime`: in the kernel on the process's behalf (system calls, and the network stack's
    /// work done in them, such as loopback delivery to the receiving socket).
    pub system: Duration,
}

impl CpuTime {
    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

impl std::ops::AddAssign for CpuTime {
    fn add_assign(&mut self, more: CpuTime) {
        self.user += more.user;
        self.system += more.system;
    }
}

/// One reading of a process's memory, in KiB as `/proc` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most that was ever resident.
    pub peak_kib: u64,
}

impl Proc {
    /// The process with id `pid`.
    pub fn pid(pid: u32) -> Proc {
        Proc { dir: PathBuf::from(format!("/proc/{pid}")) }
    }

    /// This process.
    pub fn current() -> Proc {
        Proc { dir: PathBuf::from("/proc/self") }
    }

    /// User plus system CPU time used so far by every thread of the process.
    pub fn cpu_time(&self) -> io::Result<Duration> {
        Ok(self.cpu_times()?.total())
    }

    /// User and system CPU time used so far by every thread of the process.
    pub fn cpu_times(&self) -> io::Result<CpuTime> {
        let text = std::fs::read_to_string(self.dir.join("stat"))?;
        let (user, system) = parse_stat_ticks(&text).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/PID/stat")
        })?;
        let per_second = clock_ticks();
        Ok(CpuTime {
            user: ticks_to_duration(user, per_second),
            system: ticks_to_duration(system, per_second),
        })
    }

    /// Current and peak resident memory.
    pub fn memory(&self) -> io::Result<Memory> {
        let text = std::fs::read_to_string(self.dir.join("status"))?;
        let field = |name| {
            status_kib(&text, name).ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, format!("no {name} in /proc/PID/status"))
            })
        };
        Ok(Memory { rss_kib: field("VmRSS")?, peak_kib: field("VmHWM")? })
    }
}

/// `(utime, stime)`, in clock ticks, from the text of `/proc/PID/stat`.
///
/// The second field is the command name in parentheses, which may itself hold spaces and
/// parentheses, so fields are counted from the last `)`: what follows it starts at field 3
/// (`state`), making `utime` (field 14) the 12th and `stime` (field 15) the 13th.
pub fn parse_stat_ticks(text: &str) -> Option<(u64, u64)> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user, system))
}

/// The value in KiB of a `Name:   1234 kB` line of `/proc/PID/status`.
pub fn status_kib(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let per_second = per_second.max(1);
    let nanos_per_tick = 1_000_000_000 / per_second;
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * nanos_per_tick)
}

/// Clock ticks per second (`getconf CLK_TCK`), read once.
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|ticks| *ticks > 0)
            .unwrap_or(DEFAULT_CLOCK_TICKS)
    })
}

/// KiB as MiB, for reports.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_utime_and_stime() {
        let line = "4242 (meshtrace) S 1 4242 4242 0 -1 4194560 2011 0 0 0 1234 567 0 0 20 0 6 0 \
                    99 1 2 3";
        assert_eq!(parse_stat_ticks(line), Some((1234, 567)));
    }

    #[test]
    fn cpu_time_differences_keep_the_split() {
        let earlier =
            CpuTime { user: Duration::from_millis(100), system: Duration::from_millis(50) };
        let later =
            CpuTime { user: Duration::from_millis(130), system: Duration::from_millis(120) };
        let used = later.since(&earlier);
        assert_eq!(used.user, Duration::from_millis(30));
        assert_eq!(used.system, Duration::from_millis(70));
        assert_eq!(used.total(), Duration::from_millis(100));
        assert_eq!(earlier.since(&later), CpuTime::default());
    }

    #[test]
    fn stat_command_names_may_hold_spaces_and_parentheses() {
        let line = "7 (we ird) (name)) R 1 7 7 0 -1 0 0 0 0 0 10 20 0 0 20 0 1 0 5 6 7";
        assert_eq!(parse_stat_ticks(line), Some((10, 20)));
        assert_eq!(parse_stat_ticks("7 (truncated) R 1 2"), None);
        assert_eq!(parse_stat_ticks("no parenthesis"), None);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let text =
            "Name:\tmeshtrace\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\n";
        assert_eq!(status_kib(text, "VmHWM"), Some(40960));
        assert_eq!(status_kib(text, "VmRSS"), Some(30720));
        assert_eq!(status_kib(text, "VmSwap"), None);
        assert_eq!(mib(40960), 40.0);
    }

    #[test]
    fn ticks_convert_at_any_rate() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
        assert_eq!(ticks_to_duration(5, 0), Duration::from_secs(5));
    }

    #[test]
    fn this_process_can_be_read() {
        let this = Proc::current();
        let times = this.cpu_times().unwrap();
        assert!(this.cpu_time().unwrap() >= times.total());
        let memory = this.memory().unwrap();
        assert!(memory.peak_kib >= memory.rss_kib);
    }
}
