//! One value per thread, reachable from the thread without contention and from a collector.
//!
//! The hot paths (one call per received message) must not share a lock or a cache line
//! between threads, yet the totals must be readable at the end, even for threads that have
//! exited. So every thread gets its own `Mutex<T>` in a [`ThreadLocal`]: the thread locks it
//! for each update (an uncontended lock is one atomic operation), and the owner iterates over
//! all of them to fold them together. `ThreadLocal` keeps the values of exited threads until
//! the owner is dropped, and each owner has its own (tests create several side by side). A
//! thread started after another exited may take over its value: what is kept here are sums,
//! so which thread added a value does not matter.

use std::sync::{Mutex, MutexGuard, PoisonError};

use thread_local::ThreadLocal;

/// Locks, ignoring poisoning: every value guarded here (counters, histograms) stays consistent
/// between single updates, so a panic elsewhere must not take the measurements down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A `T` per thread, created on first use with `init`.
pub(crate) struct PerThread<T: Send> {
    init: fn() -> T,
    values: ThreadLocal<Mutex<T>>,
}

impl<T: Send> PerThread<T> {
    pub(crate) fn new(init: fn() -> T) -> Self {
        PerThread {
            init,
            values: ThreadLocal::new(),
        }
    }

    /// Runs `f` on this thread's value. `f` may itself record into another owner.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mine = self.values.get_or(|| Mutex::new((self.init)()));
        f(&mut lock(mine))
    }

    /// Runs `f` on every thread's value in turn (threads that exited included).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&mut T)) {
        for value in &self.values {
            f(&mut lock(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    #[test]
    fn every_thread_gets_its_own_value_and_the_owner_sees_all() {
        let counts = Arc::new(PerThread::new(|| 0u64));
        // All four alive at once: a thread started after another exited may reuse its value.
        let all_recorded = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let counts = Arc::clone(&counts);
                let all_recorded = Arc::clone(&all_recorded);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        counts.with(|c| *c += 1);
                    }
                    all_recorded.wait();
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
