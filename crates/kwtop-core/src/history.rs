//! Power history for the live view: fixed-capacity ring buffers in resolution tiers (DESIGN §6).
//!
//! Memory is bounded by configuration, not by session length: a ring grows as it fills, never past
//! its capacity, and once full a push never allocates (so a short session holds only what it has
//! seen). Coarser tiers hold bucket averages, so a 30-day session keeps 1-minute resolution at a
//! cost of a few hundred kilobytes per series. Pure data:
//! time is the session second carried by the samples, never a clock read here.

use crate::fasthash::FastMap;
use crate::sample::ProcKey;

/// A bounded ring buffer; the oldest value is overwritten once full. Its memory grows with what it
/// holds (doubling, never past the capacity), and a push into a full ring never allocates.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    /// The values, oldest at `head` once full (in push order until then).
    buf: Vec<T>,
    cap: usize,
    head: usize,
}

impl<T: Copy> Ring<T> {
    /// A ring holding at most `capacity` values (at least 1); nothing is allocated yet.
    pub fn new(capacity: usize) -> Self {
        Ring {
            buf: Vec::new(),
            cap: capacity.max(1),
            head: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Append, overwriting the oldest value when full.
    pub fn push(&mut self, v: T) {
        let len = self.buf.len();
        if len < self.cap {
            if len == self.buf.capacity() {
                // Exact steps, so the memory never exceeds the capacity.
                self.buf.reserve_exact((len * 2).max(16).min(self.cap) - len);
            }
            self.buf.push(v);
        } else {
            self.buf[self.head] = v;
            self.head = (self.head + 1) % self.cap;
        }
    }

    /// Oldest to newest.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = T> + '_ {
        let len = self.buf.len();
        (0..len).map(move |i| self.buf[(self.head + i) % len])
    }

    pub fn last(&self) -> Option<T> {
        let len = self.buf.len();
        len.checked_sub(1).map(|i| self.buf[(self.head + i) % len])
    }

    /// Replace the newest value (push when empty).
    pub fn set_last(&mut self, v: T) {
        let len = self.buf.len();
        match len.checked_sub(1) {
            Some(i) => self.buf[(self.head + i) % len] = v,
            None => self.push(v),
        }
    }
}

/// One point: session second and watts.
pub type Point = (f64, f64);

#[derive(Debug, Clone)]
struct Tier {
    res_s: f64,
    ring: Ring<(f32, f32)>,
    bucket: Option<i64>,
    sum: f64,
    n: u32,
}

/// A metric kept at several resolutions, e.g. 1 s for 15 min, 10 s for 24 h, 5 min for 30 days.
/// Times are stored as `f32` session seconds (0.25 s precision after 30 days).
///
/// Every tier is bucketed by time, not by count, so it holds its stated wall time at any sampling
/// interval: the finest tier keeps one point per resolution step (pushes closer than that are
/// averaged in place, its newest point being the running mean stamped at the newest push), and
/// at a slower interval each push is its own point (it then holds more than stated).
#[derive(Debug, Clone)]
pub struct Series {
    tiers: Vec<Tier>,
    /// The newest value pushed, watts.
    last_w: Option<f64>,
}

/// The default tiers: (resolution seconds, points): 1 s × 15 min, 10 s × 24 h, 5 min × 30 days
/// (about 145 KiB per series once all are full), whatever the sampling interval.
pub const DEFAULT_TIERS: [(f64, usize); 3] = [(1.0, 900), (10.0, 8640), (300.0, 8640)];
/// Tiers of per-process series: 1 s × 15 min, 10 s × 1 h.
pub const PROCESS_TIERS: [(f64, usize); 2] = [(1.0, 900), (10.0, 360)];

impl Series {
    /// `tiers`: (resolution seconds, points), finest first: each tier covers at least
    /// resolution × points seconds. The finest tier keeps one point per resolution step (two
    /// spare slots: its newest point is still filling, and a step's pushes may straddle its edge).
    pub fn new(tiers: &[(f64, usize)]) -> Self {
        Series {
            tiers: tiers
                .iter()
                .enumerate()
                .map(|(i, &(res_s, cap))| Tier {
                    res_s: if res_s.is_finite() && res_s > 0.0 {
                        res_s
                    } else {
                        1.0
                    },
                    ring: Ring::new(if i == 0 { cap + 2 } else { cap }),
                    bucket: None,
                    sum: 0.0,
                    n: 0,
                })
                .collect(),
            last_w: None,
        }
    }

    /// Record `w` watts at session second `t_s`. Non-finite values are stored as 0 W.
    pub fn push(&mut self, t_s: f64, w: f64) {
        let w = if w.is_finite() { w } else { 0.0 };
        self.last_w = Some(w);
        for (i, tier) in self.tiers.iter_mut().enumerate() {
            if i == 0 {
                // Steps centred on multiples of the resolution, so pushes at whole seconds (±
                // float noise) at a 1 s interval never share a step.
                let b = (t_s / tier.res_s).round() as i64;
                if tier.bucket == Some(b) && tier.n > 0 {
                    tier.sum += w;
                    tier.n += 1;
                    let mean = tier.sum / f64::from(tier.n);
                    tier.ring.set_last((t_s as f32, mean as f32));
                } else {
                    tier.bucket = Some(b);
                    tier.sum = w;
                    tier.n = 1;
                    tier.ring.push((t_s as f32, w as f32));
                }
                continue;
            }
            let b = (t_s / tier.res_s).floor() as i64;
            match tier.bucket {
                Some(cur) if cur == b => {}
                Some(cur) => {
                    if tier.n > 0 {
                        let mean = tier.sum / f64::from(tier.n);
                        tier.ring
                            .push((((cur as f64 + 1.0) * tier.res_s) as f32, mean as f32));
                    }
                    tier.bucket = Some(b);
                    tier.sum = 0.0;
                    tier.n = 0;
                }
                None => tier.bucket = Some(b),
            }
            tier.sum += w;
            tier.n += 1;
        }
    }

    /// The newest value pushed, watts.
    pub fn last(&self) -> Option<f64> {
        self.last_w
    }

    /// Points within the last `span_s` seconds before `now_s`, from the finest tier that covers
    /// the span (or the coarsest one), oldest first.
    pub fn window(&self, now_s: f64, span_s: f64) -> Vec<Point> {
        let from = now_s - span_s;
        let tier = self
            .tiers
            .iter()
            .find(|t| {
                let covered = t.res_s * t.ring.capacity() as f64;
                covered >= span_s || t.ring.iter().next().is_some_and(|(t0, _)| f64::from(t0) <= from)
            })
            .or(self.tiers.last());
        let Some(tier) = tier else { return Vec::new() };
        let mut pts: Vec<Point> = tier
            .ring
            .iter()
            .map(|(t, v)| (f64::from(t), f64::from(v)))
            .filter(|(t, _)| *t >= from && *t <= now_s)
            .collect();
        // Coarse tiers lag by one bucket: add the newest fine point so the line reaches "now".
        if !std::ptr::eq(tier, &self.tiers[0])
            && let Some((t, v)) = self.tiers[0].ring.last()
            && pts.last().is_none_or(|(lt, _)| *lt < f64::from(t))
        {
            pts.push((f64::from(t), f64::from(v)));
        }
        pts
    }
}

/// Everything the live view charts.
#[derive(Debug, Clone)]
pub struct History {
    pub total: Series,
    /// Per device id, in ledger order.
    pub devices: Vec<(String, Series)>,
    procs: FastMap<ProcKey, Series>,
    /// Per-process series are kept for this many processes (the top by power).
    pub top_n: usize,
    /// Session second of the newest push.
    pub now_s: f64,
}

impl Default for History {
    fn default() -> Self {
        History::new(20)
    }
}

impl History {
    pub fn new(top_n: usize) -> Self {
        History {
            total: Series::new(&DEFAULT_TIERS),
            devices: Vec::new(),
            procs: FastMap::default(),
            top_n,
            now_s: 0.0,
        }
    }

    /// Record one interval: total, per-device (id, W) and per-process (key, W) powers at `t_s`.
    /// Only the `top_n` processes by power get (or keep) a series; a series of a process that
    /// left the top N is dropped once a newcomer needs its slot.
    pub fn push(&mut self, t_s: f64, total_w: f64, devices: &[(&str, f64)], procs: &[(ProcKey, f64)]) {
        self.now_s = t_s;
        self.total.push(t_s, total_w);
        for (id, w) in devices {
            match self.devices.iter_mut().find(|(d, _)| d == id) {
                Some((_, s)) => s.push(t_s, *w),
                None => {
                    let mut s = Series::new(&DEFAULT_TIERS);
                    s.push(t_s, *w);
                    self.devices.push(((*id).to_string(), s));
                }
            }
        }
        // The top N by power, highest first (only they are sorted, not every process).
        let mut ranked: Vec<(ProcKey, f64)> = procs.to_vec();
        let by_power = |a: &(ProcKey, f64), b: &(ProcKey, f64)| b.1.total_cmp(&a.1);
        if ranked.len() > self.top_n {
            ranked.select_nth_unstable_by(self.top_n, by_power);
            ranked.truncate(self.top_n);
        }
        ranked.sort_by(by_power);
        for (key, w) in procs {
            if let Some(s) = self.procs.get_mut(key) {
                s.push(t_s, *w);
            }
        }
        for (key, w) in ranked.iter().take(self.top_n) {
            if self.procs.contains_key(key) {
                continue;
            }
            if self.procs.len() >= self.top_n {
                // Evict a tracked process that is not in the current top N.
                let top: Vec<ProcKey> = ranked.iter().take(self.top_n).map(|(k, _)| *k).collect();
                let victim = self.procs.keys().find(|k| !top.contains(k)).copied();
                match victim {
                    Some(v) => {
                        self.procs.remove(&v);
                    }
                    None => continue,
                }
            }
            let mut s = Series::new(&PROCESS_TIERS);
            s.push(t_s, *w);
            self.procs.insert(*key, s);
        }
    }

    pub fn process(&self, key: &ProcKey) -> Option<&Series> {
        self.procs.get(key)
    }

    pub fn device(&self, id: &str) -> Option<&Series> {
        self.devices.iter().find(|(d, _)| d == id).map(|(_, s)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_overwrites_oldest() {
        let mut r: Ring<u32> = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.last(), Some(4));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn ring_grows_to_its_capacity_and_no_further() {
        let mut r: Ring<(f32, f32)> = Ring::new(900);
        assert_eq!(r.buf.capacity(), 0, "nothing allocated before the first push");
        r.push((0.0, 1.0));
        assert!(r.buf.capacity() <= 16);
        for i in 1..900 {
            r.push((i as f32, 1.0));
            assert!(r.buf.capacity() <= 900);
        }
        assert_eq!(r.buf.capacity(), 900, "exactly the capacity when full");
        for i in 900..5000 {
            r.push((i as f32, 1.0));
        }
        assert_eq!(r.buf.capacity(), 900, "a push into a full ring never allocates");
        assert_eq!(r.len(), 900);
        assert_eq!(r.iter().next(), Some((4100.0, 1.0)));
        assert_eq!(r.last(), Some((4999.0, 1.0)));
        r.set_last((7.0, 7.0));
        assert_eq!(r.iter().last(), Some((7.0, 7.0)));
    }

    #[test]
    fn coarse_tier_averages_buckets() {
        let mut s = Series::new(&[(1.0, 5), (10.0, 10)]);
        for t in 0..30 {
            s.push(f64::from(t), if t < 10 { 100.0 } else { 200.0 });
        }
        // 30 s span > 5 s fine coverage: coarse tier, two closed buckets + newest fine point.
        let w = s.window(29.0, 30.0);
        assert_eq!(w[0], (10.0, 100.0));
        assert_eq!(w[1], (20.0, 200.0));
        assert_eq!(*w.last().unwrap_or(&(0.0, 0.0)), (29.0, 200.0));
        // Short span: fine tier.
        assert_eq!(s.window(29.0, 3.0).len(), 4);
    }

    /// Oldest time held by the finest tier.
    fn fine_oldest(s: &Series) -> f64 {
        s.tiers[0]
            .ring
            .iter()
            .next()
            .map_or(f64::NAN, |(t, _)| f64::from(t))
    }

    /// The 1 s tier holds its 15 minutes at 250 ms, 1 s and 5 s intervals (and 100 ms, the
    /// shortest allowed), with 1 s resolution or the interval's when slower, and no more memory.
    #[test]
    fn fine_tier_holds_its_wall_time_at_any_interval() {
        for interval in [0.1, 0.25, 1.0, 5.0] {
            let mut s = Series::new(&DEFAULT_TIERS);
            let cap = s.tiers[0].ring.capacity();
            // 20 minutes, times accumulated like the ledger's session seconds (with float noise).
            let (mut t, mut now) = (0.0_f64, 0.0);
            let n = (1200.0 / interval) as usize;
            for i in 0..n {
                t += interval;
                now = t;
                s.push(t, if i.is_multiple_of(2) { 100.0 } else { 200.0 });
            }
            assert_eq!(s.tiers[0].ring.capacity(), cap, "no growth at {interval} s");
            let oldest = fine_oldest(&s);
            assert!(
                now - oldest >= 900.0,
                "{interval} s interval: the 1 s tier holds only {} s",
                now - oldest
            );
            // The 15-minute window comes from the fine tier and reaches back to its start.
            let w = s.window(now, 900.0);
            assert!(
                w[0].0 <= now - 900.0 + interval.max(1.0),
                "{interval}: starts at {}",
                w[0].0
            );
            let steps: Vec<f64> = w.windows(2).map(|p| p[1].0 - p[0].0).collect();
            let max_step = steps.iter().copied().fold(0.0, f64::max);
            assert!(
                max_step <= interval.max(1.0) * 1.5 + 1e-3,
                "{interval}: step {max_step}"
            );
            if interval < 1.0 {
                // Several pushes per second are averaged, not dropped.
                let mid = w[w.len() / 2].1;
                assert!((mid - 150.0).abs() <= 25.0, "{interval}: {mid}");
            }
            assert_eq!(
                s.last(),
                Some(if (n - 1).is_multiple_of(2) { 100.0 } else { 200.0 })
            );
        }
    }

    #[test]
    fn fine_tier_keeps_every_push_at_one_second() {
        let mut s = Series::new(&[(1.0, 10)]);
        for i in 1..=5 {
            // Whole seconds with float noise either side.
            let noise = if i % 2 == 0 { 1e-9 } else { -1e-9 };
            s.push(f64::from(i) + noise, f64::from(i));
        }
        let w = s.window(5.0, 10.0);
        assert_eq!(
            w.iter().map(|p| p.1).collect::<Vec<_>>(),
            vec![1.0, 2.0, 3.0, 4.0, 5.0]
        );
    }

    #[test]
    fn history_keeps_top_n_processes() {
        let mut h = History::new(2);
        let k = |pid| ProcKey { pid, starttime: 1 };
        h.push(
            1.0,
            10.0,
            &[("cpu0", 10.0)],
            &[(k(1), 5.0), (k(2), 3.0), (k(3), 1.0)],
        );
        assert!(h.process(&k(1)).is_some() && h.process(&k(2)).is_some());
        assert!(h.process(&k(3)).is_none());
        h.push(2.0, 10.0, &[("cpu0", 10.0)], &[(k(1), 5.0), (k(3), 4.0)]);
        assert!(h.process(&k(3)).is_some());
        assert!(h.process(&k(2)).is_none());
        assert_eq!(h.device("cpu0").and_then(Series::last), Some(10.0));
    }
}
