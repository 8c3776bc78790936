//! Helpers shared by the integration tests (each test file includes this with `mod common;`).

pub use testkit::assert_same;
