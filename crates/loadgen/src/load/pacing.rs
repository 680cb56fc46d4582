//! Pacing: evenly spaced send slots shared by the workers of a paced load.

use std::time::Duration;

/// Hands out evenly spaced send slots: a token bucket in its virtual-scheduling form (GCRA).
///
/// Times are offsets from the start of the load, so the arithmetic needs no clock and can be
/// tested as is. Each slot is one `interval` after the previous one; a caller that comes late
/// gets a slot in the past (send at once), but never more than `tolerance` in the past, which
/// bounds how many requests a load that fell behind sends back to back.
#[derive(Debug, Clone)]
pub struct Pacer {
    interval: Duration,
    tolerance: Duration,
    next: Duration,
}

impl Pacer {
    /// `requests_per_second` slots a second; up to `catch_up` of them may be sent at once after
    /// falling behind.
    pub fn new(requests_per_second: f64, catch_up: u32) -> Pacer {
        let interval = Duration::from_secs_f64(1.0 / requests_per_second.max(1e-9));
        Pacer { interval, tolerance: interval * catch_up, next: Duration::ZERO }
    }

    /// Reserves the next slot for a caller at `now` and returns when it may send.
    pub fn reserve(&mut self, now: Duration) -> Duration {
        let slot = self.next.max(now.saturating_sub(self.tolerance));
        self.next = slot + self.interval;
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_slots_evenly() {
        let mut pacer = Pacer::new(1000.0, 10);
        let slots: Vec<_> = (0..5).map(|_| pacer.reserve(Duration::ZERO)).collect();
        let ms = Duration::from_millis;
        assert_eq!(slots, [ms(0), ms(1), ms(2), ms(3), ms(4)]);
    }

    #[test]
    fn pacer_hands_out_rate_times_seconds_slots() {
        // Four workers, each taking a slot, "sending" (3.3 ms) and coming back for the next:
        // over one simulated second exactly 1000 slots fall inside it.
        let mut pacer = Pacer::new(1000.0, 10);
        let mut ready = [Duration::ZERO; 4];
        let mut inside = 0;
        while let Some((worker, now)) = ready.iter().copied().enumerate().min_by_key(|(_, t)| *t) {
            let slot = pacer.reserve(now);
            if slot >= Duration::from_secs(1) {
                break;
            }
            inside += 1;
            ready[worker] = slot.max(now) + Duration::from_micros(3300);
        }
        assert_eq!(inside, 1000);
    }

    #[test]
    fn pacer_catches_up_a_bounded_number_of_slots() {
        let mut pacer = Pacer::new(100.0, 3);
        assert_eq!(pacer.reserve(Duration::ZERO), Duration::ZERO);
        // A stall of one second: only three slots' worth may be sent back to back.
        let now = Duration::from_secs(1);
        let late: Vec<_> = (0..5).map(|_| pacer.reserve(now)).collect();
        let ms = Duration::from_millis;
        assert_eq!(late, [ms(970), ms(980), ms(990), ms(1000), ms(1010)]);
    }
}
