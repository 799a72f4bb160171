//! JPEG, PNG and WEBP (stickers).

use super::{Blob, ChunkedReader, Rejection, Verdict, be16, be32, le16, le24, le32, reject};
use crate::domain::media::{STATIC_STICKER_MAX, STICKER_SIDE};

/// Most JPEG header segments walked before the first scan.
const MAX_JPEG_SEGMENTS: usize = 1_024;
/// Most PNG chunks walked when the end marker is not in the tail.
const MAX_PNG_CHUNKS: usize = 100_000;
/// One read of a forward scan.
const SCAN_SPAN: u64 = 1024 * 1024;

const EOI: [u8; 2] = [0xFF, 0xD9];
const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];

fn cut_off(what: &str) -> Verdict<()> {
    reject(
        "truncated",
        format!("the {what} has no end marker: it was cut off; upload it again"),
    )
}

/// Where the first scan's data starts, walking the header segments (EXIF, ICC, tables):
/// `None` when the headers are not laid out as segments (then any end marker counts).
async fn first_scan<B: Blob>(reader: &mut ChunkedReader<B>) -> Result<Option<u64>, crate::Error> {
    let mut at = 2u64;
    for _ in 0..MAX_JPEG_SEGMENTS {
        let h = reader.read(at, 4).await?;
        let (Some(&0xFF), Some(&marker)) = (h.first(), h.get(1)) else {
            return Ok(None);
        };
        match marker {
            // Fill bytes before a marker.
            0xFF => at += 1,
            // Markers without a length.
            0x01 | 0xD0..=0xD8 => at += 2,
            _ => {
                let Some(len) = be16(&h, 2) else {
                    return Ok(None);
                };
                at += 2 + u64::from(len);
                if marker == 0xDA {
                    return Ok(Some(at));
                }
            }
        }
    }
    Ok(None)
}

/// A JPEG is whole when its end-of-image marker follows its first scan. Phones append data
/// after it (motion photos, maker trailers, a second picture): that is not a cut.
pub(super) async fn jpeg<B: Blob>(
    reader: &mut ChunkedReader<B>,
    tail: &[u8],
    size: u64,
) -> Verdict<()> {
    let scan = first_scan(reader).await?.unwrap_or(2);
    let tail_start = size - tail.len() as u64;
    // Entropy-coded data never holds FF D9, so an end marker after the scan start is one.
    let last = tail.windows(2).rposition(|w| w == EOI);
    if last.is_some_and(|i| tail_start + i as u64 >= scan) {
        return Ok(Ok(()));
    }
    if tail_start <= scan {
        return cut_off("JPEG");
    }
    // More than a chunk after the picture (a motion photo's video): scan for the marker.
    let mut at = scan;
    while at < tail_start {
        let span = reader.read(at, SCAN_SPAN + 1).await?;
        if span.windows(2).any(|w| w == EOI) {
            return Ok(Ok(()));
        }
        at += SCAN_SPAN;
    }
    cut_off("JPEG")
}

/// A PNG with its IHDR header and an IEND chunk (bytes after IEND are tolerated, as viewers
/// do); `(width, height)`.
pub(super) async fn png<B: Blob>(
    reader: &mut ChunkedReader<B>,
    head: &[u8],
    tail: &[u8],
    size: u64,
) -> Verdict<(Option<u32>, Option<u32>)> {
    if head.get(12..16) != Some(b"IHDR") {
        return reject("corrupt", "the PNG has no IHDR header");
    }
    let dimensions = (be32(head, 16), be32(head, 20));
    if tail.windows(IEND.len()).any(|w| w == IEND) {
        return Ok(Ok(dimensions));
    }
    if size <= tail.len() as u64 {
        return Ok(Err(cut_png()));
    }
    // Walk the chunks (through the chunk cache: many small chunks cost one read per
    // 64 KiB): more than a chunk of data after IEND, or a cut.
    let mut at = 8u64;
    for _ in 0..MAX_PNG_CHUNKS {
        let h = reader.read(at, 8).await?;
        let (Some(len), Some(kind)) = (be32(&h, 0), h.get(4..8)) else {
            return Ok(Err(cut_png()));
        };
        if kind == b"IEND" {
            return Ok(Ok(dimensions));
        }
        at += 12 + u64::from(len);
        if at > size {
            return Ok(Err(cut_png()));
        }
    }
    reject("corrupt", "the PNG has too many chunks")
}

fn cut_png() -> Rejection {
    Rejection {
        code: "truncated",
        reason: "the PNG has no IEND chunk: it was cut off; upload it again".into(),
    }
}

/// A sticker's picture.
pub(super) struct Sticker {
    pub width: u32,
    pub height: u32,
    pub animated: bool,
}

/// A WEBP sticker: 512×512, static ones at most [`STATIC_STICKER_MAX`] bytes.
pub(super) fn webp(head: &[u8], size: u64) -> Verdict<Sticker> {
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
    let (Some(width), Some(height)) = (w, h) else {
        return reject("corrupt", "the WEBP has no readable image header");
    };
    if width != STICKER_SIDE || height != STICKER_SIDE {
        return reject(
            "sticker_dimensions",
            format!("stickers must be 512×512 pixels; this one is {width}×{height}"),
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
    Ok(Ok(Sticker {
        width,
        height,
        animated,
    }))
}
