//! trustmap: a passive network TLS observer. This binary wires the pipeline
//! (packets -> flows -> handshakes -> chains -> findings) to its sinks and the inventory.
#![forbid(unsafe_code)]

mod cli;
#[cfg(feature = "live")]
mod live_cmd;
mod pipeline;
mod probe_cmd;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
