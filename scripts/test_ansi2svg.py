#!/usr/bin/env python3
"""Unit tests of scripts/ansi2svg.py (standard library only): `python3 scripts/test_ansi2svg.py`.
tests/screenshot.rs runs them under `cargo test -- --include-ignored`."""

import os
import sys
import unittest
import xml.etree.ElementTree as ET

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ansi2svg as a  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def cell(grid, row, col):
    return grid[row][col]


def texts(svg):
    """(x, textLength, class, text) of every <text> in the terminal grid (not the title)."""
    root = ET.fromstring(svg)
    g = root.find(SVG + "g")
    return [(float(t.get("x")), float(t.get("textLength")), t.get("class"), t.text)
            for t in g.iter(SVG + "text")]


def rects(svg):
    g = ET.fromstring(svg).find(SVG + "g")
    return [(float(r.get("x")), float(r.get("width")), r.get("fill")) for r in g.iter(SVG + "rect")]


class Colours(unittest.TestCase):
    def test_16_colours_normal_and_bright_fg_and_bg(self):
        g = a.parse("\x1b[31mA\x1b[42mB\x1b[91;104mC\x1b[39;49mD", 4, 1)
        self.assertEqual((cell(g, 0, 0)[1].fg, cell(g, 0, 0)[1].bg), (a.PALETTE[1], None))
        self.assertEqual((cell(g, 0, 1)[1].fg, cell(g, 0, 1)[1].bg), (a.PALETTE[1], a.PALETTE[2]))
        self.assertEqual((cell(g, 0, 2)[1].fg, cell(g, 0, 2)[1].bg), (a.PALETTE[9], a.PALETTE[12]))
        self.assertEqual((cell(g, 0, 3)[1].fg, cell(g, 0, 3)[1].bg), (None, None))

    def test_256_colours_palette_cube_and_greys(self):
        g = a.parse("\x1b[38;5;6mA\x1b[38;5;196mB\x1b[48;5;232mC\x1b[38;5;255mD", 4, 1)
        self.assertEqual(cell(g, 0, 0)[1].fg, a.PALETTE[6])
        self.assertEqual(cell(g, 0, 1)[1].fg, "#ff0000")
        self.assertEqual(cell(g, 0, 2)[1].bg, "#080808")
        self.assertEqual(cell(g, 0, 3)[1].fg, "#eeeeee")

    def test_truecolor_with_semicolons_and_colons(self):
        g = a.parse("\x1b[38;2;1;2;3mA\x1b[48:2::10:20:30mB\x1b[38:2:4:5:6mC", 3, 1)
        self.assertEqual(cell(g, 0, 0)[1].fg, "#010203")
        self.assertEqual(cell(g, 0, 1)[1].bg, "#0a141e")
        self.assertEqual(cell(g, 0, 2)[1].fg, "#040506")

    def test_attributes_set_and_cleared(self):
        g = a.parse("\x1b[1;3;4mA\x1b[22;23;24mB\x1b[2;9mC\x1b[0mD", 4, 1)
        s = [cell(g, 0, c)[1] for c in range(4)]
        self.assertEqual((s[0].bold, s[0].italic, s[0].underline), (True, True, True))
        self.assertEqual((s[1].bold, s[1].italic, s[1].underline), (False, False, False))
        self.assertEqual((s[2].dim, s[2].strike), (True, True))
        self.assertEqual(s[3].text_key(), a.Style().text_key())

    def test_reverse_swaps_resolved_colours(self):
        g = a.parse("\x1b[7mA\x1b[31;7mB\x1b[27mC", 3, 1)
        self.assertEqual(cell(g, 0, 0)[1].colors(), (a.DEFAULT_BG, a.DEFAULT_FG))
        self.assertEqual(cell(g, 0, 1)[1].colors(), (a.DEFAULT_BG, a.PALETTE[1]))
        self.assertEqual(cell(g, 0, 2)[1].colors(), (a.PALETTE[1], a.DEFAULT_BG))

    def test_state_carries_over_line_ends_as_tmux_writes_it(self):
        g = a.parse("\x1b[1;36mA\nB", 2, 2)
        self.assertEqual((cell(g, 1, 0)[0], cell(g, 1, 0)[1].fg, cell(g, 1, 0)[1].bold),
                         ("B", a.PALETTE[6], True))

    def test_earlier_cells_keep_their_style(self):
        g = a.parse("\x1b[31mA\x1b[32mB", 2, 1)
        self.assertEqual((cell(g, 0, 0)[1].fg, cell(g, 0, 1)[1].fg), (a.PALETTE[1], a.PALETTE[2]))


class Widths(unittest.TestCase):
    def test_wide_characters_take_two_columns(self):
        g = a.parse("漢x", 4, 1)
        self.assertEqual((cell(g, 0, 0)[0], cell(g, 0, 1), cell(g, 0, 2)[0]), ("漢", None, "x"))

    def test_box_drawing_braille_and_blocks_take_one(self):
        g = a.parse("┌─┐⣿█x", 6, 1)
        self.assertEqual("".join(cell(g, 0, c)[0] for c in range(6)), "┌─┐⣿█x")

    def test_combining_marks_join_the_character_before(self):
        g = a.parse("e\u0301x", 3, 1)
        self.assertEqual((cell(g, 0, 0)[0], cell(g, 0, 1)[0]), ("e\u0301", "x"))

    def test_dec_line_drawing_charset(self):
        g = a.parse("\x1b(0lqkx\x1b(Bq", 5, 1)
        self.assertEqual("".join(cell(g, 0, c)[0] for c in range(5)), "┌─┐│q")

    def test_other_sequences_are_skipped_and_overflow_is_dropped(self):
        g = a.parse("\x1b]0;title\x07\x1b[2JAB\x1b[?25lCDE\nF\nG", 4, 2)
        self.assertEqual("".join(cell(g, 0, c)[0] for c in range(4)), "ABCD")
        self.assertEqual(cell(g, 1, 0)[0], "F")


class Render(unittest.TestCase):
    def render(self, data, cols=20, rows=2):
        return a.render(a.parse(data, cols, rows), cols, rows, "t <&>")

    def test_well_formed_and_escaped(self):
        svg = self.render("a<b & c>d")
        root = ET.fromstring(svg)
        self.assertEqual(root.tag, SVG + "svg")
        self.assertEqual([t[3] for t in texts(svg)], ["a<b & c>d"])
        self.assertIn("t &lt;&amp;&gt;", svg)

    def test_runs_of_one_style_are_one_text_spaces_join_them_and_ends_are_trimmed(self):
        svg = self.render("  ab  cd \x1b[31mef\x1b[0m   ")
        t = texts(svg)
        self.assertEqual([x[3] for x in t], ["ab  cd", "ef"])
        self.assertAlmostEqual(t[0][0], 2 * a.CELL_W)
        self.assertAlmostEqual(t[0][1], 6 * a.CELL_W)
        self.assertAlmostEqual(t[1][0], 9 * a.CELL_W)
        self.assertNotEqual(t[0][2], t[1][2])

    def test_wide_characters_are_pinned_to_their_columns(self):
        t = texts(self.render("漢字x"))
        self.assertEqual(t[0][3], "漢字x")
        self.assertAlmostEqual(t[0][1], 5 * a.CELL_W)

    def test_backgrounds_are_one_rect_per_run(self):
        svg = self.render("\x1b[30;46m PID  USER \x1b[0m x")
        self.assertEqual(rects(svg), [(0.0, round(11 * a.CELL_W + 0.3, 2), a.PALETTE[6])])
        self.assertEqual([x[3] for x in texts(svg)], ["PID  USER", "x"])

    def test_bold_dim_and_hidden(self):
        svg = self.render("\x1b[1mB\x1b[0m \x1b[2mD\x1b[0m \x1b[8mH")
        self.assertIn("font-weight:bold", svg)
        self.assertIn("opacity:.6", svg)
        self.assertEqual([x[3] for x in texts(svg)], ["B", "D"])

    def test_colours_become_classes(self):
        svg = self.render("\x1b[38;2;255;0;0mR\x1b[38;5;21mB")
        self.assertIn("fill:#ff0000", svg)
        self.assertIn("fill:#0000ff", svg)


if __name__ == "__main__":
    unittest.main()
