//! Helpers shared by kod-fetch's integration tests: the fixture server's
//! faults, by what they do.
#![allow(dead_code)] // each test binary uses part of this module

use kod_testkit::http::Fault;

/// The first `n` requests answered `503 Service Unavailable`.
pub fn failing(n: usize) -> Fault {
    Fault {
        fail_first: n,
        truncate_at: None,
    }
}

/// The connection closed after `at` body bytes, for `times` requests.
pub fn truncated(at: u64, times: usize) -> Fault {
    Fault {
        fail_first: 0,
        truncate_at: Some((at, times)),
    }
}
