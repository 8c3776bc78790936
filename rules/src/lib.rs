//! Rules: `[[removal]]` events, the built-in distrust history, segments and policy dates.
#![forbid(unsafe_code)]
