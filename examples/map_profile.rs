//! Runs the LeadSquared example mapping on `lsq_lead_create.json` N times, for profiles
//! whose counts do not depend on machine load:
//!
//! `valgrind --tool=callgrind target/release/examples/map_profile 2000`
//!
//! `--no-phone` swaps the phone transforms for `trim`, as the criterion bench does.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use webengage_bridge::mapping::SourceMapping;

/// Counts allocations: each one costs about as much as evaluating a simple field.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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
    let body = std::fs::read(root.join("tests/fixtures/lsq_lead_create.json")).expect("fixture");
    let record: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let now = jiff::Timestamp::UNIX_EPOCH;
    // One run outside the loop, so lazily built tables are not counted per record.
    assert_eq!(mapping.map_record(&record, now).operations.len(), 2);
    let before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..n {
        black_box(mapping.map_record(black_box(&record), now));
    }
    let per_record = (ALLOCS.load(Ordering::Relaxed) - before) / n.max(1);
    println!("map_record: {per_record} allocations a record");
    if args.iter().any(|a| a == "--parse") {
        let before = ALLOCS.load(Ordering::Relaxed);
        for _ in 0..n {
            black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).ok());
        }
        let per_parse = (ALLOCS.load(Ordering::Relaxed) - before) / n.max(1);
        println!("from_slice: {per_parse} allocations a body");
    }
}
