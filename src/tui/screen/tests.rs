//! The writer's bytes applied to a model terminal must show exactly the frame drawn.

use proptest::prelude::*;
use ratatui::buffer::{Buffer, CellWidth};
use ratatui::style::{Color, Modifier, Style};
use unicode_width::UnicodeWidthChar;

use super::{ON, Pen, Screen, Shown};
use ratatui::buffer::Cell;

#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Glyph(String, Pen),
    /// Covered by the wide glyph on its left.
    Cont,
    /// What a real terminal shows here is not known (half of a wide glyph, or a resize).
    Garbage,
}

/// A terminal as far as the writer may use one (xterm and tmux agree on all of it); anything
/// else it is sent panics.
struct Term {
    w: usize,
    h: usize,
    cells: Vec<Slot>,
    x: usize,
    y: usize,
    /// A glyph was printed in the last column: the next printable character would wrap.
    pending: bool,
    pen: Pen,
    /// The last glyph printed, for zero-width characters.
    last: Option<usize>,
}

const NAMED: [Color; 16] = [
    Color::Black,
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::Gray,
    Color::DarkGray,
    Color::LightRed,
    Color::LightGreen,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
    Color::White,
];

impl Term {
    /// A terminal of unknown content, cursor and attributes.
    fn new(w: usize, h: usize) -> Term {
        Term {
            w,
            h,
            cells: vec![Slot::Garbage; w * h],
            x: w / 2,
            y: h / 2,
            pending: false,
            pen: Pen {
                fg: Color::Red,
                mods: Modifier::BOLD | Modifier::REVERSED,
                ..Pen::DEFAULT
            },
            last: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let text = std::str::from_utf8(bytes).expect("UTF-8");
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '\x1b' => {
                    assert_eq!(chars.next(), Some('['), "only CSI sequences");
                    let mut params = String::new();
                    let f = loop {
                        match chars.next().expect("unfinished CSI") {
                            c @ ('0'..='9' | ';') => params.push(c),
                            f => break f,
                        }
                    };
                    self.csi(&params, f);
                }
                '\r' => {
                    self.x = 0;
                    self.pending = false;
                    self.last = None;
                }
                '\n' => {
                    assert!(!self.pending, "LF with a wrap pending");
                    assert!(self.y + 1 < self.h, "LF would scroll");
                    self.y += 1;
                    self.last = None;
                }
                c => self.print(c),
            }
        }
    }

    fn csi(&mut self, params: &str, f: char) {
        let n: Vec<usize> = params
            .split(';')
            .map(|p| {
                if p.is_empty() {
                    0
                } else {
                    p.parse().expect("number")
                }
            })
            .collect();
        let arg = |i: usize| n.get(i).copied().filter(|&v| v > 0).unwrap_or(1);
        if f == 'm' {
            return self.sgr(&n);
        }
        self.last = None;
        match f {
            'H' => {
                (self.y, self.x) = (arg(0) - 1, arg(1) - 1);
                assert!(self.x < self.w && self.y < self.h, "CSI H outside: {params}");
                self.pending = false;
            }
            'A' | 'B' | 'C' | 'D' => {
                assert!(!self.pending, "CSI {f} with a wrap pending");
                let n = arg(0);
                match f {
                    'A' => self.y = self.y.checked_sub(n).expect("CSI A past the top"),
                    'B' => self.y += n,
                    'C' => self.x += n,
                    _ => self.x = self.x.checked_sub(n).expect("CSI D past the left"),
                }
                assert!(self.x < self.w && self.y < self.h, "CSI {params}{f} outside");
            }
            'K' => {
                assert!(params.is_empty() && !self.pending);
                let row = self.y * self.w;
                self.erase(row + self.x, row + self.w);
            }
            'J' => {
                assert_eq!(params, "2");
                self.erase(0, self.w * self.h);
            }
            _ => panic!("unexpected CSI {params}{f}"),
        }
    }

    /// Erases take the background colour, no other attribute (the writer sends none).
    fn erase(&mut self, from: usize, to: usize) {
        assert!(self.pen.mods.is_empty(), "erase with modifiers on");
        self.damage_left(from);
        let blank = Pen {
            bg: self.pen.bg,
            ..Pen::DEFAULT
        };
        self.cells[from..to].fill(Slot::Glyph(" ".into(), blank));
    }

    /// Cell `at` is overwritten: a wide glyph it was part of is damaged.
    fn damage_left(&mut self, at: usize) {
        let row = at - at % self.w;
        let mut i = at;
        while i > row && self.cells[i] == Slot::Cont {
            i -= 1;
            self.cells[i] = Slot::Garbage;
        }
    }

    fn print(&mut self, c: char) {
        let cw = c.width().expect("no control characters");
        if cw == 0 {
            let i = self.last.expect("a zero-width character after a glyph");
            if let Slot::Glyph(s, _) = &mut self.cells[i] {
                s.push(c);
            }
            return;
        }
        assert!(!self.pending, "printing {c:?} would wrap");
        assert!(self.x + cw <= self.w, "{c:?} does not fit");
        let at = self.y * self.w + self.x;
        self.damage_left(at);
        let mut j = at + cw;
        while j < (self.y + 1) * self.w && self.cells[j] == Slot::Cont {
            self.cells[j] = Slot::Garbage;
            j += 1;
        }
        self.cells[at] = Slot::Glyph(c.into(), self.pen);
        self.cells[at + 1..at + cw].fill(Slot::Cont);
        self.last = Some(at);
        self.x += cw;
        if self.x == self.w {
            self.x -= 1;
            self.pending = true;
        }
    }

    fn sgr(&mut self, n: &[usize]) {
        let p = &mut self.pen;
        let mut i = 0;
        while i < n.len() {
            match n[i] {
                0 => *p = Pen::DEFAULT,
                c @ 1..=9 => p.mods |= ON[c - 1].0,
                22 => p.mods -= Modifier::BOLD | Modifier::DIM,
                23 => p.mods -= Modifier::ITALIC,
                24 => p.mods -= Modifier::UNDERLINED,
                25 => p.mods -= Modifier::SLOW_BLINK | Modifier::RAPID_BLINK,
                27 => p.mods -= Modifier::REVERSED,
                28 => p.mods -= Modifier::HIDDEN,
                29 => p.mods -= Modifier::CROSSED_OUT,
                c @ 30..=37 => p.fg = NAMED[c - 30],
                c @ 90..=97 => p.fg = NAMED[c - 90 + 8],
                c @ 40..=47 => p.bg = NAMED[c - 40],
                c @ 100..=107 => p.bg = NAMED[c - 100 + 8],
                38 => p.fg = extended(n, &mut i),
                48 => p.bg = extended(n, &mut i),
                58 => p.ul = extended(n, &mut i),
                39 => p.fg = Color::Reset,
                49 => p.bg = Color::Reset,
                59 => p.ul = Color::Reset,
                c => panic!("unexpected SGR {c}"),
            }
            i += 1;
        }
    }

    /// The screen shows `buf`: each glyph with its style, the cells it covers as covered.
    fn assert_shows(&self, buf: &Buffer) {
        assert_eq!((self.w, self.h), (buf.area.width.into(), buf.area.height.into()));
        for y in 0..self.h {
            let mut x = 0;
            while x < self.w {
                let c = &buf[(x as u16, y as u16)];
                let w = usize::from(c.symbol().cell_width());
                let at = y * self.w + x;
                let want = Slot::Glyph(c.symbol().into(), Pen::of(c));
                assert_eq!(self.cells[at], want, "cell ({x}, {y})");
                assert!(self.cells[at + 1..at + w].iter().all(|s| *s == Slot::Cont));
                x += w;
            }
        }
    }
}

/// `38;5;n` or `38;2;r;g;b` (and 48, 58) at `n[*i]`; leaves `*i` on its last parameter.
fn extended(n: &[usize], i: &mut usize) -> Color {
    let c = match n[*i + 1] {
        5 => Color::Indexed(n[*i + 2] as u8),
        2 => Color::Rgb(n[*i + 2] as u8, n[*i + 3] as u8, n[*i + 4] as u8),
        k => panic!("SGR {} {k}", n[*i]),
    };
    *i += if n[*i + 1] == 5 { 2 } else { 4 };
    c
}

/// A random piece of text drawn somewhere: (x, y, symbols, style).
type Put = (u16, u16, String, Style);

fn draw(buf: &mut Buffer, puts: &[Put]) {
    let a = buf.area;
    for (x, y, s, style) in puts {
        buf.set_stringn(x % a.width, y % a.height, s, usize::MAX, *style);
    }
}

fn arb_style() -> impl Strategy<Value = Style> {
    let color = || {
        prop_oneof![
            Just(Color::Reset),
            Just(Color::Red),
            Just(Color::LightCyan),
            Just(Color::Gray),
            any::<u8>().prop_map(Color::Indexed),
            Just(Color::Rgb(1, 20, 255)),
        ]
    };
    let ul = prop_oneof![
        Just(Color::Reset),
        Just(Color::Indexed(5)),
        Just(Color::Rgb(9, 8, 7))
    ];
    let any_style = (color(), color(), ul, 0u16..512).prop_map(|(fg, bg, ul, m)| {
        Style::new()
            .fg(fg)
            .bg(bg)
            .underline_color(ul)
            .add_modifier(Modifier::from_bits_truncate(m))
    });
    prop_oneof![2 => Just(Style::new()), 1 => any_style]
}

fn arb_put() -> impl Strategy<Value = Put> {
    let sym = prop::sample::select(vec!["a", "b", " ", "世", "界", "é", "e\u{301}", "─"]);
    let text = prop::collection::vec(sym, 0..8).prop_map(|v| v.concat());
    (0u16..16, 0u16..8, text, arb_style())
}

/// One frame: a new size (or the same one), whether to invalidate first, what is drawn.
type Step = (Option<(u16, u16)>, bool, Vec<Put>);

fn arb_step() -> impl Strategy<Value = Step> {
    let size = prop::option::weighted(0.2, (1u16..12, 1u16..5));
    (
        size,
        prop::bool::weighted(0.1),
        prop::collection::vec(arb_put(), 0..10),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Every frame's bytes, applied to the terminal as the previous frames left it, show exactly
    /// that frame; drawing it again sends nothing.
    #[test]
    fn bytes_turn_the_screen_into_the_frame(
        w0 in 1u16..12,
        h0 in 1u16..5,
        steps in prop::collection::vec(arb_step(), 1..5),
    ) {
        let (mut w, mut h) = (w0, h0);
        let mut screen = Screen::new();
        let mut term = Term::new(w.into(), h.into());
        for (size, invalidate, puts) in steps {
            if let Some((nw, nh)) = size.filter(|&s| s != (w, h)) {
                (w, h) = (nw, nh);
                let pen = term.pen;
                term = Term::new(w.into(), h.into());
                term.pen = pen;
            }
            if invalidate {
                screen.invalidate();
            }
            term.feed(screen.frame(w, h, |buf| draw(buf, &puts)));
            let mut want = Buffer::empty(ratatui::layout::Rect::new(0, 0, w, h));
            draw(&mut want, &puts);
            term.assert_shows(&want);
            prop_assert!(screen.frame(w, h, |buf| draw(buf, &puts)).is_empty());
        }
    }
}

fn text_frame(screen: &mut Screen, lines: &[(u16, &str, Style)]) -> Vec<u8> {
    screen
        .frame(120, 40, |buf| {
            for &(y, s, style) in lines {
                buf.set_string(0, y, s, style);
            }
        })
        .to_vec()
}

#[test]
fn small_changes_send_few_bytes() {
    let mut s = Screen::new();
    let red = Style::new().fg(Color::Red);
    let first = text_frame(&mut s, &[(5, "hello world", red), (6, "12.5 W", Style::new())]);
    assert!(first.starts_with(b"\x1b[0m\x1b[2J"));
    assert!(text_frame(&mut s, &[(5, "hello world", red), (6, "12.5 W", Style::new())]).is_empty());
    // One cell: a frame's first move is absolute (the cursor is not trusted across frames); the pen
    // is still the default.
    let one = text_frame(&mut s, &[(5, "hello world", red), (6, "13.5 W", Style::new())]);
    assert_eq!(one, b"\x1b[7;2H3");
    // Two cells with one unchanged between: written over rather than moved over.
    let two = text_frame(&mut s, &[(5, "hello world", red), (6, "14.0 W", Style::new())]);
    assert_eq!(two, b"\x1b[7;2H4.0");
    // Only the colour changes: the SGR, short.
    let bold = Style::new().fg(Color::LightRed).add_modifier(Modifier::BOLD);
    let recolor = text_frame(&mut s, &[(5, "hello world", bold), (6, "14.0 W", Style::new())]);
    assert_eq!(recolor, b"\x1b[6H\x1b[1;91mhello world");
    // A line that becomes blank from some column on is erased.
    let cut = text_frame(&mut s, &[(5, "hello", bold), (6, "14.0 W", Style::new())]);
    // (With bold off and the default background: the foreground does not matter to an erase.)
    assert_eq!(cut, b"\x1b[6;6H\x1b[22m\x1b[K");
}

#[test]
fn moves_are_short() {
    let mut s = Screen::new();
    let frame = |s: &mut Screen, at: &[(u16, u16)]| {
        s.frame(120, 40, |buf| {
            for &(x, y) in at {
                buf[(x, y)].set_symbol("x");
            }
        })
        .to_vec()
    };
    frame(&mut s, &[]);
    // Absolute with the 1s left out, LFs, relative steps right, a CR after the last column.
    let out = frame(
        &mut s,
        &[(0, 0), (0, 2), (9, 2), (60, 3), (119, 3), (0, 4), (5, 30)],
    );
    let want = "\x1b[Hx\r\n\nx\x1b[8Cx\n\x1b[50Cx\x1b[58Cx\r\nx\x1b[31;6Hx";
    assert_eq!(String::from_utf8_lossy(&out), want);
    // A later frame starts with an absolute move, whatever the cursor's last place.
    let out = frame(
        &mut s,
        &[
            (0, 0),
            (0, 2),
            (9, 2),
            (60, 3),
            (119, 3),
            (0, 4),
            (5, 30),
            (5, 29),
        ],
    );
    assert_eq!(String::from_utf8_lossy(&out), "\x1b[30;6Hx");
}

/// The SGR parameters of every `CSI … m` in `bytes`.
fn sgr_params(bytes: &[u8]) -> Vec<usize> {
    let text = String::from_utf8_lossy(bytes);
    text.split("\x1b[")
        .skip(1)
        .filter_map(|seq| seq.split_once('m').map(|(p, _)| p))
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit() || b == b';'))
        .flat_map(|p| p.split(';').filter_map(|n| n.parse().ok()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn no_color_sends_no_colours() {
    use crate::app::{App, AppParams, Msg, ViewOptions};
    use crate::sample::DeviceKind;
    use crate::testing;
    for color in [false, true] {
        let mut app = App::new(
            &AppParams::default(),
            ViewOptions {
                color,
                ..ViewOptions::default()
            },
        );
        for i in 0..3u64 {
            let s = testing::sample_at(i as f64)
                .cpu(i * 100, i * 100)
                .procs([testing::process(10, 1, i * 50).comm("p10").build()])
                .devices([testing::counter(
                    "cpu0",
                    DeviceKind::Cpu,
                    "package-0",
                    i * 50_000_000,
                )])
                .build();
            app.update(Msg::Sample(Box::new(s)));
        }
        let mut screen = Screen::new();
        let out = screen
            .frame(120, 40, |buf| crate::ui::draw(&app, buf.area, buf))
            .to_vec();
        let colours = sgr_params(&out)
            .into_iter()
            .filter(|n| matches!(n, 30..=49 | 58 | 59 | 90..=107))
            .count();
        assert_eq!(colours > 0, color, "colour codes with color = {color}");
    }
}

#[test]
fn what_the_screen_shows_costs_20_bytes_a_cell() {
    assert_eq!(std::mem::size_of::<Shown>(), 20);
    let mut long = Vec::new();
    let mut wide = Cell::new("e\u{301}\u{301}");
    wide.fg = Color::Red;
    let s = Shown::of(&wide, &mut long);
    assert_eq!(s.symbol(&long), "e\u{301}\u{301}");
    assert!(s.same(&wide, &long));
    assert!(!s.same(&Cell::new("e"), &long));
    assert!(Shown::EMPTY.same(&Cell::EMPTY, &long));
}
