//! MP4, M4A and 3GP (ISO base media files): top-level boxes, then the `moov` box's tracks.

use super::{Blob, ChunkedReader, MAX_INDEX, Verdict, be32, be64, reject};
use crate::domain::media::MediaType;

/// Most boxes walked at one level.
const MAX_BOXES: usize = 256;

/// HEIF image brands (iPhone photos).
const HEIF: [&[u8; 4]; 9] = [
    b"heic", b"heix", b"hevc", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1",
];

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

/// `(handler, codec)` of each sound and video track of a `moov` payload; other tracks
/// (timecode, metadata, hint, chapters) are not read.
fn tracks(moov: &[u8]) -> Option<Vec<([u8; 4], [u8; 4])>> {
    let mut out = Vec::new();
    for (kind, trak) in children(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let mdia = child(trak, b"mdia")?;
        let handler: [u8; 4] = child(mdia, b"hdlr")?.get(8..12)?.try_into().ok()?;
        if !matches!(&handler, b"vide" | b"soun") {
            continue;
        }
        let stsd = child(child(child(mdia, b"minf")?, b"stbl")?, b"stsd")?;
        let codec: [u8; 4] = stsd.get(12..16)?.try_into().ok()?;
        out.push((handler, codec));
    }
    Some(out)
}

/// Which MIME family the brands allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Mp4,
    ThreeGp,
    /// No `ftyp`, or an MP4 brand listing 3GP as compatible: either declaration fits.
    Either,
}

fn family(major: Option<[u8; 4]>, compatible: &[[u8; 4]]) -> Family {
    match major {
        None => Family::Either,
        Some(m) if m.starts_with(b"3g") => Family::ThreeGp,
        Some(_) if compatible.iter().any(|b| b.starts_with(b"3g")) => Family::Either,
        Some(_) => Family::Mp4,
    }
}

/// Walks the top-level boxes (any order, any sizes) and judges the tracks.
pub(super) async fn iso<B: Blob>(
    reader: &mut ChunkedReader<B>,
    declared: &MediaType,
    size: u64,
) -> Verdict<&'static str> {
    let mut major: Option<[u8; 4]> = None;
    let mut compatible: Vec<[u8; 4]> = Vec::new();
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
            if moov.is_some() {
                // A few stray bytes after the last box: players ignore them.
                break;
            }
            return reject(
                "truncated",
                "the file ends inside a box header: it was cut off",
            );
        };
        if size32 == 0 && kind == [0, 0, 0, 0] && moov.is_some() {
            // Zero padding after the last box.
            break;
        }
        let (header, len) = match size32 {
            0 => (8, size - at),
            1 => match be64(&h, 8) {
                Some(l) => (16, l),
                None => return reject("truncated", "the file ends inside a box header"),
            },
            n => (8, u64::from(n)),
        };
        if len < header {
            return reject("corrupt", "a box is smaller than its own header");
        }
        if at.checked_add(len).is_none_or(|end| end > size) {
            return reject(
                "truncated",
                "a box runs past the end of the file: it was cut off; upload it again",
            );
        }
        match kind {
            b"ftyp" if major.is_none() => {
                let body = reader.read(at + header, (len - header).min(256)).await?;
                major = body.get(0..4).and_then(|b| b.try_into().ok());
                compatible.extend(
                    body.get(8..)
                        .unwrap_or_default()
                        .chunks_exact(4)
                        .filter_map(|c| <[u8; 4]>::try_from(c).ok()),
                );
            }
            b"moov" => moov = Some((at + header, len - header)),
            // Fragments follow their movie header: each plays on its own, so the rest
            // need not be walked.
            b"moof" if moov.is_some() => break,
            _ => {}
        }
        at += len;
    }
    if major
        .iter()
        .chain(compatible.iter())
        .any(|b| HEIF.contains(&b))
    {
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
    let codecs = |handler: &[u8; 4]| -> Vec<[u8; 4]> {
        tracks
            .iter()
            .filter(|(h, _)| h == handler)
            .map(|(_, c)| *c)
            .collect()
    };
    let (video, audio) = (codecs(b"vide"), codecs(b"soun"));
    let three_gp = match family(major, &compatible) {
        Family::Mp4 => false,
        Family::ThreeGp => true,
        Family::Either => declared.mime.ends_with("/3gpp"),
    };
    let name = |c: &[u8; 4]| String::from_utf8_lossy(c).into_owned();
    if !video.is_empty() {
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
        return Ok(Ok(if three_gp { "video/3gpp" } else { "video/mp4" }));
    }
    match audio.as_slice() {
        [] => reject("corrupt", "the file has no audio or video track"),
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
            Ok(Ok(if three_gp { "audio/3gpp" } else { "audio/mp4" }))
        }
        _ => reject("too_many_audio_tracks", "audio files may have one track"),
    }
}
