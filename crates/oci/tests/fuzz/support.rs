//! What every fuzz test binary shares (each crate's `tests/fuzz/main.rs`
//! includes this file): how many cases a property runs, and a heap bound
//! around each call of a parser under test.

use proptest::test_runner::{Config, FileFailurePersistence};
use std::alloc::System;
use std::sync::{Mutex, Once};

/// Counts every heap byte of the test binary. [`bounded`] lowers its limit
/// around a parser call; an allocation past the limit fails, and Rust
/// aborts the process with "memory allocation of N bytes failed", so an
/// allocation sized by hostile input cannot pass unnoticed.
#[global_allocator]
static ALLOC: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

/// Cases per property: `PROPTEST_CASES` when set (`scripts/fuzz.sh` sets
/// thousands), else `default`, chosen so that every fuzz test together
/// stays within a few seconds per crate in `cargo test`.
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    Config {
        cases,
        // A failing case is saved beside the test file (git ignores
        // `*.proptest-regressions`) and replayed first on the next run;
        // each bug found also gets a named regression test.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..Config::default()
    }
}

/// One bounded call at a time: the allocator counts the whole process.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `f` with at most `budget` heap bytes on top of those in use. What
/// other test threads allocate meanwhile (generating inputs: kilobytes)
/// counts against it too, which a budget of megabytes absorbs.
pub fn bounded<T>(budget: usize, f: impl FnOnce() -> T) -> T {
    struct Lift;
    impl Drop for Lift {
        fn drop(&mut self) {
            let _ = ALLOC.set_limit(usize::MAX);
        }
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Reporting a panic (its message, a backtrace) needs heap of
            // its own: the bound is for the parser, not for that. Hit, it
            // made the report's allocation fail, and the failure handler
            // then waited forever on the lock the report held.
            let _ = ALLOC.set_limit(usize::MAX);
            report(info);
        }));
    });
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let _ = ALLOC.set_limit(ALLOC.allocated().saturating_add(budget));
    let _lift = Lift; // lifted before `_serial` is released, even on a panic
    f()
}

/// The budget of a parser handed a few kilobytes: far above what it needs,
/// far below an allocation sized by a number in the input.
pub const PARSER_BUDGET: usize = 64 << 20;

#[test]
fn the_heap_bound_holds() {
    // A fallible allocation past the budget fails instead of aborting,
    // which shows the limit is in force. The budgets are large, as other
    // test threads allocate meanwhile.
    let r = bounded(32 << 20, || Vec::<u8>::new().try_reserve_exact(64 << 20).is_err());
    assert!(r, "a 64 MiB allocation passed a 32 MiB budget");
    assert!(bounded(32 << 20, || Vec::<u8>::new().try_reserve_exact(1 << 20).is_ok()));
    // Checked while no other bounded call runs, which would limit it.
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    assert!(Vec::<u8>::new().try_reserve_exact(256 << 20).is_ok(), "the limit was not lifted");
}
