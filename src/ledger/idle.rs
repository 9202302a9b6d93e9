//! Idle GPU holders: processes that keep GPU memory while their SM share stays near zero.
//!
//! Pure bookkeeping over session seconds; thresholds come from config (DESIGN §5).

/// When a process counts as an idle GPU holder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IdleHolderConfig {
    /// Holds at least this much GPU memory, bytes.
    pub min_memory_bytes: u64,
    /// Its SM utilisation stays below this, percent.
    pub max_sm_pct: f64,
    /// For at least this long, seconds.
    pub after_s: f64,
}

impl Default for IdleHolderConfig {
    fn default() -> Self {
        IdleHolderConfig {
            min_memory_bytes: 256 << 20,
            max_sm_pct: 1.0,
            after_s: 300.0,
        }
    }
}

/// Per-process idle streak.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct IdleTrack {
    /// Session second at which the current idle streak began.
    pub since_s: Option<f64>,
    /// Length of the current streak, seconds.
    pub streak_s: f64,
    /// GPU energy charged during the current streak, joules.
    pub streak_j: f64,
    /// The streak has lasted long enough to be flagged.
    pub flagged: bool,
    /// GPU energy charged while flagged streaks lasted (whole streaks), joules, whole session.
    pub wasted_j: f64,
    /// GPU joules already seen, to compute per-interval deltas.
    pub gpu_j_seen: f64,
}

impl IdleTrack {
    /// Advance by one interval ending at session second `now_s`.
    pub fn update(&mut self, idle_now: bool, now_s: f64, gpu_j: f64, after_s: f64) {
        if !idle_now {
            self.since_s = None;
            self.streak_s = 0.0;
            self.streak_j = 0.0;
            self.flagged = false;
            return;
        }
        let since = *self.since_s.get_or_insert(now_s);
        self.streak_s = now_s - since;
        self.streak_j += gpu_j;
        if self.flagged {
            self.wasted_j += gpu_j;
        } else if self.streak_s >= after_s {
            self.flagged = true;
            // The whole streak was wasted, not just the part after the flag went up.
            self.wasted_j += self.streak_j;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_after_threshold_and_counts_whole_streak() {
        let mut t = IdleTrack::default();
        for i in 0..=10 {
            t.update(true, i as f64 * 60.0, 5.0, 300.0);
        }
        assert!(t.flagged);
        assert_eq!(t.streak_s, 600.0);
        assert_eq!(t.wasted_j, 55.0);
        t.update(false, 660.0, 5.0, 300.0);
        assert!(!t.flagged);
        assert_eq!(t.wasted_j, 55.0, "wasted energy stays after the streak ends");
    }

    #[test]
    fn short_streak_is_not_flagged() {
        let mut t = IdleTrack::default();
        t.update(true, 0.0, 1.0, 300.0);
        t.update(true, 200.0, 1.0, 300.0);
        t.update(false, 250.0, 1.0, 300.0);
        assert!(!t.flagged);
        assert_eq!(t.wasted_j, 0.0);
    }
}
