//! Pacing for work that a stream of events asks for (telling other nodes of commits,
//! reading the change log): at once after a quiet spell, at most every few
//! milliseconds while the events come faster than that.

use std::time::Duration;

use tokio::time::Instant;

/// While events keep coming, the work they ask for runs at most this often.
const SPACING: Duration = Duration::from_millis(5);

/// [`STREAM`] events within this long before now are a stream: one run of the work per
/// event would cost more than the work it covers. Events sparser than that (under about
/// 300 a second) are each served at once.
const WINDOW: Duration = Duration::from_millis(10);
const STREAM: usize = 4;

/// When events came and when their work last ran.
#[derive(Debug, Default)]
pub struct Pace {
    /// The last [`STREAM`] events, oldest first.
    recent: std::collections::VecDeque<Instant>,
    last_run: Option<Instant>,
}

impl Pace {
    /// Notes `count` events at `at`.
    pub fn events(&mut self, count: usize, at: Instant) {
        for _ in 0..count.min(STREAM) {
            if self.recent.len() == STREAM {
                self.recent.pop_front();
            }
            self.recent.push_back(at);
        }
    }

    /// Notes that the work ran (began) at `at`.
    pub fn ran(&mut self, at: Instant) {
        self.last_run = Some(at);
    }

    /// Whether the events come as a stream, as of `now`.
    fn streaming(&self, now: Instant) -> bool {
        self.recent.len() == STREAM
            && self
                .recent
                .front()
                .is_some_and(|oldest| now.saturating_duration_since(*oldest) < WINDOW)
    }

    /// When the work may run next: at once, unless events stream and it ran only just now.
    pub fn next_run(&self, now: Instant) -> Instant {
        match self.last_run {
            Some(last) if self.streaming(now) => (last + SPACING).max(now),
            _ => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_events_run_at_once_and_a_stream_is_spaced() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut pace = Pace::default();
        // One event every 8 ms: each served at once.
        for n in 0..10 {
            let at = ms(8 * n);
            pace.events(1, at);
            assert_eq!(pace.next_run(at), at, "event {n}");
            pace.ran(at);
        }
        // A burst of events a millisecond apart: once four came within the window, the
        // work waits for the spacing since it last ran.
        let burst = ms(100);
        pace.ran(burst);
        for n in 1..=3 {
            pace.events(1, ms(100 + n));
        }
        assert_eq!(
            pace.next_run(ms(103)),
            ms(103),
            "three events are no stream yet"
        );
        pace.events(1, ms(104));
        assert_eq!(pace.next_run(ms(104)), burst + SPACING);
        // Several events told together count as several.
        let mut told = Pace::default();
        told.ran(ms(0));
        told.events(4, ms(1));
        assert_eq!(told.next_run(ms(1)), ms(0) + SPACING);
        // A quiet spell after the stream ends it.
        assert_eq!(pace.next_run(ms(200)), ms(200));
    }
}
