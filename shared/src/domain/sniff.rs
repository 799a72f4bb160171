//! Media validation by content: magic bytes and container structure, read in ranges.
//!
//! Nothing here reads a whole file: [`ChunkedReader`] fetches aligned 64 KiB chunks on
//! demand from a [`Blob`] (S3 ranged GETs in production, memory in tests), so deciding
//! costs the head, the tail and, for MP4/ZIP, the index (`moov` box, central directory).

use std::future::Future;

use serde::Serialize;

use crate::Error;
use crate::domain::media::{MediaKind, MediaType, STATIC_STICKER_MAX, STICKER_SIDE, media_type};

/// Size of one ranged read.
pub const CHUNK: u64 = 64 * 1024;
/// Chunks kept in memory at once.
const CACHED_CHUNKS: usize = 8;
/// Largest `moov` box or ZIP central directory read to decide.
const MAX_INDEX: u64 = 8 * 1024 * 1024;
/// Most MP4 boxes walked at one level.
const MAX_BOXES: usize = 256;
/// Most entries in an Office document.
const MAX_ZIP_ENTRIES: usize = 5_000;
/// Most bytes an Office document may expand to.
const MAX_ZIP_UNCOMPRESSED: u64 = 100 * 1024 * 1024;
/// Highest compression ratio of a large entry (zip bombs compress zeros ~1000:1).
const MAX_ZIP_RATIO: u64 = 100;

/// Random access to an object's bytes.
pub trait Blob: Send {
    /// Total size in bytes (the real one, whatever was declared).
    fn len(&self) -> u64;

    /// Whether it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `len` bytes from `offset` (fewer at the end).
    fn read_at(
        &mut self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// The version read (an ETag): reads and the final copy are pinned to it, so an
    /// object replaced while it is being checked is never promoted.
    fn version(&self) -> Option<&str> {
        None
    }
}

/// A blob in memory.
#[derive(Debug, Clone)]
pub struct MemoryBlob(pub Vec<u8>);

impl Blob for MemoryBlob {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(self.0.len());
        Ok(self.0[start..end].to_vec())
    }
}

/// Reads a blob through a few cached, aligned chunks, counting what it fetched.
#[derive(Debug)]
pub struct ChunkedReader<B> {
    blob: B,
    chunks: Vec<(u64, Vec<u8>)>,
    /// Bytes fetched from the blob so far.
    pub bytes_fetched: u64,
    /// Reads sent to the blob so far.
    pub reads: u32,
}

impl<B: Blob> ChunkedReader<B> {
    /// Wraps a blob.
    pub fn new(blob: B) -> Self {
        Self {
            blob,
            chunks: Vec::new(),
            bytes_fetched: 0,
            reads: 0,
        }
    }

    /// The blob's real size.
    pub fn len(&self) -> u64 {
        self.blob.len()
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// The version being read.
    pub fn version(&self) -> Option<&str> {
        self.blob.version()
    }

    /// A few bytes: from the cache when their chunk is there, else read directly (box
    /// headers far apart must not cost a chunk each).
    pub async fn peek(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let base = offset - offset % CHUNK;
        if self.chunks.iter().any(|(b, _)| *b == base) && offset + len <= base + CHUNK {
            return self.read(offset, len).await;
        }
        let len = len.min(self.len().saturating_sub(offset));
        if len == 0 {
            return Ok(Vec::new());
        }
        self.reads += 1;
        let bytes = self.blob.read_at(offset, len).await?;
        self.bytes_fetched += bytes.len() as u64;
        Ok(bytes)
    }

    /// Up to `len` bytes at `offset` (fewer at the end), through the chunk cache. Spans
    /// larger than a chunk are read in one request and not cached.
    pub async fn read(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let size = self.len();
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let len = len.min(size - offset);
        if len > CHUNK {
            self.reads += 1;
            let bytes = self.blob.read_at(offset, len).await?;
            self.bytes_fetched += bytes.len() as u64;
            return Ok(bytes);
        }
        let mut out = Vec::with_capacity(len as usize);
        let mut at = offset;
        while at < offset + len {
            let base = at - at % CHUNK;
            let chunk = self.chunk(base).await?;
            let from = (at - base) as usize;
            if from >= chunk.len() {
                break;
            }
            let to = ((offset + len - base) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[from..to]);
            at = base + to as u64;
        }
        Ok(out)
    }

    async fn chunk(&mut self, base: u64) -> Result<&[u8], Error> {
        if let Some(i) = self.chunks.iter().position(|(b, _)| *b == base) {
            return Ok(&self.chunks[i].1);
        }
        self.reads += 1;
        let bytes = self.blob.read_at(base, CHUNK).await?;
        self.bytes_fetched += bytes.len() as u64;
        if self.chunks.len() >= CACHED_CHUNKS {
            self.chunks.remove(0);
        }
        self.chunks.push((base, bytes));
        Ok(&self.chunks.last().expect("just pushed").1)
    }
}

/// Why content was refused: a stable code and a sentence for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// `content_mismatch`, `truncated`, `unsupported_codec`, `zip_bomb`, ...
    pub code: &'static str,
    /// What is wrong and what to do.
    pub reason: String,
}

fn reject<T>(code: &'static str, reason: impl Into<String>) -> Result<Result<T, Rejection>, Error> {
    Ok(Err(Rejection {
        code,
        reason: reason.into(),
    }))
}

/// What the content turned out to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// The MIME type of the content (equal to the declared one when valid).
    pub mime: &'static str,
    /// Kind.
    pub kind: MediaKind,
    /// Real size.
    pub size: u64,
    /// Image dimensions when known.
    pub width: Option<u32>,
    /// Image dimensions when known.
    pub height: Option<u32>,
    /// Animated sticker.
    pub animated: bool,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | (u32::from(s[1]) << 8) | (u32::from(s[2]) << 16))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magic {
    Jpeg,
    Png,
    Webp,
    Iso,
    Ogg,
    Amr,
    Mp3,
    Aac,
    Pdf,
    Ole2,
    Zip,
    Unknown,
}

fn magic(head: &[u8]) -> Magic {
    let starts = |p: &[u8]| head.starts_with(p);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Magic::Jpeg
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Magic::Png
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        Magic::Webp
    } else if head.get(4..8) == Some(b"ftyp") {
        Magic::Iso
    } else if starts(b"OggS") {
        Magic::Ogg
    } else if starts(b"#!AMR") {
        Magic::Amr
    } else if starts(b"ID3")
        || (head.len() > 1 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && head[1] & 0x06 == 0x02)
    {
        Magic::Mp3
    } else if head.len() > 1 && head[0] == 0xFF && head[1] & 0xF6 == 0xF0 {
        Magic::Aac
    } else if starts(b"%PDF-") {
        Magic::Pdf
    } else if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        Magic::Ole2
    } else if starts(b"PK\x03\x04") {
        Magic::Zip
    } else {
        Magic::Unknown
    }
}

fn describe(m: Magic) -> &'static str {
    match m {
        Magic::Jpeg => "a JPEG image",
        Magic::Png => "a PNG image",
        Magic::Webp => "a WEBP image",
        Magic::Iso => "an MP4/3GP/HEIF file",
        Magic::Ogg => "an OGG file",
        Magic::Amr => "an AMR recording",
        Magic::Mp3 => "an MP3 file",
        Magic::Aac => "an AAC stream",
        Magic::Pdf => "a PDF",
        Magic::Ole2 => "a legacy Office file",
        Magic::Zip => "a ZIP archive",
        Magic::Unknown => "of an unknown type",
    }
}

/// Inspects content against the declared type. `Ok(Err(_))` is a verdict (reject);
/// `Err(_)` is a read failure (worth a retry).
/// `max_size` is the kind's limit for uploads ([`MediaKind::max_size`]); media customers
/// sent may be larger ([`crate::domain::media::INBOUND_MAX_SIZE`]).
pub async fn inspect<B: Blob>(
    reader: &mut ChunkedReader<B>,
    declared: &MediaType,
    max_size: u64,
) -> Result<Result<Inspection, Rejection>, Error> {
    let size = reader.len();
    if size == 0 {
        return reject("empty_file", "the file is empty");
    }
    let max = max_size;
    if size > max {
        return reject(
            "too_large",
            format!(
                "the file is {size} bytes; {} files may be at most {max} bytes",
                declared.kind.as_str()
            ),
        );
    }
    let head = reader.read(0, CHUNK).await?;
    let tail_start = size.saturating_sub(CHUNK);
    let tail = reader.read(tail_start, CHUNK).await?;
    let found = magic(&head);
    let inspection = |mime: &'static str| Inspection {
        mime,
        kind: media_type(mime).map_or(declared.kind, |t| t.kind),
        size,
        width: None,
        height: None,
        animated: false,
    };
    // Media that also carries a ZIP directory at its end is a polyglot.
    if found != Magic::Zip && contains(&tail, b"PK\x05\x06") {
        return reject(
            "polyglot",
            "the file is also a ZIP archive; export it again from a plain tool",
        );
    }
    let verdict: Result<Inspection, Rejection> = match found {
        Magic::Jpeg => {
            let end = tail.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
            if end >= 2 && tail[..end].ends_with(&[0xFF, 0xD9]) {
                Ok(inspection("image/jpeg"))
            } else {
                return reject(
                    "truncated",
                    "the JPEG has no end marker: it was cut off; upload it again",
                );
            }
        }
        Magic::Png => {
            if head.get(12..16) != Some(b"IHDR") {
                return reject("corrupt", "the PNG has no IHDR header");
            }
            if !tail.ends_with(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]) {
                return reject(
                    "truncated",
                    "the PNG has no IEND chunk: it was cut off; upload it again",
                );
            }
            let mut i = inspection("image/png");
            i.width = be32(&head, 16);
            i.height = be32(&head, 20);
            Ok(i)
        }
        Magic::Webp => return webp(&head, size, declared, inspection("image/webp")),
        Magic::Iso => return iso(reader, declared, size).await,
        Magic::Ogg => {
            let segments = usize::from(*head.get(26).unwrap_or(&0));
            let payload = head.get(27 + segments..).unwrap_or_default();
            if payload.starts_with(b"OpusHead") {
                Ok(inspection("audio/ogg"))
            } else if payload.starts_with(b"\x01vorbis") {
                return reject(
                    "vorbis_not_supported",
                    "OGG audio must use the Opus codec, not Vorbis; re-encode it as Opus",
                );
            } else {
                return reject("unsupported_codec", "OGG audio must use the Opus codec");
            }
        }
        Magic::Amr => Ok(inspection("audio/amr")),
        Magic::Mp3 => {
            if head.starts_with(b"ID3") {
                let s = head.get(6..10).unwrap_or_default();
                let tag = s
                    .iter()
                    .fold(0usize, |acc, b| (acc << 7) | usize::from(b & 0x7F))
                    + 10;
                if let Some(frame) = head.get(tag..tag + 2)
                    && !(frame[0] == 0xFF && frame[1] & 0xE0 == 0xE0)
                {
                    return reject(
                        "corrupt",
                        "the MP3 has an ID3 tag but no audio frame after it",
                    );
                }
            }
            Ok(inspection("audio/mpeg"))
        }
        Magic::Aac => Ok(inspection("audio/aac")),
        Magic::Pdf => {
            if !contains(&tail[tail.len().saturating_sub(1024)..], b"%%EOF") {
                return reject(
                    "truncated",
                    "the PDF has no end marker: it was cut off; upload it again",
                );
            }
            Ok(inspection("application/pdf"))
        }
        Magic::Ole2 => {
            const LEGACY: [&str; 3] = [
                "application/msword",
                "application/vnd.ms-excel",
                "application/vnd.ms-powerpoint",
            ];
            if LEGACY.contains(&declared.mime) {
                Ok(inspection(declared.mime))
            } else {
                Err(Rejection {
                    code: "content_mismatch",
                    reason: format!(
                        "the file is a legacy Office document, not {}",
                        declared.mime
                    ),
                })
            }
        }
        Magic::Zip => match zip(reader, size).await? {
            Ok(mime) => Ok(inspection(mime)),
            Err(r) => return Ok(Err(r)),
        },
        Magic::Unknown => {
            if declared.mime == "text/plain" {
                if text_ok(reader).await? {
                    Ok(inspection("text/plain"))
                } else {
                    return reject("content_mismatch", "the file is not UTF-8 text");
                }
            } else {
                return reject(
                    "content_mismatch",
                    format!("the content is not {}", declared.mime),
                );
            }
        }
    };
    Ok(verdict.and_then(|i| {
        if i.mime == declared.mime {
            Ok(i)
        } else {
            Err(Rejection {
                code: "content_mismatch",
                reason: format!(
                    "the file is {}, not the declared {}",
                    describe(found),
                    declared.mime
                ),
            })
        }
    }))
}

/// Whether the whole file is UTF-8 text without NUL bytes (read chunk by chunk; a text
/// file is at most a document's 16 MB).
async fn text_ok<B: Blob>(reader: &mut ChunkedReader<B>) -> Result<bool, Error> {
    let size = reader.len();
    let mut carry: Vec<u8> = Vec::new();
    let mut at = 0;
    while at < size {
        let mut chunk = std::mem::take(&mut carry);
        chunk.extend(reader.read(at, CHUNK).await?);
        at += CHUNK;
        if chunk.contains(&0) {
            return Ok(false);
        }
        match std::str::from_utf8(&chunk) {
            Ok(_) => {}
            // A character cut at the chunk's end continues in the next one.
            Err(e) if e.error_len().is_none() && at < size => {
                carry = chunk[e.valid_up_to()..].to_vec();
            }
            Err(_) => return Ok(false),
        }
    }
    Ok(carry.is_empty())
}

fn webp(
    head: &[u8],
    size: u64,
    declared: &MediaType,
    mut i: Inspection,
) -> Result<Result<Inspection, Rejection>, Error> {
    if declared.mime != "image/webp" {
        return reject(
            "content_mismatch",
            format!(
                "the file is a WEBP image, not the declared {}",
                declared.mime
            ),
        );
    }
    let riff = u64::from(le32(head, 4).unwrap_or(0));
    if riff + 8 > size + 1 {
        return reject(
            "truncated",
            "the WEBP is shorter than its header says: it was cut off",
        );
    }
    let (w, h, animated) = match head.get(12..16) {
        Some(b"VP8X") => {
            let flags = *head.get(20).unwrap_or(&0);
            (
                le24(head, 24).map(|v| v + 1),
                le24(head, 27).map(|v| v + 1),
                flags & 0x02 != 0,
            )
        }
        Some(b"VP8 ") => (
            le16(head, 26).map(|v| u32::from(v & 0x3FFF)),
            le16(head, 28).map(|v| u32::from(v & 0x3FFF)),
            false,
        ),
        Some(b"VP8L") => match le32(head, 21) {
            Some(bits) if head.get(20) == Some(&0x2F) => (
                Some((bits & 0x3FFF) + 1),
                Some(((bits >> 14) & 0x3FFF) + 1),
                false,
            ),
            _ => (None, None, false),
        },
        _ => (None, None, false),
    };
    let (Some(w), Some(h)) = (w, h) else {
        return reject("corrupt", "the WEBP has no readable image header");
    };
    if w != STICKER_SIDE || h != STICKER_SIDE {
        return reject(
            "sticker_dimensions",
            format!("stickers must be 512×512 pixels; this one is {w}×{h}"),
        );
    }
    if !animated && size > STATIC_STICKER_MAX {
        return reject(
            "too_large",
            format!(
                "static stickers may be at most {STATIC_STICKER_MAX} bytes; this one is {size}"
            ),
        );
    }
    i.width = Some(w);
    i.height = Some(h);
    i.animated = animated;
    Ok(Ok(i))
}

/// Child boxes of an ISO BMFF payload: `(type, payload)`.
fn children(data: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size32 = be32(data, at)? as usize;
        let kind: [u8; 4] = data.get(at + 4..at + 8)?.try_into().ok()?;
        let (header, size) = match size32 {
            0 => (8, data.len() - at),
            1 => (16, usize::try_from(be64(data, at + 8)?).ok()?),
            n => (8, n),
        };
        let end = at.checked_add(size).filter(|&e| e <= data.len())?;
        if size < header {
            return None;
        }
        out.push((kind, &data[at + header..end]));
        at = end;
        if out.len() > MAX_BOXES {
            return None;
        }
    }
    Some(out)
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    children(data)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, p)| p)
}

/// `(handler, codec)` of each track of a `moov` payload.
fn tracks(moov: &[u8]) -> Option<Vec<([u8; 4], [u8; 4])>> {
    let mut out = Vec::new();
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = child(trak, b"mdia")?;
        let handler: [u8; 4] = child(mdia, b"hdlr")?.get(8..12)?.try_into().ok()?;
        let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
        let codec: [u8; 4] = stsd.get(12..16)?.try_into().ok()?;
        out.push((handler, codec));
    }
    Some(out)
}

async fn iso<B: Blob>(
    reader: &mut ChunkedReader<B>,
    declared: &MediaType,
    size: u64,
) -> Result<Result<Inspection, Rejection>, Error> {
    let mut brands: Vec<[u8; 4]> = Vec::new();
    let mut moov: Option<(u64, u64)> = None;
    let mut at = 0u64;
    let mut walked = 0;
    while at < size {
        walked += 1;
        if walked > MAX_BOXES {
            return reject("corrupt", "the file has too many top-level boxes");
        }
        let h = reader.peek(at, 16).await?;
        let (Some(size32), Some(kind)) = (be32(&h, 0), h.get(4..8)) else {
            return reject(
                "truncated",
                "the file ends inside a box header: it was cut off",
            );
        };
        let (header, len) = match size32 {
            0 => (8, size - at),
            1 => match be64(&h, 8) {
                Some(l) => (16, l),
                None => return reject("truncated", "the file ends inside a box header"),
            },
            n => (8, u64::from(n)),
        };
        if len < header || at.checked_add(len).is_none_or(|end| end > size) {
            return reject(
                "truncated",
                "a box runs past the end of the file: it was cut off; upload it again",
            );
        }
        match kind {
            b"ftyp" => {
                let body = reader.read(at + header, (len - header).min(256)).await?;
                brands.extend(
                    body.chunks_exact(4)
                        .enumerate()
                        .filter(|(i, _)| *i != 1)
                        .filter_map(|(_, c)| <[u8; 4]>::try_from(c).ok()),
                );
            }
            b"moov" => moov = Some((at + header, len - header)),
            _ => {}
        }
        at += len;
    }
    const HEIF: [&[u8; 4]; 9] = [
        b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1",
    ];
    if brands.iter().any(|b| HEIF.contains(&b)) {
        return reject(
            "heic_not_supported",
            "HEIC/HEIF images cannot be sent; convert the photo to JPEG first",
        );
    }
    let Some((offset, len)) = moov else {
        return reject("corrupt", "the file has no movie header (moov box)");
    };
    if len > MAX_INDEX {
        return reject("corrupt", "the movie header is unreasonably large");
    }
    let moov = reader.read(offset, len).await?;
    let Some(tracks) = tracks(&moov) else {
        return reject("corrupt", "the movie header cannot be read");
    };
    let video: Vec<[u8; 4]> = tracks
        .iter()
        .filter(|(h, _)| h == b"vide")
        .map(|(_, c)| *c)
        .collect();
    let audio: Vec<[u8; 4]> = tracks
        .iter()
        .filter(|(h, _)| h == b"soun")
        .map(|(_, c)| *c)
        .collect();
    let three_gp = brands.iter().any(|b| b.starts_with(b"3g"));
    let name = |c: &[u8; 4]| String::from_utf8_lossy(c).into_owned();
    let mime = if !video.is_empty() {
        if let Some(c) = video.iter().find(|c| !matches!(&c[..], b"avc1" | b"avc3")) {
            return reject(
                "unsupported_codec",
                format!(
                    "video must be H.264 (avc1); this file uses {}. Re-encode it as H.264/AAC MP4",
                    name(c)
                ),
            );
        }
        if audio.len() > 1 {
            return reject(
                "too_many_audio_tracks",
                format!(
                    "video may have at most one audio track; this one has {}",
                    audio.len()
                ),
            );
        }
        if let Some(c) = audio.iter().find(|c| &c[..] != b"mp4a") {
            return reject(
                "unsupported_codec",
                format!("video sound must be AAC (mp4a); this file uses {}", name(c)),
            );
        }
        if three_gp { "video/3gpp" } else { "video/mp4" }
    } else {
        match audio.as_slice() {
            [] => return reject("corrupt", "the file has no audio or video track"),
            [one] => {
                let ok = &one[..] == b"mp4a" || (three_gp && matches!(&one[..], b"samr" | b"sawb"));
                if !ok {
                    return reject(
                        "unsupported_codec",
                        format!(
                            "audio must be AAC (or AMR in 3GP); this file uses {}",
                            name(one)
                        ),
                    );
                }
                if three_gp { "audio/3gpp" } else { "audio/mp4" }
            }
            _ => return reject("too_many_audio_tracks", "audio files may have one track"),
        }
    };
    if mime != declared.mime {
        return reject(
            "content_mismatch",
            format!("the file is {mime}, not the declared {}", declared.mime),
        );
    }
    Ok(Ok(Inspection {
        mime,
        kind: media_type(mime).map_or(declared.kind, |t| t.kind),
        size,
        width: None,
        height: None,
        animated: false,
    }))
}

/// Walks a ZIP's central directory (never extracting) and names the Office type.
async fn zip<B: Blob>(
    reader: &mut ChunkedReader<B>,
    size: u64,
) -> Result<Result<&'static str, Rejection>, Error> {
    let tail_len = size.min(65_557);
    let tail = reader.read(size - tail_len, tail_len).await?;
    let Some(eocd) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return reject(
            "truncated",
            "the archive has no end of central directory: it was cut off",
        );
    };
    let e = &tail[eocd..];
    let (Some(entries), Some(cd_size), Some(cd_offset)) = (le16(e, 10), le32(e, 12), le32(e, 16))
    else {
        return reject("truncated", "the archive directory record is cut off");
    };
    if entries == 0xFFFF || cd_size == u32::MAX || cd_offset == u32::MAX {
        return reject(
            "corrupt",
            "ZIP64 archives are not accepted as Office documents",
        );
    }
    let (cd_size, cd_offset) = (u64::from(cd_size), u64::from(cd_offset));
    if usize::from(entries) > MAX_ZIP_ENTRIES {
        return reject(
            "zip_bomb",
            format!("the archive has {entries} entries; at most {MAX_ZIP_ENTRIES} are accepted"),
        );
    }
    if cd_size > MAX_INDEX || cd_offset + cd_size > size {
        return reject("corrupt", "the archive directory points outside the file");
    }
    let cd = reader.read(cd_offset, cd_size).await?;
    let mut at = 0usize;
    let mut names = Vec::new();
    let mut total: u64 = 0;
    for _ in 0..entries {
        if cd.get(at..at + 4) != Some(b"PK\x01\x02") {
            return reject("corrupt", "the archive directory is damaged");
        }
        let (Some(compressed), Some(uncompressed), Some(n), Some(x), Some(c), Some(local)) = (
            le32(&cd, at + 20),
            le32(&cd, at + 24),
            le16(&cd, at + 28),
            le16(&cd, at + 30),
            le16(&cd, at + 32),
            le32(&cd, at + 42),
        ) else {
            return reject("corrupt", "the archive directory is damaged");
        };
        let Some(name) = cd.get(at + 46..at + 46 + usize::from(n)) else {
            return reject("corrupt", "the archive directory is damaged");
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if name.starts_with('/')
            || name.contains('\\')
            || name.contains(':')
            || name.split('/').any(|p| p == "..")
        {
            return reject(
                "path_traversal",
                format!("the archive has an entry with an unsafe path: {name:?}"),
            );
        }
        let lower = name.to_ascii_lowercase();
        if lower.ends_with("vbaproject.bin") || lower.ends_with("vbadata.xml") {
            return reject(
                "macro_enabled",
                "documents with macros are not accepted; save it without macros (.docx/.xlsx/.pptx)",
            );
        }
        let (compressed, uncompressed) = (u64::from(compressed), u64::from(uncompressed));
        if u64::from(local) >= cd_offset {
            return reject("corrupt", "an archive entry points outside the file");
        }
        if uncompressed > 1024 * 1024 && uncompressed > compressed.max(1) * MAX_ZIP_RATIO {
            return reject(
                "zip_bomb",
                format!(
                    "the entry {name:?} expands {}x; the archive looks like a zip bomb",
                    uncompressed / compressed.max(1)
                ),
            );
        }
        total += uncompressed;
        if total > MAX_ZIP_UNCOMPRESSED {
            return reject("zip_bomb", "the archive expands to more than 100 MB");
        }
        names.push(name);
        at += 46 + usize::from(n) + usize::from(x) + usize::from(c);
    }
    let has = |n: &str| names.iter().any(|x| x == n);
    if !has("[Content_Types].xml") {
        return reject(
            "content_mismatch",
            "the ZIP archive is not an Office document",
        );
    }
    Ok(Ok(if has("word/document.xml") {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    } else if has("xl/workbook.xml") {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    } else if has("ppt/presentation.xml") {
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    } else {
        return reject(
            "content_mismatch",
            "the archive is not a Word, Excel or PowerPoint document",
        );
    }))
}

#[cfg(test)]
#[path = "sniff_tests.rs"]
mod tests;
