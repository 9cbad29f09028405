//! A compressed backup schedule for a drill: `backups` backups `every` apart, then the
//! disaster, either right after the last backup or at a random moment before the next one
//! would have been taken. Drills use seconds where the strategy uses 15 minutes.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// When the disaster strikes, relative to the last backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DisasterAt {
    /// At a uniformly random moment after the last backup finished and before the next one
    /// was due: what a real disaster does, somewhere between two backups.
    Random,
    /// As soon as the last backup finished: the smallest loss the schedule allows.
    AfterLast,
}

impl DisasterAt {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DisasterAt::Random => "random",
            DisasterAt::AfterLast => "after-last",
        }
    }
}

/// The schedule of a drill's backups and its disaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    /// The interval between backup starts (`--backup-every`).
    pub every: Duration,
    /// How many backups (`--backups`), at least 1.
    pub backups: u32,
    /// When the disaster strikes (`--disaster-at`).
    pub disaster_at: DisasterAt,
}

impl Cadence {
    /// Checks the numbers, with a message naming the flag.
    pub fn validate(&self) -> Result<(), String> {
        if self.every.is_zero() {
            return Err("--backup-every must be greater than zero".into());
        }
        if self.backups == 0 {
            return Err("--backups must be at least 1".into());
        }
        Ok(())
    }

    /// The clock that gives the delays; `seed` makes a random disaster reproducible (without
    /// one a seed is drawn, and [`Clock::seed`] tells it for the report).
    pub fn clock(&self, seed: Option<u64>) -> Clock {
        let seed = seed.unwrap_or_else(rand::random);
        Clock {
            cadence: *self,
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

/// Gives the drill its delays, measured from the start of the first backup; backups start on
/// the schedule however long the earlier ones took, as a timer would start them.
#[derive(Debug, Clone)]
pub struct Clock {
    cadence: Cadence,
    seed: u64,
    rng: ChaCha8Rng,
}

impl Clock {
    /// The seed of the random draw.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// When backup `n` (0-based) is due, from the first backup's start.
    pub fn backup_due(&self, n: u32) -> Duration {
        self.cadence.every * n
    }

    /// When the backup after the last one would have been due: the end of the disaster window.
    pub fn next_due(&self) -> Duration {
        self.backup_due(self.cadence.backups)
    }

    /// How long to wait before backup `n`, `elapsed` after the first backup started (zero when
    /// it is already due: an overrunning backup delays the next, never skips it).
    pub fn until_backup(&self, n: u32, elapsed: Duration) -> Duration {
        self.backup_due(n).saturating_sub(elapsed)
    }

    /// How long to wait before the disaster, once the last backup has finished `elapsed` after
    /// the first one started. `Random` draws uniformly over the rest of the interval until the
    /// next backup would have been due (zero when the last backup overran it).
    pub fn until_disaster(&mut self, elapsed: Duration) -> Duration {
        let left = self.next_due().saturating_sub(elapsed);
        match self.cadence.disaster_at {
            DisasterAt::AfterLast => Duration::ZERO,
            DisasterAt::Random => left.mul_f64(self.rng.random::<f64>()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cadence(disaster_at: DisasterAt) -> Cadence {
        Cadence {
            every: Duration::from_secs(20),
            backups: 3,
            disaster_at,
        }
    }

    #[test]
    fn backups_are_due_on_the_schedule() {
        let c = cadence(DisasterAt::AfterLast).clock(Some(1));
        assert_eq!(c.backup_due(0), Duration::ZERO);
        assert_eq!(c.backup_due(2), Duration::from_secs(40));
        assert_eq!(c.next_due(), Duration::from_secs(60));
        assert_eq!(
            c.until_backup(1, Duration::from_millis(1500)),
            Duration::from_millis(18_500)
        );
        assert_eq!(c.until_backup(1, Duration::from_secs(25)), Duration::ZERO);
    }

    #[test]
    fn after_last_strikes_at_once() {
        let mut c = cadence(DisasterAt::AfterLast).clock(None);
        assert_eq!(c.until_disaster(Duration::from_secs(41)), Duration::ZERO);
    }

    #[test]
    fn random_strikes_between_the_last_backup_and_the_next_due() {
        let mut c = cadence(DisasterAt::Random).clock(Some(7));
        let finished = Duration::from_millis(41_200);
        let mut seen_early = false;
        let mut seen_late = false;
        for _ in 0..2000 {
            let d = c.until_disaster(finished);
            assert!(finished + d < c.next_due(), "{d:?}");
            seen_early |= d < Duration::from_secs(2);
            seen_late |= d > Duration::from_secs(17);
        }
        assert!(seen_early && seen_late, "the draw covers the window");
        // An overrunning last backup leaves no window.
        assert_eq!(c.until_disaster(Duration::from_secs(61)), Duration::ZERO);
    }

    #[test]
    fn a_seed_reproduces_the_moment_and_is_reported() {
        let draw = |seed| {
            cadence(DisasterAt::Random)
                .clock(seed)
                .until_disaster(Duration::from_secs(41))
        };
        assert_eq!(draw(Some(42)), draw(Some(42)));
        assert_ne!(draw(Some(42)), draw(Some(43)));
        let c = cadence(DisasterAt::Random).clock(None);
        let again = cadence(DisasterAt::Random)
            .clock(Some(c.seed()))
            .until_disaster(Duration::from_secs(41));
        assert_eq!(c.clone().until_disaster(Duration::from_secs(41)), again);
    }

    #[test]
    fn validation_names_the_flag() {
        let mut c = cadence(DisasterAt::Random);
        c.backups = 0;
        assert!(c.validate().unwrap_err().contains("--backups"));
        c.backups = 1;
        c.every = Duration::ZERO;
        assert!(c.validate().unwrap_err().contains("--backup-every"));
    }
}
