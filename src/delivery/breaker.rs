//! The circuit breaker's count: failed calls in a row across different rows. The
//! policy reads it (`policy::Facts::failed_calls`) and degrades the destination at the
//! threshold; any answer from a working WebEngage starts the count again.

use std::collections::HashSet;

/// Rows remembered per run of failures; past this, calls count without the check.
const REMEMBERED_ROWS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Breaker {
    failed_calls: usize,
    /// The rows the current run has failed on: a row failing again (its own retry) is
    /// not evidence that WebEngage is down for everyone.
    rows: HashSet<i64>,
}

impl Breaker {
    /// Notes one call (of the rows `rows`) and returns the count the policy reads:
    /// failed calls in a row, this one included, 0 after an answer that was no failure.
    pub fn record(&mut self, failed: bool, rows: &[i64]) -> usize {
        if !failed {
            self.failed_calls = 0;
            self.rows.clear();
            return 0;
        }
        let mut new_row = self.rows.len() >= REMEMBERED_ROWS;
        for id in rows {
            if self.rows.len() < REMEMBERED_ROWS {
                new_row |= self.rows.insert(*id);
            }
        }
        if new_row {
            self.failed_calls += 1;
        }
        self.failed_calls
    }

    /// Starts a new count (delivery resumed after a probe).
    pub fn reset(&mut self) {
        self.record(false, &[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_failed_calls_on_different_rows_and_resets_on_an_answer() {
        let mut b = Breaker::default();
        assert_eq!(b.record(true, &[1]), 1);
        assert_eq!(b.record(true, &[2, 3]), 2);
        // Row 1 failing again (its retry) adds nothing; with a new row it counts.
        assert_eq!(b.record(true, &[1]), 2);
        assert_eq!(b.record(true, &[1, 4]), 3);
        assert_eq!(b.record(false, &[5]), 0);
        assert_eq!(b.record(true, &[1]), 1, "a new run forgets the old rows");
        b.reset();
        assert_eq!(b.record(true, &[1]), 1);
        assert_eq!(b.record(true, &[2]), 2);
        // A reset (delivery resumed after a probe) starts from zero and forgets rows.
        b.reset();
        assert_eq!(b.record(true, &[2]), 1);
    }

    #[test]
    fn past_the_remembered_rows_every_failed_call_counts() {
        // A run that failed on more rows than it can remember cannot tell a retry from
        // a new row any more: it counts every call, so a long outage still degrades.
        let mut b = Breaker::default();
        let many: Vec<i64> = (0..REMEMBERED_ROWS as i64 - 1).collect();
        assert_eq!(b.record(true, &many), 1);
        // One short of the limit: a retry of a known row still adds nothing.
        assert_eq!(b.record(true, &[0]), 1);
        assert_eq!(b.record(true, &[-1]), 2, "the last remembered row is new");
        assert_eq!(b.rows.len(), REMEMBERED_ROWS);
        assert_eq!(b.record(true, &[0]), 3, "full: a known row counts too");
        assert_eq!(b.record(true, &[-2]), 4);
        assert_eq!(b.rows.len(), REMEMBERED_ROWS, "nothing more is remembered");
    }
}
