//! The NDJSON event writer: one event per line, serialised from the typed views of
//! [`crate::events`] into one reused line buffer.

use std::io::Write;

use crate::events;

/// Writes NDJSON events, one per line. Events are serialised straight from their typed views into
/// one reused line buffer and handed to the (buffered) output; without an output they are only
/// counted, and never serialised.
pub struct EventSink {
    out: Option<Box<dyn Write + Send>>,
    line: Vec<u8>,
    server_sides: events::ServerSideCache,
    /// Events emitted (counted with or without an output).
    events: u64,
}

fn write_err(e: impl std::fmt::Display) -> String {
    format!("writing events: {e}")
}

/// Serialises `ev` into `line` (reused) and writes it as one NDJSON line.
fn write_line(
    w: &mut Box<dyn Write + Send>,
    line: &mut Vec<u8>,
    ev: &impl serde::Serialize,
) -> Result<(), String> {
    line.clear();
    serde_json::to_writer(&mut *line, ev).map_err(write_err)?;
    line.push(b'\n');
    w.write_all(line).map_err(write_err)
}

impl EventSink {
    pub fn new(out: Option<Box<dyn Write + Send>>) -> Self {
        EventSink {
            out,
            line: Vec::with_capacity(8192),
            server_sides: events::ServerSideCache::default(),
            events: 0,
        }
    }

    /// Events emitted so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn emit(&mut self, ev: &impl serde::Serialize) -> Result<(), String> {
        self.events += 1;
        match self.out.as_mut() {
            Some(w) => write_line(w, &mut self.line, ev),
            None => Ok(()),
        }
    }

    /// Writes the `trustmap.tls` event of `h`, with `tls.server` rendered once per presented chain.
    pub fn emit_tls(
        &mut self,
        h: &analyzer::Handshake,
        extra: &enrich::Enrichment,
    ) -> Result<(), String> {
        self.events += 1;
        let Some(w) = self.out.as_mut() else {
            return Ok(());
        };
        let server = self.server_sides.get(h).map_err(write_err)?;
        write_line(w, &mut self.line, &events::TlsEvent { h, extra, server })
    }

    /// Flushes the output.
    pub fn finish(&mut self) -> Result<(), String> {
        match self.out.as_mut() {
            Some(w) => w.flush().map_err(write_err),
            None => Ok(()),
        }
    }
}
