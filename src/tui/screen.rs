//! The live monitor's screen writer: each frame is drawn into a ratatui [`Buffer`] by the
//! unchanged `ui::draw`, compared with the frame on screen, and only what changed is sent, in as
//! few bytes as this can manage, collected in one reused `Vec<u8>` that the caller writes at once.
//!
//! Why not ratatui's `Terminal` with its crossterm backend (issue 12: the monitor should write at
//! most 0.7x what htop writes for the same screen): that sends an absolute `CSI row;col H` before
//! every run of changed cells, both colours whenever one of them changes, and resets every
//! attribute at the end of each frame, so the next frame sets them all again. Here:
//! - the cursor is not moved when it is already there (it advances by each glyph's width); a short
//!   unchanged gap is written again when that is shorter than moving over it; moves are relative
//!   (CR, LF, `CSI n A/B/C/D`) or absolute (`CSI r;c H`, 1s left out), whichever is shorter;
//! - the terminal's SGR state is kept across the frame and across frames and only what changed is
//!   sent, with the short codes of the 16 named colours; `CSI 0 m` only where switching modifiers
//!   off one by one would be longer;
//! - the rest of a line that becomes blank is erased (`CSI K`) when that is shorter;
//! - the first frame and the first after a resize clear the screen (`CSI 2 J`) and write everything
//!   that is not blank.
//!
//! Over recorded sessions at 120×40 that is 0.6x ratatui's bytes per frame, for slightly less CPU
//! (`examples/screen_bytes`). The attributes of the last frame stay set: `restore_terminal` resets
//! them.
//!
//! A row is a sequence of glyphs, each covering its width in cells (what a wide glyph covers is
//! ignored, as ratatui's diff does). A glyph is written when the screen has no identical glyph
//! starting in the same cell, so whatever overwrites part of a wide glyph on screen rewrites the
//! rest of it as well, and how a terminal shows half a wide character never matters. Cells marked
//! `Skip` are never written. What the terminal shows is kept in 20-byte [`Shown`] cells rather
//! than a second `Buffer` of 48-byte `Cell`s (94 KiB instead of 225 KiB at 120×40). Terminal behaviour relied on: after a glyph in the last column a wrap
//! is pending, which only CR or an absolute move may follow; LF only moves down (raw mode adds no
//! CR); erases fill with the current background colour and no attributes, so they are sent with
//! the default background and no modifiers.

use ratatui::buffer::{Buffer, Cell, CellDiffOption, CellWidth};
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

/// The live monitor's screen: what the terminal shows, and the next frame.
#[derive(Debug)]
pub struct Screen {
    /// What the terminal shows now, row by row (`area`'s width).
    shown: Vec<Shown>,
    /// The symbols of `shown` longer than 4 bytes.
    long: Vec<String>,
    /// The size of `shown`.
    area: Rect,
    /// The next frame, drawn from blank each time.
    next: Buffer,
    /// The next frame needs a clear (start, resize).
    clear: bool,
    w: Writer,
    /// Reused: the glyphs of one row that need writing.
    dirty: Vec<usize>,
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new()
    }
}

impl Screen {
    /// A screen whose first frame clears the terminal.
    pub fn new() -> Self {
        Screen {
            shown: Vec::new(),
            long: Vec::new(),
            area: Rect::default(),
            next: Buffer::empty(Rect::default()),
            clear: true,
            w: Writer::default(),
            dirty: Vec::new(),
        }
    }

    /// Forget what the terminal shows (it was resized): the next frame clears it and writes
    /// everything.
    pub fn invalidate(&mut self) {
        self.clear = true;
    }

    /// Draw the next frame, `width`×`height` cells, with `draw` (into a blank buffer), and return
    /// the bytes that turn the terminal's screen into it: empty when nothing changed.
    pub fn frame(&mut self, width: u16, height: u16, draw: impl FnOnce(&mut Buffer)) -> &[u8] {
        let area = Rect::new(0, 0, width, height);
        self.w.out.clear();
        self.w.width = usize::from(width);
        if self.clear || self.area != area {
            self.area = area;
            self.shown.clear();
            self.shown.resize(area.area() as usize, Shown::EMPTY);
            self.long.clear();
            // Erases take the current background: reset first.
            self.w.out.extend_from_slice(b"\x1b[0m\x1b[2J");
            self.w.st.pen = Pen::DEFAULT;
            self.w.st.cursor = None;
            self.clear = false;
        }
        self.next.resize(area);
        self.next.reset();
        draw(&mut self.next);
        // The cursor is where the last frame left it, not on a glyph boundary of this one.
        self.w.st.placed = false;
        // Nor is it trusted: a glyph the terminal draws wider or narrower than unicode-width says
        // (ambiguous widths, emoji sequences) or stray output would otherwise throw every later
        // relative move off. The first move of a frame is absolute (at most 8 bytes).
        self.w.st.cursor = None;
        let w = self.w.width;
        for y in 0..usize::from(height) {
            let rows = y * w..(y + 1) * w;
            let (t, s) = (&self.next.content[rows.clone()], &self.shown[rows]);
            row(&mut self.w, t, (s, &self.long), y, &mut self.dirty);
        }
        self.long.clear();
        for (s, c) in self.shown.iter_mut().zip(&self.next.content) {
            *s = Shown::of(c, &mut self.long);
        }
        &self.w.out
    }
}

/// Write row `y`: `t` is the next frame's, `s` the screen's (with its long symbols).
fn row(w: &mut Writer, t: &[Cell], (s, long): (&[Shown], &[String]), y: usize, dirty: &mut Vec<usize>) {
    let width = t.len();
    dirty.clear();
    // `sx`: the next glyph start on screen at or after `x`.
    let (mut x, mut sx) = (0, 0);
    while x < width {
        let (_, tw) = glyph(&t[x], width - x);
        if !skipped(&t[x]) {
            while sx < x {
                sx += s[sx].width(long, width - sx);
            }
            if sx == x && s[x].same(&t[x], long) {
                sx += tw;
            } else {
                dirty.push(x);
            }
        }
        x += tw;
    }
    if dirty.is_empty() {
        return;
    }
    // Glyphs from `tail` on are all blank: erasing the rest of the line may be shorter.
    let last = dirty[dirty.len() - 1];
    let tail = if t[last..].iter().all(|c| *c == Cell::EMPTY) {
        t[..last]
            .iter()
            .rposition(|c| *c != Cell::EMPTY)
            .map_or(0, |i| i + 1)
    } else {
        width
    };
    let split = dirty.partition_point(|&x| x < tail);
    for &x in &dirty[..split] {
        w.write(t, x, y);
    }
    if let Some(&first) = dirty.get(split) {
        let rest = &dirty[split..];
        w.shorter(
            |w| rest.iter().for_each(|&x| w.write(t, x, y)),
            |w| w.erase_line(t, first, y),
        );
    }
}

/// What a cell shows and how many cells that covers, with `room` cells left in the row: a glyph
/// that is empty or does not fit shows as a blank.
#[inline]
fn glyph(c: &Cell, room: usize) -> (&str, usize) {
    glyph_of(c.symbol(), skipped(c), room)
}

/// [`glyph`] of a symbol and whether its cell is skipped.
#[inline]
fn glyph_of(sym: &str, skip: bool, room: usize) -> (&str, usize) {
    if sym.len() == 1 {
        return (sym, 1);
    }
    match usize::from(sym.cell_width()) {
        _ if skip => (" ", 1),
        w if w == 0 || w > room => (" ", 1),
        w => (sym, w),
    }
}

/// A cell as the terminal shows it: what the writer compares the next frame with. A `Cell` is 48
/// bytes (its symbol a 24-byte string); this is 20, with symbols of up to 4 bytes (one character
/// of any script) inline and longer grapheme clusters in a side list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shown {
    /// The symbol's bytes when `len` <= 4, else its index in the side list (little-endian).
    sym: [u8; 4],
    /// Bytes of `sym` used, or [`Shown::LONG`].
    len: u8,
    skip: bool,
    mods: Modifier,
    fg: Color,
    bg: Color,
    ul: Color,
}

impl Shown {
    const LONG: u8 = u8::MAX;
    const EMPTY: Shown = Shown {
        sym: [b' ', 0, 0, 0],
        len: 1,
        skip: false,
        mods: Modifier::empty(),
        fg: Color::Reset,
        bg: Color::Reset,
        ul: Color::Reset,
    };

    fn of(c: &Cell, long: &mut Vec<String>) -> Shown {
        let text = c.symbol();
        let mut sym = [0; 4];
        let len = if text.len() <= 4 {
            sym[..text.len()].copy_from_slice(text.as_bytes());
            text.len() as u8
        } else {
            sym = u32::try_from(long.len()).unwrap_or(u32::MAX).to_le_bytes();
            long.push(text.to_owned());
            Shown::LONG
        };
        Shown {
            sym,
            len,
            skip: skipped(c),
            mods: c.modifier,
            fg: c.fg,
            bg: c.bg,
            ul: c.underline_color,
        }
    }

    fn symbol<'a>(&'a self, long: &'a [String]) -> &'a str {
        if self.len == Shown::LONG {
            let i = u32::from_le_bytes(self.sym) as usize;
            return long.get(i).map_or(" ", String::as_str);
        }
        std::str::from_utf8(&self.sym[..usize::from(self.len)]).unwrap_or(" ")
    }

    /// Cells this glyph covers, with `room` left in the row (as [`glyph`]).
    fn width(&self, long: &[String], room: usize) -> usize {
        glyph_of(self.symbol(long), self.skip, room).1
    }

    /// Whether the terminal already shows `c` here.
    fn same(&self, c: &Cell, long: &[String]) -> bool {
        self.fg == c.fg
            && self.bg == c.bg
            && self.ul == c.underline_color
            && self.mods == c.modifier
            && self.skip == skipped(c)
            && self.symbol(long) == c.symbol()
    }
}

/// Whether ratatui's diff leaves this cell alone.
#[allow(deprecated)]
fn skipped(c: &Cell) -> bool {
    matches!(c.diff_option, CellDiffOption::Skip) || (c.skip && c.diff_option == CellDiffOption::None)
}

/// SGR state: what the next printed glyph gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pen {
    fg: Color,
    bg: Color,
    ul: Color,
    mods: Modifier,
}

impl Pen {
    const DEFAULT: Pen = Pen {
        fg: Color::Reset,
        bg: Color::Reset,
        ul: Color::Reset,
        mods: Modifier::empty(),
    };

    fn of(c: &Cell) -> Pen {
        Pen {
            fg: c.fg,
            bg: c.bg,
            ul: c.underline_color,
            mods: c.modifier,
        }
    }
}

/// The terminal as the bytes written so far leave it.
#[derive(Debug, Clone, Copy)]
struct State {
    pen: Pen,
    /// `None`: unknown. `x == width`: after the last column, with a wrap pending.
    cursor: Option<(usize, usize)>,
    /// The cursor was put where it is in this frame, so it is on a glyph boundary of this frame.
    placed: bool,
}

/// A frame's bytes and the terminal state they leave.
#[derive(Debug)]
struct Writer {
    out: Vec<u8>,
    st: State,
    width: usize,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            out: Vec::new(),
            st: State {
                pen: Pen::DEFAULT,
                cursor: None,
                placed: false,
            },
            width: 0,
        }
    }
}

/// SGR codes of the modifiers, in the order of ratatui's bits.
const ON: [(Modifier, u8); 9] = [
    (Modifier::BOLD, 1),
    (Modifier::DIM, 2),
    (Modifier::ITALIC, 3),
    (Modifier::UNDERLINED, 4),
    (Modifier::SLOW_BLINK, 5),
    (Modifier::RAPID_BLINK, 6),
    (Modifier::REVERSED, 7),
    (Modifier::HIDDEN, 8),
    (Modifier::CROSSED_OUT, 9),
];

/// SGR codes that switch modifiers off (22 and 25 switch off two each).
const OFF: [(Modifier, u8); 7] = [
    (Modifier::BOLD.union(Modifier::DIM), 22),
    (Modifier::ITALIC, 23),
    (Modifier::UNDERLINED, 24),
    (Modifier::SLOW_BLINK.union(Modifier::RAPID_BLINK), 25),
    (Modifier::REVERSED, 27),
    (Modifier::HIDDEN, 28),
    (Modifier::CROSSED_OUT, 29),
];

impl Writer {
    /// Write the dirty glyph `t[x]` of row `y`.
    fn write(&mut self, t: &[Cell], x: usize, y: usize) {
        self.go(t, x, y);
        self.put(t, x, y);
    }

    /// Print the glyph `t[x]`; the cursor is on it.
    fn put(&mut self, t: &[Cell], x: usize, y: usize) {
        debug_assert_eq!(self.st.cursor, Some((x, y)));
        let (sym, w) = glyph(&t[x], self.width - x);
        self.sgr(Pen::of(&t[x]));
        self.out.extend_from_slice(sym.as_bytes());
        self.st.cursor = Some((x + w, y));
        self.st.placed = true;
    }

    /// Put the cursor on `t[x]` of row `y`, with the pen set for it: by printing the glyphs in
    /// between again, or by a move, whichever is shorter.
    fn go(&mut self, t: &[Cell], x: usize, y: usize) {
        let pen = Pen::of(&t[x]);
        match self.st.cursor {
            Some(at) if at == (x, y) => {}
            Some((cx, cy))
                if self.st.placed
                    && cy == y
                    && cx < x
                    && x - cx < self.move_len(x, y)
                    && !t[cx..x].iter().any(skipped) =>
            {
                self.shorter(
                    |w| {
                        w.move_to(x, y);
                        w.sgr(pen);
                    },
                    |w| {
                        while let Some((gx, _)) = w.st.cursor.filter(|&(gx, _)| gx < x) {
                            w.put(t, gx, y);
                        }
                        w.sgr(pen);
                    },
                );
            }
            _ => self.move_to(x, y),
        }
    }

    /// Erase from `t[x]` (a glyph start) to the end of row `y`.
    fn erase_line(&mut self, t: &[Cell], x: usize, y: usize) {
        self.go(t, x, y);
        self.sgr(Pen {
            bg: Color::Reset,
            mods: Modifier::empty(),
            ..self.st.pen
        });
        self.out.extend_from_slice(b"\x1b[K");
    }

    /// Run `a` and `b` from the same state and keep the shorter output (`a` on a tie).
    fn shorter(&mut self, a: impl Fn(&mut Writer), b: impl Fn(&mut Writer)) {
        let (mark, st) = (self.out.len(), self.st);
        b(self);
        let b_len = self.out.len() - mark;
        self.out.truncate(mark);
        self.st = st;
        a(self);
        if self.out.len() - mark > b_len {
            self.out.truncate(mark);
            self.st = st;
            b(self);
        }
    }

    /// The relative move from the cursor to (x, y): (CR first, rows down (+) or up (-), columns
    /// right (+) or left (-) after that) and its length; `None` when the cursor is unknown.
    fn relative(&self, x: usize, y: usize) -> Option<((bool, isize, isize), usize)> {
        let (cx, cy) = self.st.cursor?;
        let dy = y as isize - cy as isize;
        let v = match dy {
            0 => 0,
            1.. => (dy as usize).min(csi_len(dy as usize)),
            _ => csi_len(dy.unsigned_abs()),
        };
        // After the last column only a CR may come first.
        let stay = (cx < self.width).then(|| (false, x as isize - cx as isize));
        let cr = (true, x as isize);
        let h_len =
            |(cr, dx): (bool, isize)| usize::from(cr) + if dx == 0 { 0 } else { csi_len(dx.unsigned_abs()) };
        let (cr, dx) = stay.filter(|&s| h_len(s) <= h_len(cr)).unwrap_or(cr);
        Some(((cr, dy, dx), v + h_len((cr, dx))))
    }

    /// Bytes of the shortest move to (x, y).
    fn move_len(&self, x: usize, y: usize) -> usize {
        let abs = abs_len(x, y);
        self.relative(x, y).map_or(abs, |(_, rel)| rel.min(abs))
    }

    /// Move the cursor to (x, y) the shortest way.
    fn move_to(&mut self, x: usize, y: usize) {
        match self.relative(x, y) {
            Some(((cr, dy, dx), len)) if len < abs_len(x, y) => {
                if cr {
                    self.out.push(b'\r');
                }
                match dy {
                    0 => {}
                    1.. if dy as usize <= csi_len(dy as usize) => {
                        self.out.extend(std::iter::repeat_n(b'\n', dy as usize));
                    }
                    1.. => self.csi(dy.unsigned_abs(), b'B'),
                    _ => self.csi(dy.unsigned_abs(), b'A'),
                }
                match dx {
                    0 => {}
                    1.. => self.csi(dx.unsigned_abs(), b'C'),
                    _ => self.csi(dx.unsigned_abs(), b'D'),
                }
            }
            _ => {
                self.out.extend_from_slice(b"\x1b[");
                if y > 0 {
                    num(&mut self.out, y + 1);
                }
                if x > 0 {
                    self.out.push(b';');
                    num(&mut self.out, x + 1);
                }
                self.out.push(b'H');
            }
        }
        self.st.cursor = Some((x, y));
        self.st.placed = true;
    }

    /// `CSI n <f>`, the 1 left out.
    fn csi(&mut self, n: usize, f: u8) {
        self.out.extend_from_slice(b"\x1b[");
        if n != 1 {
            num(&mut self.out, n);
        }
        self.out.push(f);
    }

    /// Set the pen to `to`: only what changed, or a reset and what differs from the default when
    /// that is shorter (it can only be when a modifier goes off).
    fn sgr(&mut self, to: Pen) {
        let from = self.st.pen;
        if from == to {
            return;
        }
        self.st.pen = to;
        let mark = self.out.len();
        sgr(&mut self.out, Some(from), to);
        if !(from.mods - to.mods).is_empty() {
            let a = self.out.len() - mark;
            sgr(&mut self.out, None, to);
            if self.out.len() - mark - a < a {
                self.out.drain(mark..mark + a);
            } else {
                self.out.truncate(mark + a);
            }
        }
    }
}

/// `CSI … m` from the pen `from` (`None`: from a reset, which this sends) to `to`.
fn sgr(out: &mut Vec<u8>, from: Option<Pen>, to: Pen) {
    out.extend_from_slice(b"\x1b[");
    let base = from.unwrap_or(Pen::DEFAULT);
    let mut on = to.mods - base.mods;
    if from.is_none() {
        out.extend_from_slice(b"0;");
    }
    for (group, code) in OFF {
        if (base.mods - to.mods).intersects(group) {
            param(out, code.into());
            on |= to.mods & group;
        }
    }
    for (m, code) in ON {
        if on.contains(m) {
            param(out, code.into());
        }
    }
    for (from, to, base) in [(base.fg, to.fg, 30), (base.bg, to.bg, 40), (base.ul, to.ul, 50)] {
        if from != to {
            color(out, to, base);
        }
    }
    // Every parameter ends in ';': the last one ends the sequence instead.
    if let Some(last) = out.last_mut() {
        *last = b'm';
    }
}

/// The SGR parameters of a colour; `base` 30 (foreground), 40 (background) or 50 (underline).
fn color(out: &mut Vec<u8>, c: Color, base: usize) {
    let ansi = match c {
        Color::Reset => return param(out, base + 9),
        Color::Black => 0,
        Color::Red => 1,
        Color::Green => 2,
        Color::Yellow => 3,
        Color::Blue => 4,
        Color::Magenta => 5,
        Color::Cyan => 6,
        Color::Gray => 7,
        Color::DarkGray => 8,
        Color::LightRed => 9,
        Color::LightGreen => 10,
        Color::LightYellow => 11,
        Color::LightBlue => 12,
        Color::LightMagenta => 13,
        Color::LightCyan => 14,
        Color::White => 15,
        Color::Indexed(i) => {
            param(out, base + 8);
            param(out, 5);
            return param(out, i.into());
        }
        Color::Rgb(r, g, b) => {
            for n in [base + 8, 2, r.into(), g.into(), b.into()] {
                param(out, n);
            }
            return;
        }
    };
    match (base, ansi) {
        // The underline colour has no short codes.
        (50, _) => color(out, Color::Indexed(ansi as u8), base),
        (_, 0..8) => param(out, base + ansi),
        _ => param(out, base + 60 + ansi - 8),
    }
}

/// One SGR parameter and its ';'.
fn param(out: &mut Vec<u8>, n: usize) {
    num(out, n);
    out.push(b';');
}

fn num(out: &mut Vec<u8>, n: usize) {
    if n >= 10 {
        num(out, n / 10);
    }
    out.push(b'0' + (n % 10) as u8);
}

fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Length of `CSI n <f>` (the 1 left out).
fn csi_len(n: usize) -> usize {
    3 + if n == 1 { 0 } else { digits(n) }
}

/// Length of `CSI r;c H` to (x, y), the 1s left out.
fn abs_len(x: usize, y: usize) -> usize {
    3 + if y > 0 { digits(y + 1) } else { 0 } + if x > 0 { 1 + digits(x + 1) } else { 0 }
}

#[cfg(test)]
mod tests;
