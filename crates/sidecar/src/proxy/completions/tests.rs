use std::sync::{Arc, Mutex};
use std::task::Context;
use std::time::Duration;

use http::HeaderValue;

use super::*;
use crate::observe::ResponseView;

/// What a [`Noted`] observation was told, in order, across observations.
type Log = Arc<Mutex<Vec<String>>>;

struct Noted {
    name: &'static str,
    log: Log,
}

impl Observation for Noted {
    fn response(&mut self, _response: &mut ResponseView<'_>) {}

    fn complete(self: Box<Self>, completion: &Completion<'_>) {
        let grpc_status = completion
            .trailers
            .and_then(|trailers| trailers.get("grpc-status"))
            .and_then(|value| value.to_str().ok())
            .unwrap_or("-");
        self.log.lock().unwrap().push(format!(
            "{} {}/{} {} {:?} grpc-status {grpc_status}",
            self.name,
            completion.request_body_bytes,
            completion.response_body_bytes,
            completion.response_flags,
            completion.duration,
        ));
    }
}

struct Panicking;

impl Observation for Panicking {
    fn response(&mut self, _response: &mut ResponseView<'_>) {}

    fn complete(self: Box<Self>, _completion: &Completion<'_>) {
        panic!("observer bug");
    }
}

fn noted(name: &'static str, log: &Log) -> Box<dyn Observation> {
    Box::new(Noted { name, log: log.clone() })
}

fn completion(trailers: Option<&HeaderMap>) -> Completion<'_> {
    Completion {
        request_body_bytes: 3,
        response_body_bytes: 5,
        response_head_bytes: 0,
        trailers,
        response_flags: "UC",
        duration: Duration::from_millis(7),
    }
}

fn logged(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Spawns this thread's completing task and lets it register its queue.
async fn start_runner() -> tokio::task::JoinHandle<()> {
    let runner = tokio::spawn(run());
    tokio::task::yield_now().await;
    runner
}

#[test]
fn off_a_worker_an_observation_completes_at_once() {
    let log = Log::default();
    complete(noted("a", &log), &completion(None));
    assert_eq!(logged(&log), ["a 3/5 UC 7ms grpc-status -"]);
}

#[tokio::test(flavor = "current_thread")]
async fn on_a_worker_observations_complete_once_the_ending_task_has_yielded() {
    let log = Log::default();
    let runner = start_runner().await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("14"));
    complete(noted("a", &log), &completion(Some(&trailers)));
    complete(noted("b", &log), &completion(None));
    // Still this task's turn: the response would be written now, and nothing completed yet.
    drop(trailers);
    log.lock().unwrap().push("flushed".to_owned());
    tokio::task::yield_now().await;
    assert_eq!(
        logged(&log),
        ["flushed", "a 3/5 UC 7ms grpc-status 14", "b 3/5 UC 7ms grpc-status -"],
        "completed after the yield, in order, with what the exchange ended with",
    );
    // The runner waits for more, and takes it on the next yield.
    complete(noted("c", &log), &completion(None));
    tokio::task::yield_now().await;
    assert_eq!(logged(&log).len(), 4, "{:?}", logged(&log));
    runner.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_observation_does_not_stop_the_others() {
    let log = Log::default();
    let runner = start_runner().await;
    complete(Box::new(Panicking), &completion(None));
    complete(noted("after", &log), &completion(None));
    tokio::task::yield_now().await;
    assert_eq!(logged(&log), ["after 3/5 UC 7ms grpc-status -"]);
    complete(noted("later", &log), &completion(None));
    tokio::task::yield_now().await;
    assert_eq!(logged(&log).len(), 2, "the runner survived the panic: {:?}", logged(&log));
    runner.abort();
}

#[test]
fn what_is_left_completes_when_the_worker_stops() {
    let log = Log::default();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        start_runner().await;
        complete(noted("queued", &log), &completion(None));
        // The runtime stops before the runner's next turn.
    });
    assert!(logged(&log).is_empty(), "not completed while the worker ran on: {:?}", logged(&log));
    drop(runtime);
    assert_eq!(logged(&log), ["queued 3/5 UC 7ms grpc-status -"]);
    // The thread has no queue any more: what ends now completes at once.
    complete(noted("after", &log), &completion(None));
    assert_eq!(logged(&log).len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_second_runner_on_the_same_thread_leaves_the_first_in_charge() {
    let log = Log::default();
    let first = start_runner().await;
    tokio::spawn(run()).await.unwrap();
    complete(noted("a", &log), &completion(None));
    assert!(logged(&log).is_empty(), "queued: the first runner still holds the queue");
    tokio::task::yield_now().await;
    assert_eq!(logged(&log).len(), 1);
    first.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn what_ends_in_a_connection_poll_completes_when_that_poll_returns() {
    let log = Log::default();
    let runner = start_runner().await;
    let in_poll = log.clone();
    let mut connection = std::pin::pin!(after_each_poll(async move {
        complete(noted("a", &in_poll), &completion(None));
        // hyper writes and flushes the response in the same poll.
        in_poll.lock().unwrap().push("flushed".to_owned());
        std::future::pending::<()>().await;
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(connection.as_mut().poll(&mut cx).is_pending());
    // This task has not yielded: the runner cannot have run, the wrapper completed it.
    assert_eq!(logged(&log), ["flushed", "a 3/5 UC 7ms grpc-status -"]);
    runner.abort();
}

#[tokio::test(flavor = "current_thread")]
async fn a_panicking_connection_poll_leaves_the_runner_in_charge_again() {
    let log = Log::default();
    let runner = start_runner().await;
    let mut connection = Box::pin(after_each_poll(async { panic!("connection bug") }));
    let mut cx = Context::from_waker(Waker::noop());
    let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = connection.as_mut().poll(&mut cx);
    }));
    assert!(polled.is_err());
    // Outside any connection again: the runner must be woken for this one.
    complete(noted("after", &log), &completion(None));
    tokio::task::yield_now().await;
    assert_eq!(logged(&log), ["after 3/5 UC 7ms grpc-status -"]);
    runner.abort();
}

#[test]
fn the_wrapper_holds_the_connection_once() {
    // A future that keeps 4 KiB across an await, as a connection's keeps hyper's state.
    let connection = async {
        let state = [7u8; 4096];
        tokio::task::yield_now().await;
        state.len()
    };
    let size = std::mem::size_of_val(&connection);
    assert!(size >= 4096);
    let wrapped = after_each_poll(connection);
    assert_eq!(std::mem::size_of_val(&wrapped), size, "the wrapper adds nothing to what it wraps");
}
