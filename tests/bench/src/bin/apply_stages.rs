//! `apply_stages`: where a full IPVS apply spends its time outside the kernel, without a
//! kernel. The config of `ipvs-bench` (1,000 services x 10 reals by default) goes through
//! each stage lbd runs before and after the netlink exchange, each timed with the heap
//! allocations, the most heap it held at once and what it kept, and the minor page faults it
//! made (a fault is cheap natively and costs dearly under TCG emulation, where the
//! benchmark's figures are measured):
//!
//! 1. the config loader (parse, validate, build the model, keep what a reload needs);
//! 2. the plan against an empty kernel (desired state, drains, plan, request messages);
//! 3. bringing the kept view of the kernel up to date with every operation;
//! 4. for comparison, parsing the whole text with the `toml` crate (what validation began
//!    with before services got their own reader).
//!
//! The first round runs in a fresh process as the benchmark does; later rounds reuse the
//! memory the earlier ones freed. Times are printed, nothing is asserted.
//!
//! ```text
//! cargo run --release -p lb-bench --bin apply_stages [-- SERVICES REALS ROUNDS]
//! ```
//!
//! `LB_SKIP_TOML=1` leaves out the fourth stage (for a profile of lbd's own stages).

use lb_bench::ipvs_table::{config_text, plan_from_empty};
use lb_bench::proc_stat::minor_faults;
use lbd::config::Loader;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// The system allocator, counting what goes through it.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated and not yet freed.
static LIVE: AtomicI64 = AtomicI64::new(0);
/// The most `LIVE` reached since it was last reset.
static PEAK: AtomicI64 = AtomicI64::new(0);

fn grow(by: i64) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        grow(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        grow(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        grow(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What one stage cost.
#[derive(Clone, Copy, Default)]
struct Cost {
    time: Duration,
    allocs: u64,
    bytes: u64,
    /// Heap bytes held at the end beyond those held at the start, and the most held on the way.
    kept: i64,
    peak: i64,
    faults: u64,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let (a, b, p) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed), minor_faults());
    let live = LIVE.load(Relaxed);
    PEAK.store(live, Relaxed);
    let t = Instant::now();
    let out = f();
    let time = t.elapsed();
    let cost = Cost {
        time,
        allocs: ALLOCS.load(Relaxed) - a,
        bytes: BYTES.load(Relaxed) - b,
        kept: LIVE.load(Relaxed) - live,
        peak: PEAK.load(Relaxed) - live,
        faults: minor_faults() - p,
    };
    (out, cost)
}

fn show(name: &str, c: Cost) {
    println!(
        "  {name:<34} {:>8.2} ms {:>9} allocations {:>8} KiB (peak {:>6} KiB, kept {:>6} KiB) {:>7} faults",
        c.time.as_secs_f64() * 1000.0,
        c.allocs,
        c.bytes / 1024,
        c.peak / 1024,
        c.kept / 1024,
        c.faults
    );
}

fn round(text: &str, first: bool) {
    println!(
        "{}",
        if first {
            "first round (fresh process):"
        } else {
            "later round:"
        }
    );
    let mut loader = Loader::new();
    loader
        .parse("bench.toml", config_text(0, 0, None))
        .expect("valid");
    let (loaded, c) = measure(|| loader.parse("bench.toml", text.to_string()));
    let loaded = loaded.expect("the config is valid");
    show("config loader (what ipvs-bench times)", c);
    let (mut planned, c) = measure(|| plan_from_empty(&loaded.config));
    show("planning (desired state, plan, requests)", c);
    let (ops, c) = measure(|| planned.record());
    show(&format!("recording {ops} operations done"), c);
    drop(planned);
    if std::env::var_os("LB_SKIP_TOML").is_some() {
        return;
    }
    // For comparison, last so that it does not warm the memory the others use.
    let (tree, c) = measure(|| toml::de::DeTable::parse(text).map(|_| ()));
    tree.expect("the config is TOML");
    show("(the toml crate's spanned tree)", c);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: u32| {
        args.next()
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (services, reals, rounds) = (arg(1000), arg(10), arg(3));
    // lbd's heap policy, as in the daemon.
    let refused = lbd::heap::keep_for_reloads();
    assert!(refused.is_empty(), "the allocator refused {refused:?}");
    let text = config_text(services, reals, None);
    println!(
        "apply_stages: {services} services x {reals} reals, {} KB of config",
        text.len() / 1000
    );
    for i in 0..rounds {
        round(&text, i == 0);
    }
}
