//! Instrumentation of the packet stage: latency histograms (hdrhistogram) and counters.
//!
//! Per-packet processing time is sampled: one packet in [`PACKET_SAMPLE_EVERY`] is timed with
//! `std::time::Instant` (clock tick, decode, flow lookup, reassembly and analyzer callbacks; not
//! the event stage). Measured on the bypass path (benchgen default mix, 540 MB, 524,547 packets,
//! 99% of them in bypassed flows; packet stage alone, `--workers 1`, 15 runs each, medians):
//! no timing 0.213 s, one packet in 64 0.214 s (no difference beyond the noise), every packet
//! 0.262 s (+23%, ~90 ns per packet: two clock reads plus the histogram update). Hence 1 in 64.

use std::time::Instant;

use hdrhistogram::Histogram;

/// One packet in this many is timed.
pub const PACKET_SAMPLE_EVERY: u32 = 64;
/// Largest per-packet time tracked (larger values are clamped): 10 s.
const PACKET_NS_MAX: u64 = 10_000_000_000;
/// Largest handshake latency tracked (capture time, larger values are clamped): 1 day.
const HANDSHAKE_NS_MAX: u64 = 86_400_000_000_000;

/// A histogram of nanoseconds, 3 significant digits. `None` only if hdrhistogram refused the
/// (constant) bounds, which it does not: recording then does nothing instead of panicking.
#[derive(Debug, Clone)]
pub struct Hist(Option<Histogram<u64>>);

impl Hist {
    fn new(max: u64) -> Self {
        Hist(Histogram::new_with_bounds(1, max, 3).ok())
    }

    pub fn record(&mut self, v: u64) {
        if let Some(h) = self.0.as_mut() {
            h.saturating_record(v.max(1));
        }
    }

    pub fn merge(&mut self, o: &Hist) {
        match (self.0.as_mut(), o.0.as_ref()) {
            (Some(a), Some(b)) => {
                // Same bounds on both sides: cannot fail; a failure would only lose samples.
                let _ = a.add(b);
            }
            (None, Some(b)) => self.0 = Some(b.clone()),
            _ => {}
        }
    }

    pub fn len(&self) -> u64 {
        self.0.as_ref().map_or(0, |h| h.len())
    }

    /// Value at quantile `q` (0..=1), 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        match self.0.as_ref() {
            Some(h) if !h.is_empty() => h.value_at_quantile(q),
            _ => 0,
        }
    }

    pub fn max(&self) -> u64 {
        match self.0.as_ref() {
            Some(h) if !h.is_empty() => h.max(),
            _ => 0,
        }
    }

    /// `p50 .. p90 .. p99 .. max ..` in human units.
    fn line(&self) -> String {
        format!(
            "p50 {}, p90 {}, p99 {}, max {}",
            human_ns(self.quantile(0.5)),
            human_ns(self.quantile(0.9)),
            human_ns(self.quantile(0.99)),
            human_ns(self.max())
        )
    }
}

/// `812 ns`, `3.4 µs`, `12.0 ms`, `1.50 s`.
fn human_ns(v: u64) -> String {
    let f = v as f64;
    if v < 1_000 {
        format!("{v} ns")
    } else if v < 1_000_000 {
        format!("{:.1} µs", f / 1e3)
    } else if v < 1_000_000_000 {
        format!("{:.1} ms", f / 1e6)
    } else {
        format!("{:.2} s", f / 1e9)
    }
}

/// Times one packet in [`PACKET_SAMPLE_EVERY`].
#[derive(Debug)]
pub struct Sampler {
    countdown: u32,
    pub hist: Hist,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler {
            countdown: 0,
            hist: Hist::new(PACKET_NS_MAX),
        }
    }
}

impl Sampler {
    /// `Some(start)` when this packet is to be timed.
    #[inline]
    pub fn start(&mut self) -> Option<Instant> {
        if self.countdown == 0 {
            self.countdown = PACKET_SAMPLE_EVERY - 1;
            Some(Instant::now())
        } else {
            self.countdown -= 1;
            None
        }
    }

    #[inline]
    pub fn stop(&mut self, t0: Option<Instant>) {
        if let Some(t0) = t0 {
            let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.hist.record(ns);
        }
    }
}

/// What the packet stage measured.
#[derive(Debug, Clone)]
pub struct Instrumentation {
    /// Analysis workers (engines) that ran.
    pub workers: usize,
    /// Sampled per-packet processing time (wall clock), all workers together.
    pub packet_ns: Hist,
    /// Handshake completion latency in capture time: `Handshake.ts_ns - start_ts_ns`.
    pub handshake_ns: Hist,
    /// Handshakes and server chains handed to the event stage.
    pub handshakes: u64,
    pub chains: u64,
    /// Unique certificates handed to the event stage (`NewCert`).
    pub certs: u64,
    /// `NewCert` outputs dropped because another worker had already reported the certificate.
    pub duplicate_certs: u64,
}

impl Default for Instrumentation {
    fn default() -> Self {
        Instrumentation {
            workers: 1,
            packet_ns: Hist::new(PACKET_NS_MAX),
            handshake_ns: Hist::new(HANDSHAKE_NS_MAX),
            handshakes: 0,
            chains: 0,
            certs: 0,
            duplicate_certs: 0,
        }
    }
}

impl Instrumentation {
    /// The instrumentation lines of the end-of-run summary (`capture` gives the packet counters).
    pub fn text(&self, capture: &capture::Stats) -> String {
        let c = capture;
        let mut t = String::new();
        use std::fmt::Write as _;
        let _ = writeln!(
            t,
            "  packet stage: workers {}, packets {}, bytes {}, flows {}, evictions {}, bypassed packets {}, handshakes {}, chains {}, certs {} (cross-worker duplicates dropped {})",
            self.workers,
            c.packets,
            c.bytes,
            c.flows_created,
            c.flows_evicted_lru,
            c.bypassed_packets,
            self.handshakes,
            self.chains,
            self.certs,
            self.duplicate_certs
        );
        let _ = writeln!(
            t,
            "  per-packet time (1 in {} sampled, n={}): {}",
            PACKET_SAMPLE_EVERY,
            self.packet_ns.len(),
            self.packet_ns.line()
        );
        let _ = writeln!(
            t,
            "  handshake latency (capture time, n={}): {}",
            self.handshake_ns.len(),
            self.handshake_ns.line()
        );
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_times_one_in_n_and_text_has_quantiles() {
        let mut s = Sampler::default();
        for _ in 0..(PACKET_SAMPLE_EVERY * 3) {
            let t = s.start();
            s.stop(t);
        }
        assert_eq!(s.hist.len(), 3);
        let mut i = Instrumentation::default();
        i.packet_ns.merge(&s.hist);
        for v in [1_000u64, 2_000, 3_000_000, 4_000_000_000] {
            i.handshake_ns.record(v);
        }
        assert_eq!(i.handshake_ns.quantile(0.5), 2_000);
        let t = i.text(&capture::Stats::default());
        assert!(t.contains("n=3"), "{t}");
        assert!(t.contains("p50 2.0 µs"), "{t}");
        assert!(t.contains("max 4.00 s"), "{t}");
        assert_eq!(human_ns(999), "999 ns");
    }
}
