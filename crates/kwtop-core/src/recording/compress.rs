//! Compression of recordings: zstd for `*.zst`, gzip for `*.gz`, read back by their magic bytes
//! whatever the file is called.
//!
//! Cuts: a recorder killed with `kill -9`, or stopped by a full disk, leaves a stream without its end.
//! Every sample is flushed (a zstd block end, a deflate sync flush) so the bytes on disk decode up to
//! the last whole sample, and every full sample starts a new zstd frame or gzip member, so each
//! starts a self-contained piece that no damage before it can reach. The decoders read concatenated
//! frames and members and return everything decoded before a cut, then an error that says so.
//!
//! Must not: touch the file system (callers hand in the writer or reader), or buffer more than one
//! sample's line between flushes.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

/// zstd level. On an hour of a 400-process host (`recording::size_tests`) level 3, zstd's default,
/// takes 1.05 MB, 9 takes 0.87 MB and 19 0.82 MB at several times the CPU: 9 is the knee.
pub const ZSTD_LEVEL: i32 = 9;
/// zstd window, log2 bytes: 256 KiB holds a frame's full sample and most of its deltas, and bounds
/// the encoder's tables (hash and chain logs one less) to about 1.3 MB and the decoder's to 256 KiB.
/// A larger window (1 MiB) buys nothing on these frames.
pub const ZSTD_WINDOW_LOG: u32 = 18;

/// How a recording's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// JSON lines as they are.
    #[default]
    None,
    /// zstd, a frame per full sample, a flushed block per sample.
    Zstd,
    /// gzip, a member per full sample, a sync flush per sample.
    Gzip,
}

impl Compression {
    /// The compression a file name asks for: `.zst` (or `.zstd`) → zstd, `.gz` → gzip, else none.
    pub fn for_path(path: &Path) -> Compression {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("zst") || e.eq_ignore_ascii_case("zstd") => Compression::Zstd,
            Some(e) if e.eq_ignore_ascii_case("gz") => Compression::Gzip,
            _ => Compression::None,
        }
    }

    /// The compression whose magic bytes start `head` (zstd `28 b5 2f fd`, gzip `1f 8b`).
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

enum Stream<W: Write> {
    Plain(W),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    Gzip(flate2::write::GzEncoder<W>),
}

/// The byte stream under a [`super::Writer`]: plain, or an encoder that can close its frame (member)
/// and open the next one.
pub(super) struct Sink<W: Write> {
    /// `None` only after an encoder failed to close a frame: every later write fails.
    stream: Option<Stream<W>>,
}

fn zstd_encoder<W: Write>(w: W) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut e = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
    // 4 bytes a frame: a damaged frame is an error, never wrong numbers.
    e.include_checksum(true)?;
    e.window_log(ZSTD_WINDOW_LOG)?;
    e.set_parameter(zstd::stream::raw::CParameter::HashLog(ZSTD_WINDOW_LOG - 1))?;
    e.set_parameter(zstd::stream::raw::CParameter::ChainLog(ZSTD_WINDOW_LOG - 1))?;
    Ok(e)
}

fn gzip_encoder<W: Write>(w: W) -> flate2::write::GzEncoder<W> {
    flate2::write::GzEncoder::new(w, flate2::Compression::default())
}

fn closed() -> io::Error {
    io::Error::other("the recording stream was closed by an earlier error")
}

impl<W: Write> Sink<W> {
    pub(super) fn new(out: W, compression: Compression) -> io::Result<Self> {
        let stream = match compression {
            Compression::None => Stream::Plain(out),
            Compression::Zstd => Stream::Zstd(zstd_encoder(out)?),
            Compression::Gzip => Stream::Gzip(gzip_encoder(out)),
        };
        Ok(Sink { stream: Some(stream) })
    }

    pub(super) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self.stream.as_mut().ok_or_else(closed)? {
            Stream::Plain(w) => w.write_all(buf),
            Stream::Zstd(e) => e.write_all(buf),
            Stream::Gzip(e) => e.write_all(buf),
        }
    }

    /// Make everything written so far decodable from the bytes handed to the inner writer, and flush it.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self.stream.as_mut().ok_or_else(closed)? {
            Stream::Plain(w) => w.flush(),
            Stream::Zstd(e) => e.flush(),
            Stream::Gzip(e) => e.flush(),
        }
    }

    /// Close the current frame (gzip member) and open a new one; plain streams are unchanged.
    pub(super) fn restart(&mut self) -> io::Result<()> {
        let stream = match self.stream.take().ok_or_else(closed)? {
            Stream::Plain(w) => Stream::Plain(w),
            Stream::Zstd(e) => Stream::Zstd(zstd_encoder(e.finish()?)?),
            Stream::Gzip(e) => Stream::Gzip(gzip_encoder(e.finish()?)),
        };
        self.stream = Some(stream);
        Ok(())
    }

    /// Close the last frame (member), flush, and give back the inner writer.
    pub(super) fn finish(mut self) -> io::Result<W> {
        let mut w = match self.stream.take().ok_or_else(closed)? {
            Stream::Plain(w) => w,
            Stream::Zstd(e) => e.finish()?,
            Stream::Gzip(e) => e.finish()?,
        };
        w.flush()?;
        Ok(w)
    }
}

impl<W: Write> Drop for Sink<W> {
    /// A writer dropped without [`super::Writer::finish`] still closes its frame, so an ordinary exit
    /// leaves a complete stream (errors here have nowhere to go; `finish` reports them).
    fn drop(&mut self) {
        match self.stream.take() {
            Some(Stream::Zstd(e)) => {
                let _ = e.finish().map(|mut w| w.flush());
            }
            Some(Stream::Gzip(e)) => {
                let _ = e.finish().map(|mut w| w.flush());
            }
            Some(Stream::Plain(mut w)) => {
                let _ = w.flush();
            }
            None => {}
        }
    }
}

/// Says what an error in the middle of a compressed stream means, in words a user can act on.
struct Explained<R> {
    inner: R,
    what: &'static str,
}

impl<R: Read> Read for Explained<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "the {} stream ends or breaks here ({e}): the recording was cut (recorder killed, disk \
                     full) or damaged; everything before this line is used",
                    self.what
                ),
            )
        })
    }
}

/// A reader of a recording (or any text file) that undoes zstd or gzip when the first bytes say so,
/// and passes anything else through. Concatenated frames and gzip members are read in turn.
///
/// The first buffer it fills holds the first read of `input` whole (8 KiB of a file), as a plain
/// `BufReader` would, so a caller can look at the start of a text file with `fill_buf`.
pub fn decompressing<R: Read + Send + 'static>(mut input: R) -> io::Result<Box<dyn BufRead + Send>> {
    const HEAD: usize = 8 * 1024;
    let mut head = vec![0u8; HEAD];
    let mut n = 0;
    // At least the 4 bytes of a magic number, unless the input is shorter.
    while n < 4 {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    let compression = Compression::sniff(&head);
    let whole = io::Cursor::new(head).chain(input);
    Ok(match compression {
        Compression::None => Box::new(BufReader::with_capacity(HEAD, whole)),
        Compression::Zstd => Box::new(BufReader::new(Explained {
            inner: zstd::stream::read::Decoder::new(whole)?,
            what: "zstd",
        })),
        Compression::Gzip => Box::new(BufReader::new(Explained {
            inner: flate2::read::MultiGzDecoder::new(whole),
            what: "gzip",
        })),
    })
}
