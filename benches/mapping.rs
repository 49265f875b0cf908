//! Mapping cost against JSON parsing cost, on the LeadSquared lead-create webhook:
//! evaluating the example mapping on an already parsed record should cost no more than
//! `serde_json::from_slice` of the same body.
//!
//! `cargo bench --bench mapping -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use webengage_bridge::mapping::SourceMapping;
use webengage_bridge::webengage::types::{AttributeTypes, TypeCheck};

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let yaml = std::fs::read_to_string(root.join("leadsquared.yaml")).expect("mapping");
    let mapping =
        SourceMapping::from_yaml_str(Path::new("leadsquared.yaml"), &yaml).expect("loads");
    let body =
        std::fs::read(root.join("mappings/tests/fixtures/lsq_lead_create.json")).expect("fixture");
    let record: Value = serde_json::from_slice(&body).expect("json");
    let now = jiff::Timestamp::UNIX_EPOCH;
    let mapped = mapping.map_record(&record, now);
    assert_eq!(mapped.operations.len(), 2, "{:?}", mapped);

    let mut group = c.benchmark_group("lsq_lead_create");
    group.bench_function("serde_json::from_slice", |b| {
        b.iter(|| serde_json::from_slice::<Value>(black_box(&body)))
    });
    group.bench_function("map_record", |b| {
        b.iter(|| mapping.map_record(black_box(&record), now))
    });
    // The same mapping without its two phone transforms, to see what phones cost (half of
    // the mapping through the phonenumber crate's own calls; a few percent now, see
    // src/mapping/phone.rs). `examples/map_profile.rs` counts instructions and
    // allocations, and times parse and map in alternating blocks (`--race`).
    let no_phone_yaml = yaml.replace(
        "transform: [{ phone: { default_region: IN } }]",
        "transform: [trim]",
    );
    assert_ne!(no_phone_yaml, yaml);
    let no_phone =
        SourceMapping::from_yaml_str(Path::new("leadsquared.yaml"), &no_phone_yaml).expect("loads");
    group.bench_function("map_record_without_phone_transforms", |b| {
        b.iter(|| no_phone.map_record(black_box(&record), now))
    });
    group.bench_function("map_record_explained", |b| {
        b.iter(|| mapping.map_record_explained(black_box(&record), now))
    });
    // The attribute types of one record, checked against what it introduced itself.
    let check_types = |known: &AttributeTypes, m: &mut webengage_bridge::mapping::MappedRecord| {
        let mut check = TypeCheck::new(known);
        check.check(&mut m.operations, &mut m.warnings);
        check.into_new()
    };
    let known: AttributeTypes = check_types(&AttributeTypes::new(), &mut mapped.clone())
        .into_iter()
        .collect();
    group.bench_function("check_types", |b| {
        b.iter_batched(
            || mapped.clone(),
            |mut m| check_types(black_box(&known), &mut m),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
