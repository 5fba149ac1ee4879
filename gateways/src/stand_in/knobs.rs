//! The failures and delays a test injects into a stand-in, the same for every gateway: each
//! counter is used up one request at a time.

use std::time::Duration;

#[derive(Debug, Default)]
pub(super) struct Knobs {
    /// Answer 500 to this many mutating requests without acting.
    pub(super) fail_before: u32,
    /// Act on this many mutating requests, then answer 500 (the answer is lost).
    pub(super) fail_after: u32,
    /// Answer 500 to this many replays of a stored answer (a key seen before).
    pub(super) fail_replays: u32,
    /// Lose this many answers to requests whose path ends so (acted on or replayed).
    pub(super) fail_after_on: Option<(String, u32)>,
    /// Every handled request waits this long first.
    pub(super) delay: Duration,
    /// After acting, wait this long before answering.
    pub(super) answer_delay: Duration,
}

impl Knobs {
    /// Whether this request fails before anything is done.
    pub(super) fn fails_before(&mut self) -> bool {
        take(&mut self.fail_before)
    }

    /// Whether the answer of a request just acted on is lost.
    pub(super) fn loses_answer(&mut self) -> bool {
        take(&mut self.fail_after)
    }

    /// Whether a replayed answer is lost.
    pub(super) fn loses_replay(&mut self) -> bool {
        take(&mut self.fail_replays)
    }

    /// Whether the answer to a request to `path` is lost.
    pub(super) fn loses_answer_to(&mut self, path: &str) -> bool {
        match &mut self.fail_after_on {
            Some((suffix, n)) if path.ends_with(suffix.as_str()) => take(n),
            _ => false,
        }
    }
}

fn take(n: &mut u32) -> bool {
    let some = *n > 0;
    if some {
        *n -= 1;
    }
    some
}
