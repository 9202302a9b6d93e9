//! Drawing the live monitor: `render(&App, &mut Frame)` is a pure function of the [`App`].
//!
//! Layout (DESIGN §8): header, device strip, power history chart, process table, footer. The full
//! layout needs 120×40, a compact one fits 80×24, 60×15 still shows the essentials, and anything
//! smaller gets a "terminal too small" note. Every rectangle is carved out of the frame's area, so
//! nothing is drawn outside it at any size. Every process-supplied string goes through
//! [`clean`] before it reaches a cell. Must not read clocks, files or sensors.

mod chart;
mod detail;
mod header;
mod items;
mod table;
mod work;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use crate::app::App;

/// Smallest terminal with a useful screen.
pub const MIN_W: u16 = 60;
pub const MIN_H: u16 = 15;

/// Draw the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let area = frame.area();
    draw(app, area, frame.buffer_mut());
}

/// Draw into `buf` inside `area` only.
pub fn draw(app: &App, area: Rect, buf: &mut Buffer) {
    let theme = Theme::new(app.opts.color, app.opts.ascii);
    let Some(l) = layout(area, app.ledger().devices.len()) else {
        too_small(area, buf, &theme);
        return;
    };
    header::draw_header(app, l.header, buf, &theme);
    header::draw_devices(app, l.devices, buf, &theme);
    if let Some(c) = l.chart {
        chart::draw(app, c, buf, &theme);
    }
    if app.ui.detail {
        detail::draw(app, l.table, buf, &theme);
    } else {
        table::draw(app, l.table, buf, &theme);
    }
    draw_footer(app, l.footer, buf, &theme);
    if app.ui.help {
        detail::draw_help(app, area, buf, &theme);
    }
    if theme.ascii {
        asciify(area, buf);
    }
}

/// Replace what library widgets drew outside ASCII (chart axes, table borders) in `area`.
fn asciify(area: Rect, buf: &mut Buffer) {
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let cell = &mut buf[(x, y)];
            if cell.symbol().is_ascii() {
                continue;
            }
            let sym = match cell.symbol() {
                "│" | "┃" | "║" => "|",
                "─" | "━" | "═" => "-",
                "└" | "┘" | "┌" | "┐" | "├" | "┤" | "┬" | "┴" | "┼" => "+",
                "•" | "⣿" => "*",
                _ => "?",
            };
            cell.set_symbol(sym);
        }
    }
}

/// Rows the table can show at `area` with `n_devices`, for PgUp/PgDn.
pub fn table_rows(area: Rect, n_devices: usize) -> usize {
    layout(area, n_devices).map_or(0, |l| usize::from(l.table.height.saturating_sub(2)))
}

/// Where each panel goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    pub devices: Rect,
    pub chart: Option<Rect>,
    pub table: Rect,
    pub footer: Rect,
}

/// Split `area` for `n_devices` device lines; `None` = too small for anything useful.
pub fn layout(area: Rect, n_devices: usize) -> Option<Areas> {
    let (w, h) = (area.width, area.height);
    if w < MIN_W || h < MIN_H {
        return None;
    }
    let full = w >= 120 && h >= 40;
    let header_h: u16 = if h >= 24 { 2 } else { 1 };
    let max_dev: u16 = if full {
        8
    } else if h >= 24 {
        4
    } else {
        2
    };
    let dev_h = u16::try_from(n_devices).unwrap_or(u16::MAX).clamp(1, max_dev);
    let rest = h.saturating_sub(header_h + dev_h + 1);
    let chart_h = if full {
        (rest / 3).clamp(8, 14)
    } else if rest >= 16 {
        (rest / 3).clamp(5, 8)
    } else {
        0
    };
    let [header, devices, chart, table, footer] = Layout::vertical([
        Constraint::Length(header_h),
        Constraint::Length(dev_h),
        Constraint::Length(chart_h),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(area);
    Some(Areas {
        header,
        devices,
        chart: (chart_h > 0).then_some(chart),
        table,
        footer,
    })
}

/// Colours and symbols: 16 named colours only, none at all without colour, ASCII on request.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
    pub ascii: bool,
}

impl Theme {
    pub fn new(color: bool, ascii: bool) -> Self {
        Theme { color, ascii }
    }

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn title(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn estimated(&self) -> Style {
        self.fg(Color::Magenta)
    }
    pub fn header_row(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }
    pub fn selected(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Black).bg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
    /// Colour of device `i` in the chart.
    pub fn series(&self, i: usize) -> Style {
        const C: [Color; 6] = [
            Color::Green,
            Color::Yellow,
            Color::Blue,
            Color::Magenta,
            Color::Red,
            Color::LightCyan,
        ];
        self.fg(C[i % C.len()])
    }

    pub fn sep(&self) -> &'static str {
        if self.ascii { " | " } else { " · " }
    }
    pub fn hline(&self) -> &'static str {
        if self.ascii { "-" } else { "─" }
    }
    pub fn approx(&self) -> &'static str {
        if self.ascii { "=" } else { "≈" }
    }
    pub fn alert(&self) -> &'static str {
        if self.ascii { "!" } else { "⚠" }
    }
    pub fn arrow(&self, reverse: bool, text: bool) -> &'static str {
        // Natural order: numbers descending, text ascending.
        let down = reverse == text;
        match (self.ascii, down) {
            (true, true) => "v",
            (true, false) => "^",
            (false, true) => "▼",
            (false, false) => "▲",
        }
    }
    pub fn degree(&self) -> &'static str {
        if self.ascii { "C" } else { "°C" }
    }
    pub fn border(&self) -> border::Set<'static> {
        if self.ascii {
            border::Set {
                top_left: "+",
                top_right: "+",
                bottom_left: "+",
                bottom_right: "+",
                vertical_left: "|",
                vertical_right: "|",
                horizontal_top: "-",
                horizontal_bottom: "-",
            }
        } else {
            border::PLAIN
        }
    }
}

/// A process-supplied (or any untrusted) string made safe to draw: control characters, escape
/// sequences and bidi overrides replaced, length bounded, non-ASCII replaced in ASCII mode.
pub fn clean(s: &str, ascii: bool) -> String {
    // Printable ASCII within the bound is left as it is (most of what is drawn: numbers, units,
    // most command lines): no need for the escape-sequence scan.
    if s.len() <= 200 && s.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return s.to_string();
    }
    let s = crate::sanitize::sanitize_str(s, 200);
    if ascii {
        s.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
    } else {
        s
    }
}

/// `s` cut to `width` display columns, with a marker when cut.
pub fn fit(s: &str, width: usize, ascii: bool) -> String {
    use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};
    if s.width() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > width - 1 {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push(if ascii { '>' } else { '…' });
    out
}

/// A horizontal rule with a title: `─ title ───────`.
pub fn rule<'a>(spans: Vec<Span<'a>>, width: u16, theme: &Theme) -> Line<'a> {
    let used: usize = spans.iter().map(Span::width).sum::<usize>() + 2;
    let mut out = vec![Span::styled(theme.hline(), theme.dim()), Span::raw(" ")];
    out.extend(spans);
    let fill = usize::from(width).saturating_sub(used + 1);
    if fill > 0 {
        out.push(Span::raw(" "));
        out.push(Span::styled(theme.hline().repeat(fill), theme.dim()));
    }
    Line::from(out)
}

fn too_small(area: Rect, buf: &mut Buffer, theme: &Theme) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let text = vec![
        Line::styled("kwtop: terminal too small", theme.warn()),
        Line::raw(format!(
            "{}x{} here; needs at least {MIN_W}x{MIN_H} (80x24 for the compact view, 120x40 for all of it)",
            area.width, area.height
        )),
        Line::raw("q quits"),
    ];
    Paragraph::new(text).wrap(Wrap { trim: true }).render(area, buf);
}

fn draw_footer(app: &App, area: Rect, buf: &mut Buffer, theme: &Theme) {
    let line = if let Some(c) = &app.ui.confirm {
        prompt_line(c, usize::from(area.width), theme)
    } else if app.ui.editing_filter {
        Line::from(vec![
            Span::styled("/ filter: ", theme.title()),
            Span::raw(clean(&app.ui.filter, theme.ascii)),
            Span::styled("_", theme.title().add_modifier(Modifier::SLOW_BLINK)),
            Span::styled("  Enter keep  Esc clear", theme.dim()),
        ])
    } else if let Some(s) = &app.status {
        Line::from(vec![
            Span::styled(clean(s, theme.ascii), theme.warn()),
            Span::styled("   ? help  q quit", theme.dim()),
        ])
    } else {
        let enter = if theme.ascii { "Enter" } else { "↵" };
        let keys: [(&str, &str); 10] = [
            ("q", "quit"),
            ("s", "sort"),
            ("r", "rev"),
            ("/", "filter"),
            ("g", "group"),
            (enter, "detail"),
            ("p", if app.paused.is_some() { "resume" } else { "pause" }),
            ("w", "window"),
            ("e", "export"),
            ("?", "help"),
        ];
        let mut spans = Vec::new();
        for (k, what) in keys {
            spans.push(Span::styled(k, theme.title()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        Line::from(spans)
    };
    let line = match app.cost {
        Some(c) if app.ui.confirm.is_none() && !app.ui.editing_filter => {
            let mut spans = cost_spans(&c, theme);
            spans.extend(line.spans);
            Line::from(spans)
        }
        _ => line,
    };
    Paragraph::new(line).render(area, buf);
}

/// `--stats`: "CPU µs read 812 · account 95 · draw 410", `-` until measured.
fn cost_spans<'a>(c: &crate::app::TickCost, theme: &Theme) -> Vec<Span<'a>> {
    let us = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let sep = theme.sep();
    vec![
        Span::styled(if theme.ascii { "CPU us " } else { "CPU µs " }, theme.dim()),
        Span::raw(format!(
            "read {}{sep}account {}{sep}draw {}",
            us(c.read_us),
            us(c.account_us),
            us(c.draw_us)
        )),
        Span::raw("   "),
    ]
}

/// The `k` prompt: "Send SIGTERM to 4242 python train.py? y/N  K/9: SIGKILL", the command cut
/// to fit `width` (the SIGKILL hint goes first when even a short command would not fit).
pub fn prompt_line<'a>(c: &crate::app::Confirm, width: usize, theme: &Theme) -> Line<'a> {
    use unicode_width::UnicodeWidthStr;
    let head = format!("Send SIGTERM to {} ", c.key.pid);
    let ask = "? y/N";
    let hint = "  K/9: SIGKILL";
    let cmd = clean(&c.command, theme.ascii);
    let room = |hint: &str| width.saturating_sub(head.width() + ask.len() + hint.len());
    let hint = if room(hint) >= 8.min(cmd.width()) {
        hint
    } else {
        ""
    };
    let cmd = fit(&cmd, room(hint), theme.ascii);
    Line::from(vec![
        Span::styled(head, theme.warn()),
        Span::raw(cmd),
        Span::styled(ask, theme.warn()),
        Span::styled(hint, theme.dim()),
    ])
}

/// A centred box of at most `w`×`h` inside `area`, cleared and bordered; returns its inside.
pub fn popup(area: Rect, w: u16, h: u16, title: &str, buf: &mut Buffer, theme: &Theme) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let x = area.x + (area.width - w) / 2;
    let y = area.y + (area.height - h) / 2;
    let r = Rect::new(x, y, w, h);
    Clear.render(r, buf);
    let block = Block::bordered()
        .border_set(theme.border())
        .title(Span::styled(format!(" {title} "), theme.title()));
    let inner = block.inner(r);
    block.render(r, buf);
    inner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_tiers() {
        assert!(layout(Rect::new(0, 0, 59, 40), 2).is_none());
        assert!(layout(Rect::new(0, 0, 120, 14), 2).is_none());
        let full = layout(Rect::new(0, 0, 120, 40), 3).unwrap_or_else(|| panic!("fits"));
        assert!(full.chart.is_some());
        assert_eq!(full.devices.height, 3);
        let small = layout(Rect::new(0, 0, 60, 15), 3).unwrap_or_else(|| panic!("fits"));
        assert!(small.chart.is_none());
        assert!(small.table.height >= 8);
    }

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn prompt_names_pid_and_command_and_fits() {
        let c = crate::app::Confirm {
            key: crate::sample::ProcKey {
                pid: 4242,
                starttime: 7,
            },
            command: "python train.py".into(),
        };
        let t = Theme::new(false, false);
        assert_eq!(
            text(&prompt_line(&c, 80, &t)),
            "Send SIGTERM to 4242 python train.py? y/N  K/9: SIGKILL"
        );
        let long = crate::app::Confirm {
            command: format!("python train.py {}\u{1b}[2J", "--x ".repeat(40)),
            ..c.clone()
        };
        for w in [40usize, 60, 80, 200] {
            let s = text(&prompt_line(&long, w, &t));
            assert!(unicode_width::UnicodeWidthStr::width(s.as_str()) <= w, "{w}: {s}");
            assert!(s.starts_with("Send SIGTERM to 4242 python"), "{s}");
            assert!(s.contains("? y/N"), "{s}");
            assert!(!s.contains('\u{1b}'), "{s}");
        }
        assert!(text(&prompt_line(&long, 80, &t)).ends_with("…? y/N  K/9: SIGKILL"));
        assert!(!text(&prompt_line(&long, 40, &t)).contains("SIGKILL"));
    }

    #[test]
    fn clean_and_fit() {
        assert_eq!(clean("a\x1b[31mb\u{202e}c", false), "a?b?c");
        assert_eq!(clean("héllo", true), "h?llo");
        assert_eq!(fit("abcdef", 4, false), "abc…");
        assert_eq!(fit("abcdef", 4, true), "abc>");
        assert_eq!(fit("日本語", 4, false), "日…");
        assert_eq!(fit("ab", 4, false), "ab");
    }

    #[test]
    fn stats_in_the_footer() {
        let mut app = App::new(
            &crate::app::AppParams::default(),
            crate::app::ViewOptions::default(),
        );
        let area = Rect::new(0, 0, 120, 1);
        let footer = |app: &App, ascii: bool| {
            let mut buf = Buffer::empty(area);
            draw_footer(app, area, &mut buf, &Theme::new(true, ascii));
            (0..area.width)
                .map(|x| buf[(x, 0)].symbol().to_string())
                .collect::<String>()
        };
        assert!(
            footer(&app, false).starts_with("q quit  s sort"),
            "off by default"
        );
        app.cost = Some(crate::app::TickCost::default());
        assert!(footer(&app, false).starts_with("CPU µs read - · account - · draw -   q quit"));
        app.cost = Some(crate::app::TickCost {
            read_us: Some(812),
            account_us: Some(95),
            draw_us: Some(1410),
        });
        assert!(footer(&app, true).starts_with("CPU us read 812 | account 95 | draw 1410   q quit"));
        app.status = Some("exported".into());
        assert!(footer(&app, false).starts_with("CPU µs read 812 · account 95 · draw 1410   exported"));
    }

    /// The printable-ASCII shortcut gives what the full scan gives.
    #[test]
    fn clean_shortcut_is_the_scan() {
        let printable: String = (b' '..=b'~').map(char::from).collect();
        let mut inputs = vec![
            String::new(),
            printable.clone(),
            "a".repeat(200),
            "a".repeat(201),
            "x\x7f".into(),
            "a\tb".into(),
            "a\u{1b}[1mb".into(),
            "é".into(),
        ];
        inputs.push(printable.repeat(3));
        for s in inputs {
            for ascii in [false, true] {
                let scan = crate::sanitize::sanitize_str(&s, 200);
                let scan: String = if ascii {
                    scan.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
                } else {
                    scan
                };
                assert_eq!(clean(&s, ascii), scan, "{s:?}");
            }
        }
    }
}
