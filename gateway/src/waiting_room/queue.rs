//! One SKU's waiting-room queue as pure state: joins, the random draw of
//! the early joiners at opening, positions, the admission frontier and the
//! expiry of unused admissions. No clock, no I/O, no randomness of its own:
//! callers pass `now` (milliseconds since the Unix epoch), whether units
//! remain, and the seed of the draw. The rules:
//!
//! 1. Every join gets the next queue number (0, 1, ...), up to
//!    `queue_length_max` joins; a join past it is refused (`Full`).
//! 2. Those who join before `opens_at_ms` have no position yet: at the first
//!    step at or after the opening, their numbers are shuffled (Fisher–Yates
//!    over the seed) into positions 0..k. Later joiners take the next
//!    position in the order they join.
//! 3. Admission goes by position. Credits accrue at `admit_per_sec` while
//!    units remain (none while the SKU is sold out); each admission spends
//!    one. Credits earned while buyers wait all admit them, however seldom
//!    the queue is stepped; at most one second's worth banks up while nobody
//!    waits (the bucket starts full at opening).
//! 4. An admission is valid for `admitted_ttl_secs`. One that expires unused
//!    passes its slot on: the next in line is admitted without a credit.
//! 5. Positions only move forward: an admitted position stays admitted,
//!    time never runs backwards (an earlier `now` counts as the latest).

use std::collections::VecDeque;

/// What a waiting room admits, and how fast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomSettings {
    /// Admissions per second while units remain (also the burst at opening).
    pub admit_per_sec: u32,
    /// How long an admission may be used to order.
    pub admitted_ttl_secs: u32,
    /// Most joins this queue takes.
    pub queue_length_max: u32,
}

/// A join past `queue_length_max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full {
    pub queue_length_max: u32,
}

/// Where one queue number stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    /// 0-based place in line; `None` before the draw at opening.
    pub position: Option<u32>,
    /// Not yet admitted people in front of this number (0 once admitted).
    pub ahead: u32,
    /// When it was admitted, if it was.
    pub admitted_at_ms: Option<u64>,
    /// Its admission was used to order.
    pub used: bool,
}

/// The queue of one SKU.
#[derive(Clone, Debug)]
pub struct Queue {
    settings: RoomSettings,
    opens_at_ms: u64,
    seed: u64,
    /// The early joiners have been drawn into positions.
    drawn: bool,
    /// Queue number by position (before the draw: by join order).
    numbers: Vec<u32>,
    /// Position by queue number.
    positions: Vec<u32>,
    /// Positions `0..admitted` are admitted.
    admitted: u32,
    /// Admission time by position, for `0..admitted`.
    admitted_at_ms: Vec<u64>,
    /// Whether each admitted position's admission was used.
    used: Vec<bool>,
    /// Admitted positions whose admission has not expired, oldest first.
    live: VecDeque<u32>,
    /// Slots passed on by unused admissions that expired, not yet given.
    passed_on: u32,
    /// Admission credits, in thousandths.
    credit_milli: u64,
    /// The latest `now` seen.
    last_ms: u64,
}

impl Queue {
    /// An empty queue for a sale opening at `opens_at_ms` (0 or a past time:
    /// open from the start, so joiners queue in order). `seed` drives the draw.
    pub fn new(settings: RoomSettings, opens_at_ms: u64, seed: u64) -> Queue {
        assert!(settings.admit_per_sec > 0 && settings.admitted_ttl_secs > 0);
        Queue {
            settings,
            opens_at_ms,
            seed,
            drawn: false,
            numbers: Vec::new(),
            positions: Vec::new(),
            admitted: 0,
            admitted_at_ms: Vec::new(),
            used: Vec::new(),
            live: VecDeque::new(),
            passed_on: 0,
            credit_milli: 0,
            last_ms: 0,
        }
    }

    pub fn settings(&self) -> RoomSettings {
        self.settings
    }

    pub fn opens_at_ms(&self) -> u64 {
        self.opens_at_ms
    }

    /// Joins so far.
    pub fn len(&self) -> u32 {
        self.numbers.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Admissions so far.
    pub fn admitted(&self) -> u32 {
        self.admitted
    }

    /// Whether the draw at opening has happened.
    pub fn is_open(&self) -> bool {
        self.drawn
    }

    /// Applies new settings to the queue as it is: a lower length stops
    /// joins but removes nobody; banked credits are re-capped to the new rate.
    pub fn update(&mut self, settings: RoomSettings) {
        assert!(settings.admit_per_sec > 0 && settings.admitted_ttl_secs > 0);
        self.settings = settings;
        self.credit_milli = self.credit_milli.min(self.bucket_milli());
    }

    /// A new joiner's queue number, after stepping to `now`.
    pub fn join(&mut self, now_ms: u64, units_remain: bool) -> Result<u32, Full> {
        self.step(now_ms, units_remain);
        if self.len() >= self.settings.queue_length_max {
            return Err(Full {
                queue_length_max: self.settings.queue_length_max,
            });
        }
        let number = self.len();
        self.numbers.push(number);
        self.positions.push(number);
        // A joiner after the opening may be admitted at once (a banked
        // credit or a passed-on slot).
        self.admit(now_ms, units_remain);
        self.check();
        Ok(number)
    }

    /// Where `number` stands after stepping to `now`; `None` for a number
    /// this queue never gave.
    pub fn standing(&mut self, number: u32, now_ms: u64, units_remain: bool) -> Option<Standing> {
        self.step(now_ms, units_remain);
        let position = *self.positions.get(number as usize)?;
        if !self.drawn {
            return Some(Standing {
                position: None,
                ahead: self.len().saturating_sub(1),
                admitted_at_ms: None,
                used: false,
            });
        }
        let admitted = position < self.admitted;
        Some(Standing {
            position: Some(position),
            ahead: if admitted {
                0
            } else {
                position - self.admitted
            },
            admitted_at_ms: admitted.then(|| self.admitted_at_ms[position as usize]),
            used: admitted && self.used[position as usize],
        })
    }

    /// Records that `number`'s admission was used to order, so its slot is
    /// not passed on when it expires. Ignored for a number not admitted.
    pub fn mark_used(&mut self, number: u32) {
        if let Some(&position) = self.positions.get(number as usize) {
            if self.drawn && position < self.admitted {
                self.used[position as usize] = true;
            }
        }
    }

    /// Steps to `now`: the draw at opening, expiries, credits, admissions.
    pub fn step(&mut self, now_ms: u64, units_remain: bool) {
        let now_ms = now_ms.max(self.last_ms);
        if !self.drawn {
            if now_ms < self.opens_at_ms {
                self.last_ms = now_ms;
                return;
            }
            self.draw();
            self.credit_milli = self.bucket_milli();
            self.last_ms = now_ms;
        }
        let ttl_ms = u64::from(self.settings.admitted_ttl_secs) * 1000;
        while let Some(&position) = self.live.front() {
            if self.admitted_at_ms[position as usize] + ttl_ms > now_ms {
                break;
            }
            self.live.pop_front();
            if !self.used[position as usize] {
                self.passed_on += 1;
            }
        }
        if units_remain {
            let accrued = (now_ms - self.last_ms) * u64::from(self.settings.admit_per_sec);
            self.credit_milli = self.credit_milli.saturating_add(accrued);
        }
        self.last_ms = now_ms;
        // Credits earned while buyers waited admit them now, however long
        // since the last step; only what is left when nobody waits is capped.
        self.admit(now_ms, units_remain);
        self.credit_milli = self.credit_milli.min(self.bucket_milli());
        self.check();
    }

    /// One second's worth of credits: the most that can bank up.
    fn bucket_milli(&self) -> u64 {
        u64::from(self.settings.admit_per_sec) * 1000
    }

    /// Admits the next in line while slots or credits last and units remain.
    fn admit(&mut self, now_ms: u64, units_remain: bool) {
        if !self.drawn || !units_remain {
            return;
        }
        while self.admitted < self.len() {
            if self.passed_on > 0 {
                self.passed_on -= 1;
            } else if self.credit_milli >= 1000 {
                self.credit_milli -= 1000;
            } else {
                break;
            }
            self.admitted_at_ms.push(now_ms);
            self.used.push(false);
            self.live.push_back(self.admitted);
            self.admitted += 1;
        }
    }

    /// Shuffles the early joiners into positions (rule 2).
    fn draw(&mut self) {
        let mut random = SplitMix64(self.seed);
        for index in (1..self.numbers.len()).rev() {
            let other = (random.next() % (index as u64 + 1)) as usize;
            self.numbers.swap(index, other);
        }
        for (position, &number) in self.numbers.iter().enumerate() {
            self.positions[number as usize] = position as u32;
        }
        self.drawn = true;
    }

    fn check(&self) {
        debug_assert_eq!(self.numbers.len(), self.positions.len());
        debug_assert!(self.admitted as usize <= self.numbers.len());
        debug_assert_eq!(self.admitted_at_ms.len(), self.admitted as usize);
        debug_assert!(self.live.len() <= self.admitted as usize);
        debug_assert!(self.credit_milli <= self.bucket_milli());
    }
}

/// SplitMix64: a small, well-mixed generator for the draw, so the core stays
/// deterministic for a given seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: u64 = 1_000_000;

    fn settings(admit_per_sec: u32, ttl: u32) -> RoomSettings {
        RoomSettings {
            admit_per_sec,
            admitted_ttl_secs: ttl,
            queue_length_max: 1_000,
        }
    }

    fn admitted_numbers(queue: &mut Queue, now: u64) -> Vec<u32> {
        (0..queue.len())
            .filter(|&number| {
                queue
                    .standing(number, now, true)
                    .unwrap()
                    .admitted_at_ms
                    .is_some()
            })
            .collect()
    }

    #[test]
    fn early_joiners_are_drawn_at_opening_and_later_ones_queue_in_order() {
        let mut queue = Queue::new(settings(1, 60), OPEN, 42);
        for _ in 0..50 {
            queue.join(OPEN - 10, true).unwrap();
        }
        let before = queue.standing(0, OPEN - 1, true).unwrap();
        assert_eq!(before.position, None, "no position before the draw");
        queue.step(OPEN, true);
        let positions: Vec<u32> = (0..50)
            .map(|number| {
                queue
                    .standing(number, OPEN, true)
                    .unwrap()
                    .position
                    .unwrap()
            })
            .collect();
        let mut sorted = positions.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>(), "a permutation");
        assert_ne!(positions, sorted, "not in join order");
        let late = queue.join(OPEN + 1, true).unwrap();
        let late2 = queue.join(OPEN + 2, true).unwrap();
        assert_eq!(
            queue.standing(late, OPEN + 2, true).unwrap().position,
            Some(50)
        );
        assert_eq!(
            queue.standing(late2, OPEN + 2, true).unwrap().position,
            Some(51)
        );
    }

    #[test]
    fn another_seed_draws_another_order_and_the_same_seed_the_same() {
        let draw = |seed| {
            let mut queue = Queue::new(settings(1, 60), OPEN, seed);
            for _ in 0..20 {
                queue.join(0, true).unwrap();
            }
            (0..20)
                .map(|number| queue.standing(number, OPEN, true).unwrap().position)
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn admission_follows_the_rate_and_stops_while_sold_out() {
        let mut queue = Queue::new(settings(2, 600), 0, 1);
        for _ in 0..20 {
            queue.join(OPEN, true).unwrap();
        }
        // The bucket starts with one second's worth: 2.
        assert_eq!(queue.admitted(), 2);
        queue.step(OPEN + 499, true);
        assert_eq!(queue.admitted(), 2);
        queue.step(OPEN + 500, true);
        assert_eq!(queue.admitted(), 3);
        queue.step(OPEN + 3_000, true);
        assert_eq!(queue.admitted(), 2 + 6);
        // Sold out: no admissions, no credits banked.
        queue.step(OPEN + 10_000, false);
        assert_eq!(queue.admitted(), 8);
        queue.step(OPEN + 10_000, true);
        assert_eq!(queue.admitted(), 8);
        queue.step(OPEN + 10_500, true);
        assert_eq!(queue.admitted(), 9);
        // Admission is in position order (FIFO here: open from the start).
        assert_eq!(
            admitted_numbers(&mut queue, OPEN + 10_500),
            (0..9).collect::<Vec<_>>()
        );
    }

    #[test]
    fn admissions_never_outrun_the_rate_however_often_it_is_stepped() {
        let mut queue = Queue::new(settings(5, 600), OPEN, 3);
        for _ in 0..500 {
            queue.join(OPEN - 1, true).unwrap();
        }
        for now in (OPEN..OPEN + 20_000).step_by(37) {
            queue.step(now, true);
            let elapsed_ms = now - OPEN;
            let bound = 5 + elapsed_ms * 5 / 1000;
            assert!(u64::from(queue.admitted()) <= bound, "{now}");
            assert!(u64::from(queue.admitted()) + 1 >= bound, "{now}");
        }
    }

    #[test]
    fn an_unused_admission_that_expires_passes_its_slot_on_and_a_used_one_does_not() {
        let mut queue = Queue::new(settings(1, 10), 0, 1);
        for _ in 0..5 {
            queue.join(OPEN, true).unwrap();
        }
        assert_eq!(queue.admitted(), 1);
        queue.step(OPEN + 1_000, true);
        assert_eq!(queue.admitted(), 2);
        queue.mark_used(1);
        // Stopped from accruing (sold out) to isolate the passed-on slots.
        queue.step(OPEN + 10_999, false);
        queue.step(OPEN + 11_000, false);
        assert_eq!(queue.admitted(), 2);
        queue.step(OPEN + 11_000, true);
        // Number 0 expired unused: its slot went to number 2. Number 1 was
        // used: nothing passed on for it.
        assert!(queue
            .standing(2, OPEN + 11_000, true)
            .unwrap()
            .admitted_at_ms
            .is_some());
        assert!(queue.standing(1, OPEN + 11_000, true).unwrap().used);
        assert_eq!(queue.admitted(), 3);
    }

    #[test]
    fn the_queue_is_bounded_and_time_never_runs_back() {
        let mut queue = Queue::new(
            RoomSettings {
                admit_per_sec: 1,
                admitted_ttl_secs: 1,
                queue_length_max: 3,
            },
            OPEN,
            1,
        );
        for _ in 0..3 {
            queue.join(0, true).unwrap();
        }
        assert_eq!(
            queue.join(0, true),
            Err(Full {
                queue_length_max: 3
            })
        );
        queue.step(OPEN + 5_000, true);
        let admitted = queue.admitted();
        queue.step(OPEN, true);
        assert_eq!(queue.admitted(), admitted);
        assert_eq!(queue.standing(9, OPEN, true), None);
    }
}
