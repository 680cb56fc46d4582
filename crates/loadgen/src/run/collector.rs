//! The collector process: started with the generated (or given) config, its ports read from
//! its log, stopped with SIGTERM.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;

use super::collector_log::{LogEvent, LogTail, parse_log_line};
use super::config::SINK_VARIABLE;
use crate::Protocol;

/// How long the collector may take to log `everything is ready`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the collector may take to exit after SIGTERM before it is killed.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);

/// A running collector process; killed if dropped before [`Collector::stop`].
pub(super) struct Collector {
    child: Child,
    log: Arc<Mutex<LogTail>>,
    receivers: Vec<(String, SocketAddr)>,
    pub(super) metrics: Option<SocketAddr>,
    stopped: bool,
}

impl Collector {
    /// Starts `binary collector --config CONFIG` and waits until it is ready.
    pub(super) async fn start(
        binary: &Path,
        config: &Path,
        sink: SocketAddr,
    ) -> anyhow::Result<Collector> {
        let mut child = Command::new(binary)
            .arg("collector")
            .arg("--config")
            .arg(config)
            .env(SINK_VARIABLE, sink.to_string())
            // The log lines announcing the ports are at info level.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let log = Arc::new(Mutex::new(LogTail::default()));
        let (events, mut received) = mpsc::unbounded_channel();
        let tail = log.clone();
        std::thread::Builder::new()
            .name("collector-log".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(event) = parse_log_line(&line) {
                        let _ = events.send(event);
                    }
                    tail.lock().unwrap_or_else(PoisonError::into_inner).push(&line);
                }
            })
            .context("cannot start the log reader")?;
        let mut collector =
            Collector { child, log, receivers: Vec::new(), metrics: None, stopped: false };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let event = tokio::time::timeout_at(deadline.into(), received.recv()).await;
            match event {
                Ok(Some(LogEvent::Ready)) => break,
                Ok(Some(LogEvent::Listening { protocol, address })) => {
                    collector.receivers.push((protocol, address))
                }
                Ok(Some(LogEvent::Metrics(address))) => collector.metrics = Some(address),
                Ok(None) => {
                    // The log closed: the collector exited. Give the reader a moment to finish.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let status = collector.child.try_wait().ok().flatten();
                    bail!(
                        "the collector exited before it was ready ({status:?}):\n{}",
                        collector.tail()
                    );
                }
                Err(_) => bail!(
                    "the collector was not ready within {STARTUP_TIMEOUT:?}:\n{}",
                    collector.tail()
                ),
            }
        }
        eprintln!(
            "collector ready: pid {}, receivers {:?}, metrics {:?}",
            collector.pid(),
            collector.receivers,
            collector.metrics
        );
        Ok(collector)
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address the otlp receiver bound for `protocol`.
    pub(super) fn receiver(&self, protocol: Protocol) -> anyhow::Result<SocketAddr> {
        self.receivers
            .iter()
            .find(|(name, _)| name == protocol.as_str())
            .map(|(_, address)| *address)
            .with_context(|| {
                format!(
                    "the collector logged no {} receiver address:\n{}",
                    protocol.as_str(),
                    self.tail()
                )
            })
    }

    fn tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.last.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }

    pub(super) fn log_summary(&self) -> String {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let mut summary = format!("{} warnings, {} errors", log.warnings, log.errors);
        for line in &log.first_problems {
            let _ = write!(summary, "\n    {line}");
        }
        summary
    }

    /// SIGTERM, then SIGKILL after [`SHUTDOWN_TIMEOUT`]; says how it ended.
    pub(super) async fn stop(&mut self) -> String {
        self.stopped = true;
        let began = Instant::now();
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            while began.elapsed() < SHUTDOWN_TIMEOUT {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return format!(
                        "exited after SIGTERM in {:.2} s ({status})",
                        began.elapsed().as_secs_f64()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("did not exit after SIGTERM within {SHUTDOWN_TIMEOUT:?}: killed")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
