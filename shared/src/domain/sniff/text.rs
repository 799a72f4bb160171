//! Plain text (UTF-8, UTF-16 with a byte-order mark, Windows-1252/Latin-1) and PDF.

use super::{Blob, CHUNK, ChunkedReader, Verdict, contains, find, reject};

/// How far into a file PDF readers look for the `%PDF-` header.
const PDF_HEADER_WINDOW: usize = 1024;

/// Where `%PDF-` starts, within the first KiB (after a BOM, whitespace or a mail header).
pub(super) fn pdf_start(head: &[u8]) -> Option<usize> {
    find(&head[..head.len().min(PDF_HEADER_WINDOW)], b"%PDF-")
}

/// A PDF is whole when its last KiBs hold an end-of-file marker or the cross-reference
/// pointer readers start from (bytes after it, as some senders add, are tolerated).
pub(super) fn pdf(tail: &[u8]) -> Verdict<()> {
    if contains(tail, b"%%EOF") || contains(tail, b"startxref") {
        return Ok(Ok(()));
    }
    reject(
        "truncated",
        "the PDF has no end marker: it was cut off; upload it again",
    )
}

/// C0 control bytes no text file holds (tab, line breaks, form feed, backspace, escape
/// and the DOS end-of-file mark are fine).
fn is_binary(unit: u32) -> bool {
    unit < 0x20 && !matches!(unit, 0x08..=0x0D | 0x1A | 0x1B)
}

fn not_text() -> Verdict<()> {
    reject(
        "content_mismatch",
        "the file is not text (UTF-8, UTF-16 with a byte-order mark, or Windows-1252)",
    )
}

/// Text, read chunk by chunk (a text file is at most a document's 16 MB): UTF-16 when it
/// starts with its byte-order mark (whole code units, surrogates paired), otherwise bytes in
/// UTF-8 or a single-byte code page; never control bytes binary files are full of.
pub(super) async fn text<B: Blob>(reader: &mut ChunkedReader<B>) -> Verdict<()> {
    let size = reader.len();
    let bom = reader.read(0, 2).await?;
    let utf16 = match bom.as_slice() {
        [0xFF, 0xFE] => Some(u16::from_le_bytes as fn([u8; 2]) -> u16),
        [0xFE, 0xFF] => Some(u16::from_be_bytes as fn([u8; 2]) -> u16),
        _ => None,
    };
    if utf16.is_some() && size % 2 != 0 {
        return not_text();
    }
    // A high surrogate at a chunk's end pairs with the next chunk's first unit.
    let mut pending_high = false;
    let mut at = 0;
    while at < size {
        let chunk = reader.read(at, CHUNK).await?;
        at += CHUNK;
        let Some(unit) = utf16 else {
            if chunk.iter().any(|b| is_binary(u32::from(*b))) {
                return not_text();
            }
            continue;
        };
        for pair in chunk.chunks_exact(2) {
            let u = unit([pair[0], pair[1]]);
            let high = (0xD800..0xDC00).contains(&u);
            let low = (0xDC00..0xE000).contains(&u);
            if low != pending_high || is_binary(u32::from(u)) {
                return not_text();
            }
            pending_high = high;
        }
    }
    if pending_high {
        return not_text();
    }
    Ok(Ok(()))
}
