//! MP3 (MPEG audio), AAC (ADTS), OGG and what an ID3 tag precedes.

use super::{Blob, ChunkedReader, Verdict, reject};

/// Most ID3v2 tags in a row (some taggers write a second one before the audio).
const MAX_ID3_TAGS: usize = 4;
/// How far after a tag (or from the start) decoders look for the first audio frame.
const RESYNC_WINDOW: usize = 16 * 1024;
/// Most OGG pages that start a logical stream (skeleton, audio, video).
const MAX_OGG_STREAMS: usize = 8;

/// Bit rates in kbit/s, by `[version is 1][layer III, II, I][index]`.
const BITRATES: [[[u16; 16]; 3]; 2] = [
    [
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0,
        ],
    ],
    [
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0,
        ],
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0,
        ],
    ],
];

/// The length of the MPEG audio frame (any version, any layer) whose header starts `b`:
/// `Some(0)` for a valid "free format" header whose length is unknown.
pub(super) fn mpeg_frame(b: &[u8]) -> Option<usize> {
    let (b1, b2) = (*b.get(1)?, *b.get(2)?);
    if b[0] != 0xFF || b1 & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b1 >> 3) & 0x03; // 0: 2.5, 1: reserved, 2: 2, 3: 1
    let layer = (b1 >> 1) & 0x03; // 0: reserved (ADTS), 1: III, 2: II, 3: I
    let bitrate = usize::from(b2 >> 4);
    let rate = usize::from((b2 >> 2) & 0x03);
    if version == 1 || layer == 0 || bitrate == 15 || rate == 3 {
        return None;
    }
    let v1 = version == 3;
    let kbps = u32::from(BITRATES[usize::from(v1)][usize::from(layer - 1)][bitrate]);
    let halvings = match version {
        3 => 0,
        2 => 1,
        _ => 2,
    };
    let hz = [44_100u32, 48_000, 32_000][rate] >> halvings;
    let padding = u32::from((b2 >> 1) & 0x01);
    Some(match layer {
        3 => ((12 * kbps * 1000 / hz + padding) * 4) as usize,
        1 if !v1 => (72 * kbps * 1000 / hz + padding) as usize,
        _ => (144 * kbps * 1000 / hz + padding) as usize,
    })
}

/// Whether `b` starts an ADTS (AAC) frame header.
pub(super) fn is_adts(b: &[u8]) -> bool {
    matches!(b, [0xFF, b1, b2, ..] if b1 & 0xF6 == 0xF0 && (b2 >> 2) & 0x0F < 13)
}

/// Where the first of two consecutive MPEG audio frames starts, from `from` within the
/// window decoders resynchronise in (junk or padding before the audio).
pub(super) fn frames_within(b: &[u8], from: usize) -> Option<usize> {
    let end = b.len().min(from.saturating_add(RESYNC_WINDOW));
    (from..end).find(|&at| {
        let Some(len) = b.get(at..).and_then(mpeg_frame) else {
            return false;
        };
        // Two frames in a row, or a file of one frame.
        len > 0
            && (b.get(at + len..).and_then(mpeg_frame).is_some()
                || (at == from && at + len == b.len()))
    })
}

/// ID3v2 tags (with a footer or not, of any size), then MP3 or AAC frames.
pub(super) async fn after_id3<B: Blob>(
    reader: &mut ChunkedReader<B>,
    head: &[u8],
) -> Verdict<&'static str> {
    let mut at = 0u64;
    let mut header = head.get(..10).unwrap_or_default().to_vec();
    for _ in 0..MAX_ID3_TAGS {
        if !header.starts_with(b"ID3") || header.len() < 10 {
            break;
        }
        let body = header[6..10]
            .iter()
            .fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7F));
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        at += 10 + body + footer;
        header = reader.peek(at, 10).await?;
    }
    let audio = reader.read(at, RESYNC_WINDOW as u64 * 2).await?;
    // Zero padding some taggers leave after the tag's declared size.
    let start = audio.iter().position(|b| *b != 0).unwrap_or(audio.len());
    let frames = &audio[start..];
    if is_adts(frames) {
        return Ok(Ok("audio/aac"));
    }
    if mpeg_frame(frames).is_some() || frames_within(&audio, start).is_some() {
        return Ok(Ok("audio/mpeg"));
    }
    if audio.is_empty() {
        return reject(
            "truncated",
            "the file ends inside its ID3 tag: it was cut off; upload it again",
        );
    }
    reject(
        "corrupt",
        "the MP3 has an ID3 tag but no audio frame after it",
    )
}

/// OGG: the streams that start on the first pages; audio must be Opus.
pub(super) fn ogg(head: &[u8]) -> Verdict<&'static str> {
    let mut at = 0usize;
    let mut codecs: Vec<&[u8]> = Vec::new();
    for _ in 0..MAX_OGG_STREAMS {
        let Some(page) = head.get(at..) else { break };
        if !page.starts_with(b"OggS") || page.get(5).is_none_or(|flags| flags & 0x02 == 0) {
            break;
        }
        let segments = usize::from(*page.get(26).unwrap_or(&0));
        let Some(lacing) = page.get(27..27 + segments) else {
            break;
        };
        let body: usize = lacing.iter().map(|l| usize::from(*l)).sum();
        codecs.push(page.get(27 + segments..).unwrap_or_default());
        at += 27 + segments + body;
    }
    let is = |p: &[u8]| codecs.iter().any(|c| c.starts_with(p));
    if codecs.is_empty() {
        return reject(
            "corrupt",
            "the OGG file has no stream header on its first page",
        );
    }
    if is(b"OpusHead") {
        Ok(Ok("audio/ogg"))
    } else if is(b"\x01vorbis") {
        reject(
            "vorbis_not_supported",
            "OGG audio must use the Opus codec, not Vorbis; re-encode it as Opus",
        )
    } else {
        reject("unsupported_codec", "OGG audio must use the Opus codec")
    }
}
