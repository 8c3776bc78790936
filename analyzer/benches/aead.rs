//! The AEADs of TLS 1.3 handshake decryption, ring (what `tls::decrypt` uses) against the
//! RustCrypto crates (`aes-gcm`, `chacha20poly1305`), side by side in one run: opening one
//! record of 1 KiB and of 4 KiB (a Certificate record of a 2-3 certificate chain) with
//! AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305. `cargo bench -p analyzer --bench aead`
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ring::aead::{self as raead, Aad, LessSafeKey, Nonce, UnboundKey};

const NONCE: [u8; 12] = [7; 12];
const AAD: [u8; 5] = [23, 3, 3, 0, 0];

/// A record sealed by ring under `alg` with a key of `key_len` bytes: (key, ciphertext+tag).
fn sealed(alg: &'static raead::Algorithm, len: usize) -> (Vec<u8>, Vec<u8>) {
    let key: Vec<u8> = (0..alg.key_len() as u8).collect();
    let k = LessSafeKey::new(UnboundKey::new(alg, &key).unwrap());
    let mut data = vec![0x5a; len];
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(NONCE),
        Aad::from(AAD),
        &mut data,
    )
    .unwrap();
    (key, data)
}

fn ring_open(alg: &'static raead::Algorithm, key: &[u8], ct: &[u8]) -> usize {
    let k = LessSafeKey::new(UnboundKey::new(alg, key).unwrap());
    let mut buf = ct.to_vec();
    k.open_in_place(
        Nonce::assume_unique_for_key(NONCE),
        Aad::from(AAD),
        &mut buf,
    )
    .unwrap()
    .len()
}

fn rustcrypto_open<A: aes_gcm::aead::Aead + aes_gcm::aead::KeyInit>(
    key: &[u8],
    ct: &[u8],
) -> usize {
    let c = A::new_from_slice(key).unwrap();
    let payload = aes_gcm::aead::Payload { msg: ct, aad: &AAD };
    c.decrypt(
        aes_gcm::aead::generic_array::GenericArray::from_slice(&NONCE),
        payload,
    )
    .unwrap()
    .len()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead_open");
    g.measurement_time(Duration::from_secs(3));
    for len in [1024usize, 4096] {
        g.throughput(Throughput::Bytes(len as u64));
        let suites: [(&str, &'static raead::Algorithm); 3] = [
            ("aes128gcm", &raead::AES_128_GCM),
            ("aes256gcm", &raead::AES_256_GCM),
            ("chacha20poly1305", &raead::CHACHA20_POLY1305),
        ];
        for (name, alg) in suites {
            let (key, ct) = sealed(alg, len);
            // Both must open the same record (the comparison is of equals).
            let theirs = match name {
                "aes128gcm" => rustcrypto_open::<aes_gcm::Aes128Gcm>(&key, &ct),
                "aes256gcm" => rustcrypto_open::<aes_gcm::Aes256Gcm>(&key, &ct),
                _ => rustcrypto_open::<chacha20poly1305::ChaCha20Poly1305>(&key, &ct),
            };
            assert_eq!(ring_open(alg, &key, &ct), theirs);
            g.bench_with_input(
                BenchmarkId::new(format!("ring/{name}"), len),
                &ct,
                |b, ct| b.iter(|| ring_open(alg, black_box(&key), black_box(ct))),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("rustcrypto/{name}"), len),
                &ct,
                |b, ct| {
                    b.iter(|| match name {
                        "aes128gcm" => {
                            rustcrypto_open::<aes_gcm::Aes128Gcm>(black_box(&key), black_box(ct))
                        }
                        "aes256gcm" => {
                            rustcrypto_open::<aes_gcm::Aes256Gcm>(black_box(&key), black_box(ct))
                        }
                        _ => rustcrypto_open::<chacha20poly1305::ChaCha20Poly1305>(
                            black_box(&key),
                            black_box(ct),
                        ),
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
