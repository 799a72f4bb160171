//! Media validation by content: magic bytes and container structure, read in ranges.
//!
//! Nothing here reads a whole file when it does not have to: [`ChunkedReader`] fetches
//! aligned 64 KiB chunks on demand from a [`Blob`] (S3 ranged GETs in production, memory in
//! tests), so deciding costs the head, the tail and, for MP4/ZIP/OLE2, the index (`moov`
//! box, central directory, compound-file directory).
//!
//! The checks judge what real phones and tools write, not one byte layout: MP4 boxes in any
//! order (`moov` after `mdat`, `free`/`wide`/`uuid`, 64-bit sizes, fragments), ID3 tags of
//! any size before MP3 or AAC frames, JPEG and PNG files with bytes after their end marker,
//! `%PDF-` within the first KiB, ZIP64 Office files, text in UTF-8, UTF-16 or Windows-1252.
//! A file is only called "cut off" when its own structure says bytes are missing.

mod audio;
mod image;
mod mp4;
mod office;
mod reader;
mod text;

use serde::Serialize;

pub use self::reader::{Blob, CHUNK, ChunkedReader, MemoryBlob};
use crate::Error;
use crate::domain::media::{MediaKind, MediaType, media_type};

/// Largest index (`moov` box, ZIP central directory, compound-file directory) read to decide.
const MAX_INDEX: u64 = 8 * 1024 * 1024;

/// Why content was refused: a stable code and a sentence for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// `content_mismatch`, `truncated`, `unsupported_codec`, `zip_bomb`, ...
    pub code: &'static str,
    /// What is wrong and what to do.
    pub reason: String,
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

/// A verdict (`Ok(Err(_))` rejects) or a read failure (`Err(_)`, worth a retry).
type Verdict<T> = Result<Result<T, Rejection>, Error>;

fn reject<T>(code: &'static str, reason: impl Into<String>) -> Verdict<T> {
    Ok(Err(Rejection {
        code,
        reason: reason.into(),
    }))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
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

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | (u32::from(s[1]) << 8) | (u32::from(s[2]) << 16))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
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
    /// An ID3v2 tag: what follows it decides (MP3 or AAC).
    Id3,
    Mp3,
    Aac,
    Pdf,
    Ole2,
    Zip,
    Unknown,
}

/// Top-level ISO BMFF boxes a file may start with when it has no `ftyp` (QuickTime-era
/// writers, some phones).
const ISO_FIRST_BOXES: [&[u8; 4]; 5] = [b"moov", b"mdat", b"free", b"skip", b"wide"];

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
    } else if starts(b"ID3") {
        Magic::Id3
    } else if audio::mpeg_frame(head).is_some() {
        Magic::Mp3
    } else if audio::is_adts(head) || starts(b"ADIF") {
        Magic::Aac
    } else if starts(b"%PDF-") {
        Magic::Pdf
    } else if starts(&office::CFB_SIGNATURE) {
        Magic::Ole2
    } else if starts(b"PK\x03\x04") {
        Magic::Zip
    } else {
        Magic::Unknown
    }
}

/// What a MIME type is, in words, for reasons.
fn describe(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "a JPEG image",
        "image/png" => "a PNG image",
        "image/webp" => "a WEBP image",
        "audio/mpeg" => "an MP3 file",
        "audio/ogg" => "an OGG file",
        "audio/amr" => "an AMR recording",
        "audio/aac" => "an AAC stream",
        "audio/mp4" => "an M4A (MP4 audio) file",
        "audio/3gpp" => "a 3GP audio file",
        "video/mp4" => "an MP4 video",
        "video/3gpp" => "a 3GP video",
        "application/pdf" => "a PDF",
        "application/msword" => "a Word document (.doc)",
        "application/vnd.ms-excel" => "an Excel workbook (.xls)",
        "application/vnd.ms-powerpoint" => "a PowerPoint presentation (.ppt)",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
            "a Word document (.docx)"
        }
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => {
            "an Excel workbook (.xlsx)"
        }
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
            "a PowerPoint presentation (.pptx)"
        }
        "text/plain" => "a text file",
        _ => "of another type",
    }
}

fn mismatch(found: &str, declared: &MediaType) -> Rejection {
    Rejection {
        code: "content_mismatch",
        reason: format!(
            "the file is {}, not the declared {}",
            describe(found),
            declared.mime
        ),
    }
}

/// Inspects content against the declared type. `Ok(Err(_))` is a verdict (reject);
/// `Err(_)` is a read failure (worth a retry).
/// `max_size` is the kind's limit for uploads ([`MediaKind::max_size`]); media customers
/// sent may be larger ([`crate::domain::media::INBOUND_MAX_SIZE`]).
///
/// # Errors
///
/// A read of the blob failed (`Error::Conflict` when the object changed while read).
pub async fn inspect<B: Blob>(
    reader: &mut ChunkedReader<B>,
    declared: &MediaType,
    max_size: u64,
) -> Verdict<Inspection> {
    let size = reader.len();
    if size == 0 {
        return reject("empty_file", "the file is empty");
    }
    if size > max_size {
        return reject(
            "too_large",
            format!(
                "the file is {size} bytes; {} files may be at most {max_size} bytes",
                declared.kind.as_str()
            ),
        );
    }
    let head = reader.read(0, CHUNK).await?;
    let tail_start = size.saturating_sub(CHUNK);
    let tail = reader.read(tail_start, CHUNK).await?;
    let text_bom = [&[0xEF, 0xBB, 0xBF][..], &[0xFF, 0xFE], &[0xFE, 0xFF]];
    let mut found = if declared.mime == "text/plain" && text_bom.iter().any(|b| head.starts_with(b))
    {
        Magic::Unknown
    } else {
        magic(&head)
    };
    if found == Magic::Unknown {
        // What readers and decoders accept past a strict byte-0 signature.
        if declared.mime == "application/pdf" && text::pdf_start(&head).is_some() {
            found = Magic::Pdf;
        } else if declared.mime == "audio/mpeg" && audio::frames_within(&head, 0).is_some() {
            found = Magic::Mp3;
        } else if matches!(declared.kind, MediaKind::Audio | MediaKind::Video)
            && head
                .get(4..8)
                .is_some_and(|k| ISO_FIRST_BOXES.iter().any(|b| &b[..] == k))
            // A first box that fits the file: text that happens to spell a box name is
            // not taken for a cut movie.
            && be32(&head, 0).is_some_and(|s| s == 0 || s == 1 || (8..=size).contains(&u64::from(s)))
        {
            found = Magic::Iso;
        }
    }
    // Media that also carries a ZIP directory at its end is a polyglot. Compound files
    // hold ZIP parts of their own (Word keeps its theme as one).
    if !matches!(found, Magic::Zip | Magic::Ole2) && office::ends_with_zip(&tail) {
        return reject(
            "polyglot",
            "the file is also a ZIP archive; export it again from a plain tool",
        );
    }
    let mut seen = Inspection {
        mime: "",
        kind: declared.kind,
        size,
        width: None,
        height: None,
        animated: false,
    };
    let mime: &'static str = match found {
        Magic::Jpeg => match image::jpeg(reader, &tail, size).await? {
            Ok(()) => "image/jpeg",
            Err(r) => return Ok(Err(r)),
        },
        Magic::Png => match image::png(reader, &head, &tail, size).await? {
            Ok((w, h)) => {
                seen.width = w;
                seen.height = h;
                "image/png"
            }
            Err(r) => return Ok(Err(r)),
        },
        Magic::Webp => {
            if declared.mime != "image/webp" {
                return Ok(Err(mismatch("image/webp", declared)));
            }
            match image::webp(&head, size)? {
                Ok(sticker) => {
                    seen.width = Some(sticker.width);
                    seen.height = Some(sticker.height);
                    seen.animated = sticker.animated;
                    "image/webp"
                }
                Err(r) => return Ok(Err(r)),
            }
        }
        Magic::Iso => match mp4::iso(reader, declared, size).await? {
            Ok(mime) => mime,
            Err(r) => return Ok(Err(r)),
        },
        Magic::Ogg => match audio::ogg(&head)? {
            Ok(mime) => mime,
            Err(r) => return Ok(Err(r)),
        },
        Magic::Amr => "audio/amr",
        Magic::Id3 => match audio::after_id3(reader, &head).await? {
            Ok(mime) => mime,
            Err(r) => return Ok(Err(r)),
        },
        Magic::Mp3 => "audio/mpeg",
        Magic::Aac => "audio/aac",
        Magic::Pdf => match text::pdf(&tail)? {
            Ok(()) => "application/pdf",
            Err(r) => return Ok(Err(r)),
        },
        Magic::Ole2 if !office::LEGACY.contains(&declared.mime) => {
            return reject(
                "content_mismatch",
                format!(
                    "the file is a legacy Office document, not the declared {}",
                    declared.mime
                ),
            );
        }
        Magic::Ole2 => match office::cfb(reader, size).await? {
            Ok(mime) => mime,
            Err(r) => return Ok(Err(r)),
        },
        Magic::Zip => match office::zip(reader, size).await? {
            Ok(mime) => mime,
            Err(r) => return Ok(Err(r)),
        },
        Magic::Unknown => {
            if declared.mime != "text/plain" {
                return reject(
                    "content_mismatch",
                    format!("the content is not {}", declared.mime),
                );
            }
            match text::text(reader).await? {
                Ok(()) => "text/plain",
                Err(r) => return Ok(Err(r)),
            }
        }
    };
    if mime != declared.mime {
        return Ok(Err(mismatch(mime, declared)));
    }
    seen.mime = mime;
    seen.kind = media_type(mime).map_or(declared.kind, |t| t.kind);
    Ok(Ok(seen))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod corpus_tests;
