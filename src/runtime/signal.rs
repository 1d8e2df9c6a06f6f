//! A one-shot value handed from a callback to a future: how a buffer's `map_async` callback
//! reaches the async readback. Natively the callback has run by the time the future is first
//! polled (`Gpu::wait` polls the device); in a browser it runs from the event loop later, and
//! wakes the task that awaits it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender was dropped without sending (its callback never ran and never will).
    dropped: bool,
}

/// The sending half: `send` once, from any thread.
pub struct Sender<T>(Arc<Mutex<Slot<T>>>);

/// The receiving half: a future of the value, `None` when the sender went away without one.
pub struct Receiver<T>(Arc<Mutex<Slot<T>>>);

/// A connected sender and receiver.
pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        dropped: false,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    /// Hands `value` over and wakes the receiver.
    pub fn send(self, value: T) {
        let waker = match self.0.lock() {
            Ok(mut slot) => {
                slot.value = Some(value);
                slot.waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = match self.0.lock() {
            Ok(mut slot) => {
                slot.dropped = true;
                slot.waker.take()
            }
            Err(_) => None,
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let Ok(mut slot) = self.0.lock() else {
            return Poll::Ready(None);
        };
        if let Some(v) = slot.value.take() {
            return Poll::Ready(Some(v));
        }
        if slot.dropped {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn a_value_sent_before_or_after_the_first_poll_arrives() {
        let (tx, rx) = oneshot();
        tx.send(3);
        assert_eq!(pollster::block_on(rx), Some(3));
        let (tx, rx) = oneshot();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            tx.send("late");
        });
        assert_eq!(pollster::block_on(rx), Some("late"));
        t.join().ok();
    }

    #[test]
    fn a_sender_dropped_unsent_ends_the_wait_with_none() {
        let (tx, rx) = oneshot::<u8>();
        drop(tx);
        assert_eq!(pollster::block_on(rx), None);
    }
}
