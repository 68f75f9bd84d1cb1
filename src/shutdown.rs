//! Shutdown signal shared by async tasks and plain threads.
//!
//! Dropping the single [`Sender`] is the signal (as in moonfire-nvr's
//! `base/shutdown.rs`): no "forgot to send" bugs, and a panic that unwinds
//! through the owner stops everything. Receivers can poll ([`Receiver::check`]),
//! await ([`Receiver::wait`]) inside `tokio::select!`, or block with a bound
//! ([`Receiver::wait_for`]) on threads that must not `thread::sleep`.
//! `tokio::sync::watch` covers the async side only, hence this small type.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    down: Mutex<bool>,
    cond: Condvar,
    notify: tokio::sync::Notify,
}

/// Owner side; dropping it requests shutdown.
pub struct Sender(Arc<Inner>);

/// Observer side; cheap to clone.
#[derive(Clone)]
pub struct Receiver(Arc<Inner>);

/// Creates a connected sender/receiver pair.
pub fn channel() -> (Sender, Receiver) {
    let inner = Arc::new(Inner::default());
    (Sender(inner.clone()), Receiver(inner))
}

impl Drop for Sender {
    fn drop(&mut self) {
        *self
            .0
            .down
            .lock()
            .expect("shutdown mutex is never poisoned") = true;
        self.0.cond.notify_all();
        self.0.notify.notify_waiters();
    }
}

impl Receiver {
    /// True once shutdown was requested.
    pub fn check(&self) -> bool {
        *self
            .0
            .down
            .lock()
            .expect("shutdown mutex is never poisoned")
    }

    /// Resolves once shutdown was requested.
    pub async fn wait(&self) {
        loop {
            // Register interest before checking, so a drop in between is not missed.
            let notified = self.0.notify.notified();
            if self.check() {
                return;
            }
            notified.await;
        }
    }

    /// Blocks up to `timeout`; returns true if shutdown was requested.
    pub fn wait_for(&self, timeout: Duration) -> bool {
        let guard = self
            .0
            .down
            .lock()
            .expect("shutdown mutex is never poisoned");
        let (guard, _) = self
            .0
            .cond
            .wait_timeout_while(guard, timeout, |down| !*down)
            .expect("shutdown mutex is never poisoned");
        *guard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_wait_returns_on_drop() {
        let (tx, rx) = channel();
        assert!(!rx.wait_for(Duration::from_millis(10)));
        let t = std::thread::spawn(move || rx.wait_for(Duration::from_secs(30)));
        drop(tx);
        assert!(t.join().unwrap());
    }

    #[tokio::test]
    async fn async_wait_returns_on_drop() {
        let (tx, rx) = channel();
        let t = tokio::spawn(async move { rx.wait().await });
        tokio::task::yield_now().await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .expect("wait() should resolve after the sender is dropped")
            .unwrap();
    }
}
