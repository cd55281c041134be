//! Stepping CartPole, alone or in a `VecEnv`, allocates nothing.
//!
//! A counting global allocator wraps the system one and counts the calls made
//! on the test's own thread (the test harness's other threads may allocate at
//! any time, which made a process-wide count flaky); the test steps for many
//! episodes (resets included) and demands the count did not move.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rlhf_env::{CartPole, Env, VecEnv};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether allocations on this thread are counted (const-initialised, so
    /// reading it never allocates).
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn action(obs: &[f32; 4], t: usize) -> usize {
    // Mostly balancing, sometimes random-ish, so episodes both run long and end.
    if t.is_multiple_of(7) { t % 2 } else { usize::from(obs[2] + 0.5 * obs[3] > 0.0) }
}

#[test]
fn stepping_does_not_allocate() {
    let mut env = CartPole::v1();
    let mut vec_env = VecEnv::from_fn(8, |_| CartPole::v1()).unwrap();
    let (mut obs, ()) = env.reset(Some(0));
    let mut actions: Vec<usize> = vec_env.reset(Some(0)).iter().map(|s| action(&s.obs, 0)).collect();
    let mut episodes = 0;

    COUNTING.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for t in 0..20_000 {
        let step = env.step(action(&obs, t)).unwrap();
        obs = if step.done() {
            episodes += 1;
            env.reset(None).0
        } else {
            step.obs
        };
        let subs = vec_env.step(&actions).unwrap();
        for (a, sub) in actions.iter_mut().zip(subs) {
            *a = action(&sub.obs, t);
        }
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(false));

    assert!(episodes > 10, "resets must be exercised too: {episodes}");
    assert_eq!(after - before, 0, "allocations during 20,000 steps");
}
