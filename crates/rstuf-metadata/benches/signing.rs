//! Signing cost at hash-bin scale (issue: foundation performance).
//!
//! - `snapshot_16384`: canonical encoding plus one ed25519 signature of a snapshot that lists
//!   16,384 bins, plus the storage encoding of the signed document.
//! - `snapshot_16384_unsigned`: the same through `Unsigned` (one JSON conversion), as the
//!   engine does it.
//! - `empty_bins_16384`: building, canonically encoding, signing (ed25519) and storage-encoding
//!   16,384 empty bin roles, on one thread.
//! - `ed25519_sign_only_16384`: the 16,384 signatures alone, to show what bounds the above.
//! - `bin_patch_62_*`: one bin of a 1,000,000-artifact repository (62 artifacts, about 10 KB
//!   stored) given one more artifact, as a publication does it, and each step of it: parse
//!   the stored bytes, canonical encoding, signature, storage encoding; and the same straight
//!   from the stored bytes (`_from_stored`: no model, see `resign.rs`).

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use rstuf_metadata::keys::PrivateKey;
use rstuf_metadata::schema::{
    Expires, MetaFile, Metadata, Signature, Signed, Snapshot, Targets, Unsigned,
};
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

// Longer than 120 lines: a dozen benchmarks of encoding and signing steps, all measured on
// the same 16,384-bin snapshot and bins built at the top.
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

    // One bin of a 1,000,000-artifact repository in 16,384 bins.
    let mut bin = Targets::new(7, expires);
    for i in 0..62u64 {
        let path = format!("bench/{}/artifact-{}.tar.gz", i * 977 % 1000, i * 16_411);
        bin.targets.insert(path, target_file(i));
    }
    let mut md = Metadata::new(bin);
    md.sign_with(&keyid, |m| key.sign(m)).unwrap();
    let stored = md.to_storage_bytes().unwrap();
    let patch = |stored: &[u8]| {
        let mut signed = Metadata::<Targets>::from_stored_bytes(stored)
            .unwrap()
            .signed;
        signed
            .targets
            .insert("bench/500/artifact-new.tar.gz".into(), target_file(99));
        signed.set_version_and_expires(8, expires);
        signed
    };
    let mut group = c.benchmark_group("bin_patch");
    group.bench_function("bin_patch_62_whole", |b| {
        b.iter(|| {
            let unsigned = Unsigned::new(patch(&stored)).unwrap();
            let sig = key.sign(unsigned.payload()).unwrap();
            unsigned
                .finish(vec![Signature::new(keyid.clone(), &sig)])
                .unwrap()
                .1
        })
    });
    // The same from the stored bytes (what a publication does when it can).
    let new_entry = rstuf_metadata::direct::to_canonical(&target_file(99)).unwrap();
    let changes = [("bench/500/artifact-new.tar.gz", Some(&new_entry[..]))];
    group.bench_function("bin_patch_62_from_stored", |b| {
        b.iter(|| {
            let payload =
                rstuf_metadata::resign::patch_targets_payload(&stored, 8, expires, &changes)
                    .unwrap();
            let sig = key.sign(&payload).unwrap();
            rstuf_metadata::schema::storage_bytes_of(
                &payload,
                &[Signature::new(keyid.clone(), &sig)],
            )
            .unwrap()
        })
    });
    group.bench_function("bin_patch_62_from_stored_payload", |b| {
        b.iter(|| {
            rstuf_metadata::resign::patch_targets_payload(&stored, 8, expires, &changes).unwrap()
        })
    });
    group.bench_function("bin_patch_62_parse", |b| b.iter(|| patch(&stored)));
    let patched = patch(&stored);
    group.bench_function("bin_patch_62_canonical", |b| {
        b.iter(|| Unsigned::new(patched.clone()).unwrap())
    });
    let unsigned = Unsigned::new(patched.clone()).unwrap();
    group.bench_function("bin_patch_62_sign", |b| {
        b.iter(|| key.sign(unsigned.payload()).unwrap())
    });
    let sig = key.sign(unsigned.payload()).unwrap();
    group.bench_function("bin_patch_62_storage", |b| {
        b.iter(|| {
            unsigned
                .clone()
                .finish(vec![Signature::new(keyid.clone(), &sig)])
                .unwrap()
                .1
        })
    });
    group.finish();
}

fn target_file(i: u64) -> rstuf_metadata::schema::TargetFile {
    serde_json::from_value(serde_json::json!({
        "hashes": {"sha256": format!("{:064x}", i * 7919)},
        "length": i * 1013 + 17,
    }))
    .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
