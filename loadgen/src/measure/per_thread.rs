//! One value per thread, reachable from the thread without contention and from a collector.
//!
//! The hot paths (one call per received message) must not share a lock or a cache line
//! between threads, yet the totals must be readable at the end, even for threads that have
//! exited. So every thread gets its own `Arc<Mutex<T>>`: the thread locks it for each update
//! (an uncontended lock is one atomic operation), and the owner keeps a registry of all of them
//! to fold them together. The registry's lock is taken once per thread and per owner, when the
//! thread first records; the per-thread mutex is contended only while a collector reads it.
//!
//! Several owners can live side by side (tests create their own), so the thread-local maps an
//! owner id to its value.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Distinguishes owners in the thread-local map; ids are never reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Erased = Arc<dyn Any + Send + Sync>;

thread_local! {
    /// (owner id, that owner's `Arc<Mutex<T>>` for this thread). Usually one or two entries.
    static SLOTS: RefCell<Vec<(u64, Erased)>> = const { RefCell::new(Vec::new()) };
}

/// Locks, ignoring poisoning: every value guarded here (counters, histograms) stays consistent
/// between single updates, so a panic elsewhere must not take the measurements down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `T` per thread, created on first use with `init`.
pub(crate) struct PerThread<T> {
    id: u64,
    init: fn() -> T,
    all: Mutex<Vec<Arc<Mutex<T>>>>,
}

impl<T: Send + 'static> PerThread<T> {
    pub(crate) fn new(init: fn() -> T) -> Self {
        PerThread {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            init,
            all: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on this thread's value.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mine = self.local();
        let mut guard = lock(&mine);
        f(&mut guard)
    }

    /// Runs `f` on every thread's value in turn (threads that exited included).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut T)) {
        let all: Vec<Arc<Mutex<T>>> = lock(&self.all).clone();
        for value in &all {
            f(&mut lock(value));
        }
    }

    /// This thread's value, registering it on first use. Cloning the `Arc` (an atomic
    /// increment) instead of borrowing keeps the thread-local free while `f` runs, so `f` may
    /// itself record into another owner.
    fn local(&self) -> Arc<Mutex<T>> {
        let found = SLOTS.with(|slots| {
            let slots = slots.borrow();
            slots
                .iter()
                .find(|(id, _)| *id == self.id)
                .and_then(|(_, erased)| Arc::clone(erased).downcast::<Mutex<T>>().ok())
        });
        found.unwrap_or_else(|| self.register())
    }

    fn register(&self) -> Arc<Mutex<T>> {
        let value = Arc::new(Mutex::new((self.init)()));
        lock(&self.all).push(Arc::clone(&value));
        let erased: Erased = value.clone();
        SLOTS.with(|slots| slots.borrow_mut().push((self.id, erased)));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_gets_its_own_value_and_the_owner_sees_all() {
        let counts = Arc::new(PerThread::new(|| 0u64));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counts.with(|c| *c += 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let mut values = Vec::new();
        counts.for_each(|c| values.push(*c));
        assert_eq!(values, vec![1000; 4]);
    }

    #[test]
    fn owners_do_not_mix_and_may_nest() {
        let a = PerThread::new(|| 0u32);
        let b = PerThread::new(|| 0u32);
        a.with(|x| {
            *x += 1;
            b.with(|y| *y += 10);
        });
        let (mut sa, mut sb) = (0, 0);
        a.for_each(|x| sa += *x);
        b.for_each(|y| sb += *y);
        assert_eq!((sa, sb), (1, 10));
    }
}
