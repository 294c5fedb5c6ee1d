//! The one integration-test binary: each module tests one area of `sla` the way a user meets it.

mod data;
