//! Test helpers of the capture tests: a recording App. Packets, pcaps, the corpus and the Rng
//! come from `testkit`.
#![allow(dead_code)]
use capture::{App, CloseKind, Dir, EndReason, FlowCtx, TimestampNs, Verdict};

/// Everything one flow produced.
#[derive(Debug, Default, Clone)]
pub struct Rec {
    pub ctx: Option<FlowCtx>,
    /// Stream bytes per direction (Orig, Resp); a gap is recorded in `gaps`, not filled.
    pub streams: [Vec<u8>; 2],
    pub gaps: Vec<(Dir, u64)>,
    pub closes: Vec<(Dir, CloseKind)>,
    pub datagrams: [Vec<Vec<u8>>; 2],
    /// Number of callbacks after which the App asks for bypass (0 = never).
    pub reason: Option<EndReason>,
    pub callbacks: u64,
}

#[derive(Default)]
pub struct Recorder {
    pub done: Vec<Rec>,
    /// Bypass after this many stream bytes in a direction (None = never).
    pub bypass_after: Option<usize>,
    /// Calls made while the flow should be bypassed (must stay 0).
    pub calls: u64,
}

impl Recorder {
    pub fn tcp(&self) -> impl Iterator<Item = &Rec> {
        self.done.iter().filter(|r| {
            r.ctx
                .as_ref()
                .is_some_and(|c| c.transport == capture::Transport::Tcp)
        })
    }
}

impl Rec {
    /// Counts one callback for this flow and keeps its context (from the first one).
    fn callback(&mut self, ctx: &FlowCtx) {
        self.callbacks += 1;
        self.ctx.get_or_insert_with(|| ctx.clone());
    }
}

impl App for Recorder {
    type FlowState = Rec;

    fn on_stream(
        &mut self,
        ctx: &FlowCtx,
        st: &mut Rec,
        dir: Dir,
        _ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        assert!(!data.is_empty(), "empty on_stream");
        self.calls += 1;
        st.callback(ctx);
        st.streams[dir.index()].extend_from_slice(data);
        match self.bypass_after {
            Some(n) if st.streams[dir.index()].len() >= n => Verdict::Bypass,
            _ => Verdict::Continue,
        }
    }

    fn on_gap(&mut self, ctx: &FlowCtx, st: &mut Rec, dir: Dir, _ts: TimestampNs, len: u64) {
        st.callback(ctx);
        st.gaps.push((dir, len));
    }

    fn on_datagram(
        &mut self,
        ctx: &FlowCtx,
        st: &mut Rec,
        dir: Dir,
        _ts: TimestampNs,
        data: &[u8],
    ) -> Verdict {
        st.callback(ctx);
        st.datagrams[dir.index()].push(data.to_vec());
        Verdict::Continue
    }

    fn on_close(&mut self, ctx: &FlowCtx, st: &mut Rec, dir: Dir, _ts: TimestampNs, k: CloseKind) {
        st.callback(ctx);
        st.closes.push((dir, k));
    }

    fn on_flow_end(&mut self, ctx: &FlowCtx, mut st: Rec, _ts: TimestampNs, reason: EndReason) {
        st.ctx = Some(ctx.clone());
        st.reason = Some(reason);
        self.done.push(st);
    }
}
