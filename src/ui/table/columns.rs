//! Which columns of the process table fit a width, decided in one place: [`PRIORITY`] lists every
//! column from most to least important with the width it needs, and a table of width `w` shows
//! the longest head of that list that fits. As the terminal narrows, columns go from the end of
//! the list first (AVG W, DEV, USER, ...), so at 80 columns the watts, the energy and its CO2e
//! stay, and at 120 columns with GPUs the everyday-equivalent column (`c` cycles it) is there too.
//! COMMAND takes every cell the kept columns leave. Pure.

use crate::app::Column;

/// Every column, most important first, with its minimum width in cells. STATE's is the longest
/// state text on screen (8 to 16 cells: `IDLE 42m gpu1`); COMMAND's is what it needs to stay
/// readable (it takes the rest of the line).
pub const PRIORITY: [(Column, u16); 14] = [
    (Column::Pid, 7),
    (Column::Command, 20),
    (Column::TotalW, 8),
    (Column::Energy, 10),
    (Column::Co2e, 8),
    (Column::State, 8),
    (Column::GpuW, 7),
    (Column::CpuW, 7),
    (Column::Equiv, 7),
    (Column::GpuPct, 4),
    (Column::GpuMem, 7),
    (Column::User, 8),
    (Column::Dev, 4),
    (Column::AvgW, 7),
];

/// Widest STATE column (longer state texts are cut with a marker).
const STATE_MAX: u16 = 16;

/// Columns about GPUs, left out when the machine has none.
fn gpu_only(c: Column) -> bool {
    matches!(c, Column::GpuW | Column::GpuPct | Column::GpuMem | Column::Dev)
}

/// The minimum width of `c` from [`PRIORITY`].
pub fn min_width(c: Column) -> u16 {
    PRIORITY.iter().find(|(p, _)| *p == c).map_or(0, |(_, w)| *w)
}

/// Width of the STATE column for rows whose longest state text is `longest` cells: 8 to 16.
pub fn state_width(longest: usize) -> u16 {
    u16::try_from(longest)
        .unwrap_or(u16::MAX)
        .clamp(min_width(Column::State), STATE_MAX)
}

/// The columns shown in `width` cells and their widths, in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths {
    pub cols: Vec<Column>,
    pub state_w: u16,
    pub cmd_w: u16,
}

impl Widths {
    /// The longest head of [`PRIORITY`] (GPU columns only with `has_gpu`) whose widths and the
    /// one-cell gaps between them fit in `width`; COMMAND gets the cells left over.
    pub fn fit(width: u16, has_gpu: bool, state_w: u16) -> Widths {
        let of = |c: Column| if c == Column::State { state_w } else { min_width(c) };
        let mut keep: Vec<Column> = Vec::new();
        let mut used: u16 = 0;
        for (c, _) in PRIORITY.iter().filter(|(c, _)| has_gpu || !gpu_only(*c)) {
            let gap = u16::from(!keep.is_empty());
            let need = used.saturating_add(gap).saturating_add(of(*c));
            if need > width {
                break;
            }
            used = need;
            keep.push(*c);
        }
        let cols: Vec<Column> = Column::ALL.iter().copied().filter(|c| keep.contains(c)).collect();
        let fixed: u16 = cols
            .iter()
            .filter(|c| **c != Column::Command)
            .map(|c| of(*c) + 1)
            .sum();
        Widths {
            cols,
            state_w,
            cmd_w: width.saturating_sub(fixed).max(1),
        }
    }

    /// The width of column `c`.
    pub fn of(&self, c: Column) -> u16 {
        match c {
            Column::Command => self.cmd_w,
            Column::State => self.state_w,
            c => min_width(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(width: u16, has_gpu: bool, state_w: u16) -> Vec<Column> {
        Widths::fit(width, has_gpu, state_w).cols
    }

    #[test]
    fn every_column_is_listed_once() {
        for c in Column::ALL {
            assert_eq!(PRIORITY.iter().filter(|(p, _)| *p == c).count(), 1, "{c:?}");
        }
    }

    /// Issue 15: at 80 columns the watts, energy and CO2e stay and USER, AVG W go first; at 120
    /// with GPUs the equivalents column is shown; at 160 everything is.
    #[test]
    fn issue_15_essentials_at_80_equivalents_at_120() {
        for state_w in [8, 12, 16] {
            let c = cols(80, true, state_w);
            for must in [
                Column::Pid,
                Column::TotalW,
                Column::Energy,
                Column::Co2e,
                Column::Command,
            ] {
                assert!(c.contains(&must), "80, state {state_w}: {must:?} in {c:?}");
            }
            assert!(!c.contains(&Column::User) && !c.contains(&Column::AvgW), "{c:?}");
            let c = cols(120, true, state_w);
            assert!(c.contains(&Column::Equiv), "120, state {state_w}: {c:?}");
            assert!(c.contains(&Column::GpuW) && c.contains(&Column::CpuW), "{c:?}");
            assert_eq!(cols(160, true, state_w).len(), Column::ALL.len());
        }
        let cpu = cols(80, false, 8);
        assert!(
            cpu.contains(&Column::Co2e) && cpu.contains(&Column::CpuW),
            "{cpu:?}"
        );
        assert!(cols(250, false, 8).iter().all(|c| !gpu_only(*c)));
        assert!(cols(120, false, 8).contains(&Column::Equiv));
    }

    /// Widening the terminal only ever adds columns, in priority order, and the line is filled
    /// exactly (no column cut, COMMAND never below its minimum once shown).
    #[test]
    fn columns_grow_in_priority_order_and_fill_the_width() {
        for has_gpu in [false, true] {
            for state_w in [8, 12, 16] {
                let mut prev: Vec<Column> = Vec::new();
                for width in 7..=300u16 {
                    let w = Widths::fit(width, has_gpu, state_w);
                    assert!(prev.iter().all(|c| w.cols.contains(c)), "{width}: lost a column");
                    let listed: Vec<Column> = PRIORITY
                        .iter()
                        .map(|(c, _)| *c)
                        .filter(|c| has_gpu || !gpu_only(*c))
                        .collect();
                    assert!(
                        listed[..w.cols.len()].iter().all(|c| w.cols.contains(c)),
                        "{width}: not a head of the priority list: {:?}",
                        w.cols
                    );
                    if w.cols.contains(&Column::Command) {
                        assert!(w.cmd_w >= min_width(Column::Command));
                        let total: u16 =
                            w.cols.iter().map(|c| w.of(*c)).sum::<u16>() + w.cols.len() as u16 - 1;
                        assert_eq!(total, width, "{width}: {:?}", w.cols);
                    }
                    prev = w.cols;
                }
            }
        }
    }
}
