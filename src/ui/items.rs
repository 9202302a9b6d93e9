//! A line made of items that shortens by whole items, so no word is ever cut: each item has one or
//! more forms, longest first, each with a rank; to fit a width, forms are given up lowest rank
//! first (an item whose last form is given up disappears). A rank of [`KEEP`] is never given up.
//! Pure; the header is built from it.

use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthStr;

/// The rank of a form that is never given up.
pub const KEEP: u8 = u8::MAX;

/// One item of a line: what goes before it when it is not first, and its forms.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    /// Drawn before the item unless it is the first one shown (`" · "`, `"  "`).
    pub gap: &'static str,
    /// `(rank, spans)`, longest first; the ranks rise from form to form.
    pub forms: Vec<(u8, Vec<Span<'a>>)>,
}

impl<'a> Item<'a> {
    /// An item with one form.
    pub fn new(gap: &'static str, rank: u8, spans: Vec<Span<'a>>) -> Self {
        Item {
            gap,
            forms: vec![(rank, spans)],
        }
    }

    /// A shorter form, given up at `rank` (above the ranks of the longer ones).
    pub fn or(mut self, rank: u8, spans: Vec<Span<'a>>) -> Self {
        self.forms.push((rank, spans));
        self
    }

    /// The form shown once every form of rank up to `given_up` is given up.
    fn form(&self, given_up: Option<u8>) -> Option<&[Span<'a>]> {
        self.forms
            .iter()
            .find(|(r, _)| given_up.is_none_or(|g| *r > g))
            .map(|(_, s)| s.as_slice())
    }
}

fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(Span::width).sum()
}

/// The widest line of `items` that fits in `width` cells: every form kept while it fits, then
/// forms given up rank by rank, lowest first. When even the [`KEEP`] forms do not fit, the line
/// has only those (the caller keeps them short).
pub fn fit<'a>(items: &[Item<'a>], width: usize) -> Line<'a> {
    let mut ranks: Vec<u8> = items
        .iter()
        .flat_map(|i| i.forms.iter().map(|(r, _)| *r))
        .filter(|r| *r != KEEP)
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let levels = std::iter::once(None).chain(ranks.into_iter().map(Some));
    let mut chosen: Vec<(&'static str, &[Span<'a>])> = Vec::new();
    for given_up in levels {
        chosen = items
            .iter()
            .filter_map(|i| i.form(given_up).map(|f| (i.gap, f)))
            .collect();
        let w: usize = chosen
            .iter()
            .enumerate()
            .map(|(n, (gap, f))| if n == 0 { 0 } else { gap.width() } + spans_width(f))
            .sum();
        if w <= width {
            break;
        }
    }
    let mut out: Vec<Span<'a>> = Vec::new();
    for (n, (gap, form)) in chosen.into_iter().enumerate() {
        if n > 0 && !gap.is_empty() {
            out.push(Span::raw(gap));
        }
        out.extend(form.iter().cloned());
    }
    Line::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    fn item(gap: &'static str, rank: u8, s: &'static str) -> Item<'static> {
        Item::new(gap, rank, vec![Span::raw(s)])
    }

    fn line() -> Vec<Item<'static>> {
        vec![
            item("", KEEP, "kwtop"),
            item(" · ", 7, "00:06:40"),
            item(" · ", 1, "grid world average 473 g/kWh (2024)")
                .or(4, vec![Span::raw("grid world average 473 g/kWh")])
                .or(6, vec![Span::raw("grid 473 g/kWh")]),
            item(" · ", 3, "PUE 1.00"),
            item(" · ", 2, "2 GPU + 1 CPU pkg"),
        ]
    }

    #[test]
    fn shortens_by_whole_items_lowest_rank_first() {
        let items = line();
        let full = "kwtop · 00:06:40 · grid world average 473 g/kWh (2024) · PUE 1.00 · 2 GPU + 1 CPU pkg";
        assert_eq!(text(&fit(&items, 200)), full);
        assert_eq!(text(&fit(&items, full.chars().count())), full);
        assert_eq!(
            text(&fit(&items, 80)),
            "kwtop · 00:06:40 · grid world average 473 g/kWh · PUE 1.00 · 2 GPU + 1 CPU pkg"
        );
        assert_eq!(
            text(&fit(&items, 60)),
            "kwtop · 00:06:40 · grid world average 473 g/kWh · PUE 1.00"
        );
        assert_eq!(text(&fit(&items, 40)), "kwtop · 00:06:40 · grid 473 g/kWh");
        assert_eq!(text(&fit(&items, 10)), "kwtop");
        // The first item shown never gets its gap.
        let items = vec![item(" · ", 1, "a"), item(" · ", KEEP, "b")];
        assert_eq!(text(&fit(&items, 1)), "b");
    }

    /// At every width the line fits (while the KEEP items do) and is made of whole items only.
    #[test]
    fn never_cuts_a_word() {
        let items = line();
        let words: Vec<String> = text(&fit(&items, 500))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        for w in 5..=120 {
            let l = fit(&items, w);
            assert!(l.width() <= w, "{w}: {}", text(&l));
            for word in text(&l).split_whitespace() {
                assert!(words.iter().any(|x| x == word), "{w}: cut word {word:?}");
            }
        }
    }
}
