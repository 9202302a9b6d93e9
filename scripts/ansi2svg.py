#!/usr/bin/env python3
"""Turn a terminal screen captured with ANSI colours (`tmux capture-pane -e -p -N`) into an SVG.

Standard library only. Reads the capture on stdin (or FILE), writes the SVG on stdout (or -o OUT):

    python3 scripts/ansi2svg.py --cols 120 --rows 40 --title "kwtop" screen.ans -o docs/screen.svg

What it understands: SGR colours (the 16 ANSI ones, 256-colour `38;5;N`, truecolor `38;2;R;G;B`,
also with colons), bold, dim, italic, underline, strikethrough, reverse and hidden; SGR state that
carries over line ends (as tmux writes it); the DEC line-drawing charset; wide (East Asian) and
zero-width (combining) characters. Other escape sequences are skipped.

The SVG is a terminal window (title bar, dark background) with the grid drawn cell-exact: each run
of cells of one style is one <text> pinned to its columns with textLength, so box-drawing and
braille glyphs from a fallback font cannot push the columns out of line, and the background is one
<rect> per run of one colour. Spaces between runs of one colour join them, which keeps the file small.
"""

import argparse
import sys
import unicodedata
from html import escape

# The 16 ANSI colours and the default foreground and background (VS Code's dark terminal theme).
PALETTE = [
    "#000000", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#e5e5e5",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
]
DEFAULT_FG = "#cccccc"
DEFAULT_BG = "#1e1e1e"
WINDOW_BAR = "#323233"
FONT = "ui-monospace,'DejaVu Sans Mono',Menlo,Consolas,'Liberation Mono',monospace"
FONT_SIZE = 14.0
CELL_W = 8.43  # DejaVu Sans Mono's advance (0.602 em) at 14 px
CELL_H = 17.0
PAD = 12.0
BAR_H = 28.0

# DEC special graphics (ESC ( 0), the line-drawing characters.
DEC = dict(zip("`afgjklmnopqrstuvwxyz{|}~",
               "◆▒°±┘┐┌└┼⎺⎻─⎼⎽├┤┴┬│≤≥π≠£·"))


def color256(n):
    """xterm's 256-colour palette as #rrggbb."""
    if n < 16:
        return PALETTE[n]
    if n < 232:
        n -= 16
        levels = [0, 95, 135, 175, 215, 255]
        r, g, b = levels[n // 36], levels[n // 6 % 6], levels[n % 6]
        return "#%02x%02x%02x" % (r, g, b)
    v = 8 + 10 * (n - 232)
    return "#%02x%02x%02x" % (v, v, v)


class Style:
    """SGR state of a cell. fg/bg: None (default) or '#rrggbb'."""

    __slots__ = ("fg", "bg", "bold", "dim", "italic", "underline", "strike", "reverse", "hidden")

    def __init__(self):
        self.fg = self.bg = None
        self.bold = self.dim = self.italic = self.underline = False
        self.strike = self.reverse = self.hidden = False

    def copy(self):
        s = Style()
        for k in self.__slots__:
            setattr(s, k, getattr(self, k))
        return s

    def colors(self):
        """Effective (fg, bg) after reverse, defaults resolved."""
        fg, bg = self.fg or DEFAULT_FG, self.bg or DEFAULT_BG
        if self.reverse:
            fg, bg = bg, fg
        return fg, bg

    def text_key(self):
        """What the glyphs look like (the background is drawn separately)."""
        return (self.colors()[0], self.bold, self.dim, self.italic, self.underline, self.strike)


def _extended(params, i):
    """Parse 38/48 arguments at params[i] (after the 38/48): (#rrggbb or None, next index)."""
    if i < len(params) and params[i] == 5 and i + 1 < len(params):
        return color256(params[i + 1] % 256), i + 2
    if i < len(params) and params[i] == 2 and i + 3 < len(params):
        r, g, b = (min(255, v) for v in params[i + 1:i + 4])
        return "#%02x%02x%02x" % (r, g, b), i + 4
    return None, len(params)


def apply_sgr(style, text):
    """Apply one SGR parameter string (what is between ESC[ and m) to style, in place."""
    params = []
    for group in (text or "0").split(";"):
        if ":" in group:
            # 38:2::R:G:B or 38:2:R:G:B or 38:5:N: normalise to the semicolon form.
            sub = group.split(":")
            if len(sub) >= 6 and sub[1] == "2":
                sub = sub[:2] + sub[3:6]
            params.extend(int(p) if p.isdigit() else 0 for p in sub)
        else:
            params.append(int(group) if group.isdigit() else 0)
    i = 0
    while i < len(params):
        p = params[i]
        i += 1
        if p == 0:
            style.__init__()
        elif p == 1:
            style.bold = True
        elif p == 2:
            style.dim = True
        elif p == 3:
            style.italic = True
        elif p == 4:
            style.underline = True
        elif p == 7:
            style.reverse = True
        elif p == 8:
            style.hidden = True
        elif p == 9:
            style.strike = True
        elif p == 21:
            style.underline = True
        elif p == 22:
            style.bold = style.dim = False
        elif p == 23:
            style.italic = False
        elif p == 24:
            style.underline = False
        elif p == 27:
            style.reverse = False
        elif p == 28:
            style.hidden = False
        elif p == 29:
            style.strike = False
        elif 30 <= p <= 37:
            style.fg = PALETTE[p - 30]
        elif p == 38:
            style.fg, i = _extended(params, i)
        elif p == 39:
            style.fg = None
        elif 40 <= p <= 47:
            style.bg = PALETTE[p - 40]
        elif p == 48:
            style.bg, i = _extended(params, i)
        elif p == 49:
            style.bg = None
        elif 90 <= p <= 97:
            style.fg = PALETTE[p - 90 + 8]
        elif 100 <= p <= 107:
            style.bg = PALETTE[p - 100 + 8]
        # 5, 6 (blink), 53 (overline) and anything else: no effect on a still picture.


def char_width(ch):
    """Terminal columns of one character: 0 (combining), 1 or 2 (wide)."""
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2
    return 1


def parse(data, cols, rows):
    """The screen as rows of cells: each cell (text, Style) or None (the right half of a wide char)."""
    blank = Style()
    grid = [[(" ", blank) for _ in range(cols)] for _ in range(rows)]
    style = Style()
    row = col = 0
    dec = False
    i, n = 0, len(data)
    while i < n:
        ch = data[i]
        if ch == "\x1b":
            if i + 1 < n and data[i + 1] == "[":
                j = i + 2
                while j < n and not ("\x40" <= data[j] <= "\x7e"):
                    j += 1
                if j < n and data[j] == "m":
                    # Cells already written keep their own Style: change a copy.
                    style = style.copy()
                    apply_sgr(style, data[i + 2:j])
                i = j + 1
            elif i + 1 < n and data[i + 1] == "]":
                # OSC: up to BEL or ST.
                j = i + 2
                while j < n and data[j] != "\x07" and data[j:j + 2] != "\x1b\\":
                    j += 1
                i = j + (1 if j < n and data[j] == "\x07" else 2)
            elif i + 2 < n and data[i + 1] in "()":
                dec = data[i + 2] == "0"
                i += 3
            else:
                i += 2
            continue
        i += 1
        if ch == "\n":
            row, col = row + 1, 0
            continue
        if ch == "\r":
            col = 0
            continue
        if ch == "\t":
            col = min(cols, (col // 8 + 1) * 8)
            continue
        if ch < " " or ch == "\x7f":
            continue
        if dec:
            ch = DEC.get(ch, ch)
        w = char_width(ch)
        if row >= rows:
            break
        if w == 0:
            # Combining: joins the character before it.
            if col > 0:
                c = col - 1
                while c > 0 and grid[row][c] is None:
                    c -= 1
                text, st = grid[row][c]
                grid[row][c] = (text + ch, st)
            continue
        if col + w > cols:
            continue
        grid[row][col] = (ch, style)
        if w == 2:
            grid[row][col + 1] = None
        col += w
    return grid


def runs(cells, key, joins):
    """Split one row into [start, end) runs of equal key(cell); cells where joins(cell) holds take
    the key of the run they are in."""
    out = []
    start, cur = 0, None
    for c, cell in enumerate(cells):
        if cell is None:
            continue
        if joins(cell):
            continue
        k = key(cell)
        if cur is None:
            cur = k
        elif k != cur:
            out.append((start, c, cur))
            start, cur = c, k
    out.append((start, len(cells), cur))
    return out


def render(grid, cols, rows, title=""):
    """The SVG document for a parsed grid."""
    width = cols * CELL_W + 2 * PAD
    height = rows * CELL_H + 2 * PAD + BAR_H
    classes = {}

    def cls(key):
        fg, bold, dim, italic, underline, strike = key
        css = "fill:%s" % fg
        if bold:
            css += ";font-weight:bold"
        if dim:
            css += ";opacity:.6"
        if italic:
            css += ";font-style:italic"
        deco = " ".join(d for d, on in (("underline", underline), ("line-through", strike)) if on)
        if deco:
            css += ";text-decoration:" + deco
        if css not in classes:
            classes[css] = "s%d" % len(classes)
        return classes[css]

    def f(v):
        return ("%.2f" % v).rstrip("0").rstrip(".")

    def invisible(c):
        # A space (not underlined or struck) shows nothing, so it joins any run of glyphs.
        return (c[0] == " " and not (c[1].underline or c[1].strike)) or c[1].hidden

    rects, texts = [], []
    for r, cells in enumerate(grid):
        y = r * CELL_H
        # Backgrounds: runs of one colour other than the terminal's.
        for start, end, bg in runs(cells, lambda c: c[1].colors()[1], lambda c: False):
            if bg is not None and bg != DEFAULT_BG:
                rects.append('<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>'
                             % (f(start * CELL_W), f(y), f((end - start) * CELL_W + 0.3), f(CELL_H + 0.3), bg))
        # Glyphs: runs of one look, the invisible cells at their ends left out.
        for start, end, key in runs(cells, lambda c: c[1].text_key(), invisible):
            if key is None:
                continue
            shown = [(c, cells[c]) for c in range(start, end) if cells[c] is not None]
            while shown and invisible(shown[-1][1]):
                shown.pop()
            while shown and invisible(shown[0][1]):
                shown.pop(0)
            if not shown:
                continue
            first, end = shown[0][0], shown[-1][0] + 1
            if end < len(cells) and cells[end] is None:
                end += 1  # the right half of a wide character
            text = "".join(" " if cell[1].hidden else cell[0] for _, cell in shown)
            texts.append('<text x="%s" y="%s" textLength="%s" class="%s">%s</text>'
                         % (f(first * CELL_W), f(y + CELL_H * 0.76), f((end - first) * CELL_W),
                            cls(key), escape(text, quote=False)))
    style = "".join(".%s{%s}" % (name, css) for css, name in classes.items())
    dots = "".join('<circle cx="%s" cy="%s" r="6" fill="%s"/>' % (f(PAD + 8 + 20 * k), f(BAR_H / 2), c)
                   for k, c in enumerate(("#ff5f57", "#febc2e", "#28c840")))
    head = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" '
        'font-family="%s" font-size="%s" xml:space="preserve">\n'
        '<style>text{white-space:pre}%s</style>\n'
        '<rect width="100%%" height="100%%" rx="8" fill="%s"/>\n'
        '<path d="M0 8a8 8 0 0 1 8-8h%s a8 8 0 0 1 8 8v%sh-%sz" fill="%s"/>%s\n'
        '<text x="%s" y="%s" text-anchor="middle" fill="#999999" font-size="13">%s</text>\n'
        '<g transform="translate(%s %s)">\n'
    ) % (f(width), f(height), f(width), f(height), FONT, f(FONT_SIZE), style, DEFAULT_BG,
         f(width - 16), f(BAR_H - 8), f(width), WINDOW_BAR, dots,
         f(width / 2), f(BAR_H / 2 + 4.5), escape(title, quote=False), f(PAD), f(PAD + BAR_H))
    body = "\n".join(rects + texts)
    return head + body + "\n</g>\n</svg>\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", help="the capture (default: stdin)")
    ap.add_argument("-o", "--output", help="the SVG (default: stdout)")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--title", default="")
    a = ap.parse_args(argv)
    if a.file:
        with open(a.file, encoding="utf-8", errors="replace") as fh:
            data = fh.read()
    else:
        data = sys.stdin.read()
    svg = render(parse(data, a.cols, a.rows), a.cols, a.rows, a.title)
    if a.output:
        with open(a.output, "w", encoding="utf-8") as fh:
            fh.write(svg)
    else:
        sys.stdout.write(svg)


if __name__ == "__main__":
    main()
