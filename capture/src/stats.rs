//! Counters for everything the capture layer sees, drops or evicts. Reported in the end-of-run
//! summary and the periodic `trustmap.stats` event.

/// Why a packet (or part of one) could not be used. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeProblem {
    UnsupportedLinkType,
    TruncatedLink,
    UnsupportedEthertype,
    TruncatedIp,
    BadIpHeader,
    UnsupportedIpProto,
    TruncatedTransport,
    BadTunnel,
    TunnelTooDeep,
    FragmentDropped,
    FragmentTableFull,
    Other,
}

/// Capture-layer counters. Plain integers: one engine per worker owns its own `Stats`, and the
/// results are summed with [`Stats::merge`].
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets that belonged to a bypassed flow (one lookup, no further work).
    pub bypassed_packets: u64,
    pub flows_created: u64,
    pub flows_evicted_lru: u64,
    pub flows_idle_timeout: u64,
    pub flows_reused: u64,
    pub flows_closed: u64,
    pub tcp_segments: u64,
    pub udp_datagrams: u64,
    pub tcp_retransmitted_bytes: u64,
    pub tcp_out_of_order_segments: u64,
    pub tcp_overlap_conflicts: u64,
    pub tcp_gaps: u64,
    pub tcp_buffer_cap_drops: u64,
    pub tcp_depth_reached: u64,
    pub tcp_midstream_pickups: u64,
    pub ip_fragments: u64,
    pub ip_reassembled: u64,
    /// Fragments whose overlapping bytes differed from those seen first (first seen wins).
    pub ip_fragment_overlaps: u64,
    /// Frames recognised but of no interest (ARP, ICMP, PPPoE discovery, LLDP, ...).
    pub other_packets: u64,
    /// TCP segments far outside the expected sequence window (dropped).
    pub tcp_out_of_window: u64,
    /// Problems by reason, sorted for stable output.
    pub decode_problems: std::collections::BTreeMap<DecodeProblem, u64>,
}

impl Stats {
    /// Total of all decode problems.
    pub fn problems_total(&self) -> u64 {
        self.decode_problems.values().sum()
    }

    pub fn problem(&mut self, p: DecodeProblem) {
        *self.decode_problems.entry(p).or_insert(0) += 1;
    }

    /// Adds another worker's counters into this one.
    pub fn merge(&mut self, o: &Stats) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.bypassed_packets += o.bypassed_packets;
        self.flows_created += o.flows_created;
        self.flows_evicted_lru += o.flows_evicted_lru;
        self.flows_idle_timeout += o.flows_idle_timeout;
        self.flows_reused += o.flows_reused;
        self.flows_closed += o.flows_closed;
        self.tcp_segments += o.tcp_segments;
        self.udp_datagrams += o.udp_datagrams;
        self.tcp_retransmitted_bytes += o.tcp_retransmitted_bytes;
        self.tcp_out_of_order_segments += o.tcp_out_of_order_segments;
        self.tcp_overlap_conflicts += o.tcp_overlap_conflicts;
        self.tcp_gaps += o.tcp_gaps;
        self.tcp_buffer_cap_drops += o.tcp_buffer_cap_drops;
        self.tcp_depth_reached += o.tcp_depth_reached;
        self.tcp_midstream_pickups += o.tcp_midstream_pickups;
        self.ip_fragments += o.ip_fragments;
        self.ip_reassembled += o.ip_reassembled;
        self.ip_fragment_overlaps += o.ip_fragment_overlaps;
        self.other_packets += o.other_packets;
        self.tcp_out_of_window += o.tcp_out_of_window;
        for (k, v) in &o.decode_problems {
            *self.decode_problems.entry(*k).or_insert(0) += v;
        }
    }
}
