//! Runs the LeadSquared example mapping on `lsq_lead_create.json` N times, for profiles
//! whose counts do not depend on machine load:
//!
//! `valgrind --tool=callgrind target/release/examples/map_profile 2000`
//!
//! `--no-phone` swaps the phone transforms for `trim`, as the criterion bench does;
//! `--parse` runs `serde_json::from_slice` of the body instead, for comparison;
//! `--race` times both in alternating blocks (`map_profile 300 --race`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use webengage_bridge::mapping::SourceMapping;

/// Counts allocations: each one costs about as much as evaluating a simple field.
/// A plain load and store, not an atomic add: this program has one thread, and a locked
/// add per allocation would weigh on the timings of `--race`.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.store(ALLOCS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.store(ALLOCS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mut yaml = std::fs::read_to_string(root.join("leadsquared.yaml")).expect("mapping");
    if args.iter().any(|a| a == "--no-phone") {
        yaml = yaml.replace(
            "transform: [{ phone: { default_region: IN } }]",
            "transform: [trim]",
        );
    }
    let mapping =
        SourceMapping::from_yaml_str(Path::new("leadsquared.yaml"), &yaml).expect("loads");
    let body =
        std::fs::read(root.join("mappings/tests/fixtures/lsq_lead_create.json")).expect("fixture");
    let record: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let now = jiff::Timestamp::UNIX_EPOCH;
    // One run outside the loop, so lazily built tables are not counted per record.
    assert_eq!(mapping.map_record(&record, now).operations.len(), 2);
    if args.iter().any(|a| a == "--race") {
        race(
            n,
            || {
                black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok());
            },
            || {
                black_box(mapping.map_record(black_box(&record), now));
            },
        );
        return;
    }
    let before = ALLOCS.load(Ordering::Relaxed);
    if args.iter().any(|a| a == "--parse") {
        for _ in 0..n {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok());
        }
    } else {
        for _ in 0..n {
            black_box(mapping.map_record(black_box(&record), now));
        }
    }
    let each = (ALLOCS.load(Ordering::Relaxed) - before) / n.max(1);
    println!("{each} allocations each");
}

/// `--race`: parse and map in alternating blocks of 1,000, `n` blocks each, and the
/// median block of each. On a shared, loaded machine criterion's groups run minutes
/// apart under different loads; alternating blocks see the same load.
fn race(n: usize, mut parse: impl FnMut(), mut map: impl FnMut()) {
    let block = |f: &mut dyn FnMut()| {
        let start = std::time::Instant::now();
        for _ in 0..1000 {
            f();
        }
        start.elapsed().as_secs_f64() * 1e3 // µs per call
    };
    let (mut parses, mut maps) = (Vec::new(), Vec::new());
    for _ in 0..n.max(1) {
        parses.push(block(&mut parse));
        maps.push(block(&mut map));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (p, m) = (median(&mut parses), median(&mut maps));
    println!(
        "from_slice {p:.2} µs, map_record {m:.2} µs, ratio {:.2}",
        m / p
    );
}
