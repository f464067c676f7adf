//! Signing cost at hash-bin scale (issue: foundation performance).
//!
//! - `snapshot_16384`: canonical encoding plus one ed25519 signature of a snapshot that lists
//!   16,384 bins, plus the storage encoding of the signed document.
//! - `snapshot_16384_unsigned`: the same through `Unsigned` (one JSON conversion), as the
//!   engine does it.
//! - `empty_bins_16384`: building, canonically encoding, signing (ed25519) and storage-encoding
//!   16,384 empty bin roles, on one thread.
//! - `ed25519_sign_only_16384`: the 16,384 signatures alone, to show what bounds the above.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rstuf_metadata::keys::PrivateKey;
use rstuf_metadata::schema::{Expires, MetaFile, Metadata, Signature, Snapshot, Targets, Unsigned};
use rstuf_metadata::succinct::SuccinctRoles;

const BINS: u64 = 16_384;

fn bins() -> SuccinctRoles {
    SuccinctRoles {
        keyids: vec!["k".into()],
        threshold: 1,
        bit_length: SuccinctRoles::bit_length_for_bins(BINS).expect("valid"),
        name_prefix: "bins".into(),
        unrecognized: BTreeMap::new(),
    }
}

fn bench(c: &mut Criterion) {
    let key = PrivateKey::generate_ed25519();
    let keyid = key.public_key().compute_keyid();
    let expires = Expires::at(Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap());
    let names: Vec<String> = bins().role_names().collect();
    assert_eq!(names.len() as u64, BINS);

    let mut meta = BTreeMap::new();
    for name in &names {
        meta.insert(format!("{name}.json"), MetaFile::version_only(1));
    }
    meta.insert("targets.json".into(), MetaFile::version_only(1));
    let snapshot = Snapshot::new(1, expires, meta);

    let mut group = c.benchmark_group("signing");
    group.sample_size(10);
    group.bench_function("snapshot_16384_canonical_sign_store", |b| {
        b.iter(|| {
            let mut md = Metadata::new(snapshot.clone());
            md.sign_with(&keyid, |m| key.sign(m)).unwrap();
            md.to_storage_bytes().unwrap()
        })
    });
    group.bench_function("snapshot_16384_unsigned_sign_store", |b| {
        b.iter(|| {
            let unsigned = Unsigned::new(snapshot.clone()).unwrap();
            let sig = key.sign(unsigned.payload()).unwrap();
            unsigned
                .finish(vec![Signature::new(keyid.clone(), &sig)])
                .unwrap()
                .1
        })
    });
    group.bench_function("empty_bins_16384_build_sign_store", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for _ in &names {
                let mut md = Metadata::new(Targets::new(1, expires));
                md.sign_with(&keyid, |m| key.sign(m)).unwrap();
                total += md.to_storage_bytes().unwrap().len();
            }
            total
        })
    });
    // The floor under the previous case: the 16,384 ed25519 signatures alone.
    let payload = Metadata::new(Targets::new(1, expires))
        .signed_bytes()
        .unwrap();
    group.bench_function("ed25519_sign_only_16384", |b| {
        b.iter(|| {
            let mut total = 0usize;
            for _ in 0..BINS {
                total += key.sign(&payload).unwrap().len();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
