//! The crate's single integration-test binary; each module tests one area through the public API.

mod gpu;
