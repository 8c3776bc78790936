//! Counters for everything the capture layer sees, drops or evicts. Reported in the end-of-run
//! summary and the periodic `trustmap.stats` event.

/// Why a packet (or part of one) could not be used. Counted, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecodeProblem {
    UnsupportedLinkType,
    TruncatedLink,
    /// An EtherType that nothing here decodes: its value.
    UnsupportedEthertype(u16),
    TruncatedIp,
    BadIpHeader,
    /// An IP protocol that nothing here decodes: its number.
    UnsupportedIpProto(u8),
    /// A PPP protocol that carries neither IP nor link control: its value.
    UnsupportedPppProtocol(u16),
    TruncatedTransport,
    BadTunnel,
    TunnelTooDeep,
    FragmentDropped,
    FragmentTableFull,
    Other,
}

impl DecodeProblem {
    /// The kind alone, without the value it names: the key of [`Stats::decode_problems`].
    pub fn kind(self) -> Self {
        match self {
            Self::UnsupportedEthertype(_) => Self::UnsupportedEthertype(0),
            Self::UnsupportedIpProto(_) => Self::UnsupportedIpProto(0),
            Self::UnsupportedPppProtocol(_) => Self::UnsupportedPppProtocol(0),
            p => p,
        }
    }

    /// The kind's name, as the summary and `trustmap.stats` print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnsupportedLinkType => "UnsupportedLinkType",
            Self::TruncatedLink => "TruncatedLink",
            Self::UnsupportedEthertype(_) => "UnsupportedEthertype",
            Self::TruncatedIp => "TruncatedIp",
            Self::BadIpHeader => "BadIpHeader",
            Self::UnsupportedIpProto(_) => "UnsupportedIpProto",
            Self::UnsupportedPppProtocol(_) => "UnsupportedPppProtocol",
            Self::TruncatedTransport => "TruncatedTransport",
            Self::BadTunnel => "BadTunnel",
            Self::TunnelTooDeep => "TunnelTooDeep",
            Self::FragmentDropped => "FragmentDropped",
            Self::FragmentTableFull => "FragmentTableFull",
            Self::Other => "Other",
        }
    }

    /// The kind with the value it names (`UnsupportedEthertype 0x8909`, `UnsupportedIpProto
    /// 50`), so a user sees what is missing; `None` for kinds without a value.
    pub fn with_value(self) -> Option<String> {
        match self {
            Self::UnsupportedEthertype(v) | Self::UnsupportedPppProtocol(v) => {
                Some(format!("{} 0x{v:04x}", self.name()))
            }
            Self::UnsupportedIpProto(v) => Some(format!("{} {v}", self.name())),
            _ => None,
        }
    }
}

/// Distinct unsupported values counted one by one (a hostile stream could name them all); the
/// rest are counted in [`Stats::problem_values_dropped`].
pub const MAX_PROBLEM_VALUES: usize = 256;

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
    /// A SYN or SYN-ACK seen again with another ISN before any data.
    pub tcp_isn_changes: u64,
    /// Directions whose first data fitted no stream start but the other ISN, or began a TLS
    /// record far from every start: the stream was resumed there.
    pub tcp_resyncs: u64,
    /// Problems by kind ([`DecodeProblem::kind`]), sorted for stable output.
    pub decode_problems: std::collections::BTreeMap<DecodeProblem, u64>,
    /// The problems that name a value, by value (at most [`MAX_PROBLEM_VALUES`]).
    pub problem_values: std::collections::BTreeMap<DecodeProblem, u64>,
    /// Problems whose value was not counted because `problem_values` was full.
    pub problem_values_dropped: u64,
}

impl Stats {
    /// Total of all decode problems.
    pub fn problems_total(&self) -> u64 {
        self.decode_problems.values().sum()
    }

    pub fn problem(&mut self, p: DecodeProblem) {
        self.problems(p, 1);
    }

    fn problems(&mut self, p: DecodeProblem, n: u64) {
        *self.decode_problems.entry(p.kind()).or_insert(0) += n;
        if p.with_value().is_some() {
            self.problem_value(p, n);
        }
    }

    /// `n` more of the value `p` names, while there is room for another value.
    fn problem_value(&mut self, p: DecodeProblem, n: u64) {
        let full = self.problem_values.len() >= MAX_PROBLEM_VALUES;
        match self.problem_values.get_mut(&p) {
            Some(c) => *c += n,
            None if !full => {
                self.problem_values.insert(p, n);
            }
            None => self.problem_values_dropped += n,
        }
    }

    /// The `n` most frequent values among the problems that name one, most frequent first.
    pub fn top_problem_values(&self, n: usize) -> Vec<(DecodeProblem, u64)> {
        let mut v: Vec<(DecodeProblem, u64)> =
            self.problem_values.iter().map(|(p, c)| (*p, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
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
        self.tcp_isn_changes += o.tcp_isn_changes;
        self.tcp_resyncs += o.tcp_resyncs;
        for (k, v) in &o.decode_problems {
            *self.decode_problems.entry(*k).or_insert(0) += v;
        }
        for (p, n) in &o.problem_values {
            self.problem_value(*p, *n);
        }
        self.problem_values_dropped += o.problem_values_dropped;
    }
}
