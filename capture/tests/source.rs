//! Sources: pcap variants, pcapng, gzip, truncation, corruption (bit flips) and slow readers.
mod common;
use capture::source::{read_file, read_from, SourceError};
use capture::{Engine, EngineConfig};
use common::*;
use std::io::{Read, Write};
use std::path::Path;
use testkit::corpus::*;
use testkit::packet::*;
use testkit::pcap::*;
use testkit::Rng;

fn collect(bytes: &[u8]) -> (Vec<(u64, u32, Vec<u8>)>, capture::source::SourceSummary) {
    let mut v = Vec::new();
    let sum = read_from(std::io::Cursor::new(bytes.to_vec()), &mut |p| {
        v.push((p.ts_ns, p.linktype, p.data.to_vec()))
    })
    .expect("readable");
    (v, sum)
}

#[test]
fn pcap_us_and_ns_both_endians() {
    let pkt = tcp(A, 1, B, 2, 3, 4, ACK, b"data");
    let ts = 1_700_000_000_123_456_789u64;
    let mut le_us = PcapWriter::new(101, false);
    le_us.packet(ts, &pkt);
    let mut le_ns = PcapWriter::new(101, true);
    le_ns.packet(ts, &pkt);
    let cases = [
        (le_us.buf, ts / 1000 * 1000),
        (le_ns.buf, ts),
        (pcap_be(101, false, ts, &pkt), ts / 1000 * 1000),
        (pcap_be(101, true, ts, &pkt), ts),
    ];
    for (i, (bytes, want)) in cases.iter().enumerate() {
        let (v, sum) = collect(bytes);
        assert_eq!(v.len(), 1, "case {i}");
        assert_eq!(v[0].0, *want, "case {i}");
        assert_eq!(v[0].1, 101);
        assert_eq!(v[0].2, pkt);
        assert!(!sum.truncated && sum.error.is_none());
    }
}

#[test]
fn pcapng_interfaces_with_own_linktypes_and_resolutions() {
    let raw = tcp(A, 1, B, 2, 3, 4, ACK, b"x");
    let mut eth = vec![0u8; 12];
    eth.extend_from_slice(&[0x08, 0x00]);
    eth.extend_from_slice(&raw);
    // Interface 0: Ethernet, µs (tsresol 6). Interface 1: raw IP, ns (9). Interface 2: 2^-10 s.
    let bytes = pcapng(
        &[(1, 6), (101, 9), (101, 0x80 | 10)],
        &[
            (0, 1_700_000_000_000_001, eth.clone()),
            (1, 1_700_000_000_000_000_002, raw.clone()),
            (2, 3 * 1024 + 512, raw.clone()),
            (7, 5, raw.clone()), // unknown interface: skipped, counted
        ],
    );
    let (v, sum) = collect(&bytes);
    assert_eq!(
        v.len(),
        3,
        "{:?} {:?}",
        v.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
        sum
    );
    assert_eq!(v[0].0, 1_700_000_000_000_001_000);
    assert_eq!(v[0].1, 1);
    assert_eq!(v[1].0, 1_700_000_000_000_000_002);
    assert_eq!(v[1].1, 101);
    assert_eq!(v[2].0, 3_500_000_000);
    assert_eq!(sum.skipped, 1);
    // Both link types decode to the same flow.
    let mut e = Engine::new(EngineConfig::default(), Recorder::default());
    read_from(std::io::Cursor::new(bytes), &mut |p| e.process(p)).unwrap();
    let (app, st) = e.finish();
    assert!(st.decode_problems.is_empty(), "{:?}", st.decode_problems);
    assert_eq!(app.done.len(), 1);
}

#[test]
fn gzip_detected_by_magic() {
    let raw = zeek_bytes("tls1.2.pcap");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let (a, _) = collect(&raw);
    let (b, sum) = collect(&gz);
    assert_eq!(a.len(), 22);
    assert_eq!(a, b);
    assert!(sum.error.is_none() && !sum.truncated);
    // Written to disk and read through read_file too.
    let dir = testkit::TempDir::new("capture-source-gz");
    let path = dir.join("t.pcap.gz");
    std::fs::write(&path, &gz).unwrap();
    let mut n = 0;
    read_file(&path, &mut |_| n += 1).unwrap();
    assert_eq!(n, 22);
}

#[test]
fn not_a_capture_is_a_format_error() {
    assert!(matches!(
        read_from(
            &b"GET / HTTP/1.1\r\n\r\nxxxxxxxxxxxxxxxxxxx"[..],
            &mut |_| {}
        ),
        Err(SourceError::Format(_))
    ));
    assert!(matches!(
        read_from(&b""[..], &mut |_| {}),
        Err(SourceError::Format(_))
    ));
    assert!(matches!(
        read_file(Path::new("/nonexistent/x.pcap"), &mut |_| {}),
        Err(SourceError::Io(_))
    ));
}

#[test]
fn truncated_files_end_with_flag() {
    let raw = zeek_bytes("tls-fragmented-handshake.pcap");
    let (all, _) = collect(&raw);
    for cut in [30usize, 100, 1000, 5000, raw.len() / 2, raw.len() - 1] {
        let (v, sum) = collect(&raw[..cut]);
        assert!(sum.truncated, "cut {cut}");
        assert!(v.len() < all.len());
        assert_eq!(
            v[..],
            all[..v.len()],
            "cut {cut}: packets before the cut intact"
        );
    }
}

/// Returns one byte per read: exercises the Incomplete/refill path on every record.
struct Trickle(std::vec::IntoIter<u8>);
impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match (self.0.next(), buf.first_mut()) {
            (Some(b), Some(o)) => {
                *o = b;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn trickling_reader_reads_everything() {
    let raw = zeek_bytes("tls1.2.pcap");
    let mut n = 0;
    let sum = read_from(Trickle(raw.into_iter()), &mut |_| n += 1).unwrap();
    assert_eq!(n, 22);
    assert!(!sum.truncated && sum.error.is_none());
}

#[test]
fn absurd_record_length_is_an_error_not_a_hang() {
    let mut w = PcapWriter::new(1, false);
    w.packet(0, &[0u8; 60]);
    // A record header claiming 2 GiB.
    w.buf.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    w.buf.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    w.buf.extend_from_slice(&0x8000_0000u32.to_le_bytes());
    w.buf.extend_from_slice(&[0u8; 100]);
    let (v, sum) = collect(&w.buf);
    assert_eq!(v.len(), 1);
    assert!(sum.error.is_some() || sum.truncated);
}

/// Randomly bit-flipped and byte-smashed copies of Zeek traces (seeded): the source and the
/// engine must neither panic nor hang, whatever the bytes.
#[test]
fn bit_flipped_zeek_pcaps_never_panic() {
    let files = zeek_pcaps();
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let start = std::time::Instant::now();
    let mut runs = 0;
    for round in 0..400 {
        let path = &files[rng.below(files.len() as u64) as usize];
        let mut data = std::fs::read(path).unwrap();
        if data.len() > 200_000 {
            data.truncate(200_000);
        }
        let flips = 1 + rng.below(40);
        for _ in 0..flips {
            // Keep the global header mostly intact so that the records get parsed.
            let at = 24 + rng.below(data.len() as u64 - 24) as usize;
            match rng.below(3) {
                0 => data[at] ^= 1 << rng.below(8),
                1 => data[at] = rng.next_u64() as u8,
                _ => data[at] = 0xff,
            }
        }
        if round % 10 == 0 {
            let cut = rng.below(data.len() as u64) as usize;
            data.truncate(cut.max(24));
        }
        let cfg = EngineConfig {
            max_flows: 8,
            max_ooo_bytes: 4096,
            max_ooo_segments: 8,
            max_frag_datagrams: 4,
            ..EngineConfig::default()
        };
        let mut e = Engine::new(cfg, Recorder::default());
        let _ = read_from(std::io::Cursor::new(data), &mut |p| e.process(p));
        let (app, st) = e.finish();
        assert_eq!(st.flows_created as usize, app.done.len());
        runs += 1;
    }
    assert_eq!(runs, 400);
    assert!(
        start.elapsed().as_secs() < 120,
        "fuzz loop too slow: possible hang"
    );
}
