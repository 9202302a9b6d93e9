//! Bytes the live monitor sends its terminal, per frame: ratatui's `Terminal` with its crossterm
//! backend (the writer before issue 12) against kwtop's `Screen`, over recordings replayed one
//! frame per sample at 120×40. Deterministic and without a terminal: the same recording always
//! gives the same numbers. Also each writer's CPU time per frame (copying the drawn frame in,
//! diffing, the escape sequences; not the drawing itself): build with --release for those.
//!
//! `cargo run --example screen_bytes -- [RECORDING.jsonl ...]` (default: the test fixtures; make
//! one of this machine with `kwtop record -o rec.jsonl --duration 60s`). With `KWTOP_DUMP=DIR`,
//! each recording's byte streams go to DIR/NAME.new and DIR/NAME.old and its last frame's text to
//! DIR/NAME.txt, to play in a real terminal (`stty raw; cat NAME.new` in a 120×40 tmux pane) and
//! compare with what it shows (`tmux capture-pane -p`, or `-e` against the old stream's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::io::{BufReader, Write};
use std::rc::Rc;

use kwtop::app::{App, AppParams, Msg, ViewOptions};
use kwtop::recording::Reader;
use kwtop::tui::Screen;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const AREA: Rect = Rect::new(0, 0, 120, 40);

/// CPU seconds this thread has run.
fn thread_cpu_s() -> f64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9)
}

/// Keeps the bytes the terminal would get.
struct Sink(Rc<RefCell<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn main() {
    let mut paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/recordings");
        paths = ["gpu-idle-holder.jsonl", "cpu-estimate.jsonl"]
            .map(|f| format!("{dir}/{f}"))
            .into();
    }
    println!(
        "{:<24} {:>6} {:>6} {:>12} {:>12} {:>12} {:>12} {:>7} {:>11} {:>11}",
        "recording",
        "frames",
        "procs",
        "old first B",
        "new first B",
        "old B/frame",
        "new B/frame",
        "new/old",
        "old µs/fr",
        "new µs/fr"
    );
    for path in paths {
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut reader = Reader::new(BufReader::new(f)).unwrap();
        let opts = ViewOptions {
            host: reader.header.host.clone(),
            ..ViewOptions::default()
        };
        let mut app = App::new(&AppParams::default(), opts);
        let viewport = Viewport::Fixed(AREA);
        let written = Rc::new(RefCell::new(Vec::new()));
        let backend = CrosstermBackend::new(Sink(Rc::clone(&written)));
        let mut term = Terminal::with_options(backend, TerminalOptions { viewport }).unwrap();
        // The old setup_terminal's `Terminal::clear` (less its cursor position query and restore).
        term.backend_mut().write_all(b"\x1b[2J").unwrap();
        let mut screen = Screen::new();
        let (mut old, mut new) = (Vec::new(), Vec::new());
        let mut stream = Vec::new();
        let mut procs = 0;
        let mut cpu = [0.0; 2];
        for sample in reader.by_ref() {
            let sample = sample.unwrap();
            procs = procs.max(sample.processes.len());
            app.update(Msg::Sample(Box::new(sample)));
            app.page_rows = kwtop::ui::table_rows(AREA, app.ledger().devices.len()).max(1);
            let mut drawn = Buffer::empty(AREA);
            kwtop::ui::draw(&app, AREA, &mut drawn);
            let t0 = thread_cpu_s();
            term.draw(|f| f.buffer_mut().content.clone_from_slice(&drawn.content))
                .unwrap();
            let t1 = thread_cpu_s();
            let bytes = screen.frame(AREA.width, AREA.height, |buf| {
                buf.content.clone_from_slice(&drawn.content);
            });
            cpu[0] += t1 - t0;
            cpu[1] += thread_cpu_s() - t1;
            old.push(written.borrow().len() - old.iter().sum::<usize>());
            new.push(bytes.len());
            stream.extend_from_slice(bytes);
        }
        let name = std::path::Path::new(&path).file_name().unwrap().to_string_lossy();
        if let Some(dir) = std::env::var_os("KWTOP_DUMP") {
            let dir = std::path::Path::new(&dir);
            std::fs::write(dir.join(format!("{name}.new")), &stream).unwrap();
            std::fs::write(dir.join(format!("{name}.old")), &*written.borrow()).unwrap();
            let mut buf = Buffer::empty(AREA);
            kwtop::ui::draw(&app, AREA, &mut buf);
            let text: Vec<String> = (0..AREA.height)
                .map(|y| {
                    let row = (0..AREA.width).map(|x| buf[(x, y)].symbol()).collect::<String>();
                    row.trim_end().to_string()
                })
                .collect();
            std::fs::write(dir.join(format!("{name}.txt")), text.join("\n") + "\n").unwrap();
        }
        let per_frame = |v: &[usize]| v[1..].iter().sum::<usize>() as f64 / (v.len() - 1).max(1) as f64;
        let (o, n) = (per_frame(&old), per_frame(&new));
        println!(
            "{name:<24} {:>6} {procs:>6} {:>12} {:>12} {o:>12.0} {n:>12.0} {:>7.2} {:>11.0} {:>11.0}",
            old.len(),
            old[0],
            new[0],
            n / o,
            cpu[0] / old.len() as f64 * 1e6,
            cpu[1] / old.len() as f64 * 1e6,
        );
    }
}
