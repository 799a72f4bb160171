//! Real files written by phones' and desktops' tools (`tests/fixtures/media`, see its
//! README for where each comes from): each is judged by the verdict AND the reason code a
//! person would expect, and so are the ways real files get damaged or dressed up in transit.

use super::*;
use crate::domain::media::media_type;

const DOC: &str = "application/msword";
const XLS: &str = "application/vnd.ms-excel";
const PPT: &str = "application/vnd.ms-powerpoint";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

/// Valid files, as the sender declares them.
pub(crate) const VALID: &[(&str, &str)] = &[
    ("camera-canon-exif.jpg", "image/jpeg"),
    ("camera-sony-exif.jpg", "image/jpeg"),
    ("photo-baseline.jpg", "image/jpeg"),
    ("photo-progressive.jpg", "image/jpeg"),
    ("screenshot.png", "image/png"),
    ("sticker-static.webp", "image/webp"),
    ("sticker-lossless.webp", "image/webp"),
    ("sticker-animated.webp", "image/webp"),
    ("video-moov-at-end.mp4", "video/mp4"),
    ("video-faststart.mp4", "video/mp4"),
    ("video-fragmented.mp4", "video/mp4"),
    ("video-no-audio.mp4", "video/mp4"),
    ("video-quicktime.mp4", "video/mp4"),
    ("video.3gp", "video/3gpp"),
    ("audio.m4a", "audio/mp4"),
    ("audio-aac.3gp", "audio/3gpp"),
    ("audio-amr-nb.3gp", "audio/3gpp"),
    ("audio.aac", "audio/aac"),
    ("audio-nb.amr", "audio/amr"),
    ("audio-opus.ogg", "audio/ogg"),
    ("audio-opusenc.opus", "audio/ogg"),
    ("audio-ffmpeg-id3.mp3", "audio/mpeg"),
    ("audio-id3v24.mp3", "audio/mpeg"),
    ("audio-no-id3.mp3", "audio/mpeg"),
    ("audio-lame-vbr-xing.mp3", "audio/mpeg"),
    ("audio-lame-cover-art.mp3", "audio/mpeg"),
    ("notes.pdf", "application/pdf"),
    ("notes-linearized.pdf", "application/pdf"),
    ("notes.doc", DOC),
    ("olefile-word.doc", DOC),
    ("sheet.xls", XLS),
    ("slides.ppt", PPT),
    ("notes.docx", DOCX),
    ("word-blank.docx", DOCX),
    ("sheet.xlsx", XLSX),
    ("slides.pptx", PPTX),
    ("powerpoint-minimal.pptx", PPTX),
    ("text-utf8.txt", "text/plain"),
    ("text-utf8-bom.txt", "text/plain"),
    ("text-utf16-bom.txt", "text/plain"),
    ("text-cp1252.txt", "text/plain"),
];

/// Real files that must be refused, declared as a sender might, with the reason code.
pub(crate) const REFUSED: &[(&str, &str, &str)] = &[
    ("sticker-256.webp", "image/webp", "sticker_dimensions"),
    // An iPhone-style photo renamed .jpg, or sent as a video.
    ("photo.heic", "image/jpeg", "heic_not_supported"),
    ("photo.heic", "video/mp4", "heic_not_supported"),
    ("video-hevc.mp4", "video/mp4", "unsupported_codec"),
    ("audio-vorbis.ogg", "audio/ogg", "vorbis_not_supported"),
    ("binary.txt", "text/plain", "content_mismatch"),
    ("garbage.txt", "text/plain", "content_mismatch"),
    // Content that disagrees with its declaration, legacy Office among themselves too.
    ("notes.doc", XLS, "content_mismatch"),
    ("olefile-word.doc", PPT, "content_mismatch"),
    ("sheet.xls", DOC, "content_mismatch"),
    ("slides.ppt", XLS, "content_mismatch"),
    ("notes.docx", XLSX, "content_mismatch"),
    ("sheet.xlsx", PPTX, "content_mismatch"),
    ("notes.doc", DOCX, "content_mismatch"),
    ("notes.docx", DOC, "content_mismatch"),
    ("notes.pdf", DOC, "content_mismatch"),
    ("video.3gp", "video/mp4", "content_mismatch"),
    ("audio.m4a", "video/mp4", "content_mismatch"),
    ("video-faststart.mp4", "audio/mp4", "content_mismatch"),
    ("audio.aac", "audio/mpeg", "content_mismatch"),
    ("audio-no-id3.mp3", "audio/aac", "content_mismatch"),
    ("audio-opus.ogg", "audio/mpeg", "content_mismatch"),
    ("screenshot.png", "image/jpeg", "content_mismatch"),
    ("photo-baseline.jpg", "image/png", "content_mismatch"),
    ("notes.pdf", "text/plain", "content_mismatch"),
];

#[test]
fn text_that_happens_to_spell_a_box_name_is_text() {
    let note = b"Get free tickets at the door\r\n".to_vec();
    assert_eq!(verdict(note.clone(), "text/plain"), Ok("text/plain"));
    assert_eq!(verdict(note, "video/mp4"), Err("content_mismatch"));
}

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../tests/fixtures/media/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(bytes: Vec<u8>, declared: &str) -> Result<Inspection, Rejection> {
    let declared = media_type(declared).expect("known type");
    let mut reader = ChunkedReader::new(MemoryBlob(bytes));
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(inspect(&mut reader, declared, declared.kind.max_size()))
        .expect("no read error")
}

fn verdict(bytes: Vec<u8>, declared: &str) -> Result<&'static str, &'static str> {
    check(bytes, declared).map(|i| i.mime).map_err(|r| r.code)
}

#[test]
fn real_files_from_phones_and_tools_are_accepted_as_what_they_are() {
    let mut wrong = Vec::new();
    for (name, declared) in VALID {
        match check(fixture(name), declared) {
            Ok(i) if i.mime == *declared => {}
            other => wrong.push(format!("{name} as {declared}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn real_files_are_refused_with_the_right_reason() {
    let mut wrong = Vec::new();
    for (name, declared, code) in REFUSED {
        let got = verdict(fixture(name), declared);
        if got != Err(*code) {
            wrong.push(format!("{name} as {declared}: {got:?}, expected {code}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn stickers_from_cwebp_and_img2webp_report_their_size_and_animation() {
    let still = check(fixture("sticker-lossless.webp"), "image/webp").unwrap();
    let moving = check(fixture("sticker-animated.webp"), "image/webp").unwrap();
    assert_eq!(
        (still.width, still.height, still.animated),
        (Some(512), Some(512), false)
    );
    assert!(moving.animated);
}

#[test]
fn a_mismatch_names_what_the_file_really_is() {
    let word_as_excel = check(fixture("notes.doc"), XLS).unwrap_err();
    assert!(word_as_excel.reason.contains("Word"), "{word_as_excel:?}");
    let excel_as_word = check(fixture("sheet.xls"), DOC).unwrap_err();
    assert!(excel_as_word.reason.contains("Excel"), "{excel_as_word:?}");
}

fn cut(name: &str, keep: f64) -> Vec<u8> {
    let mut bytes = fixture(name);
    bytes.truncate((bytes.len() as f64 * keep) as usize);
    bytes
}

fn with_tail(name: &str, tail: &[u8]) -> Vec<u8> {
    [fixture(name), tail.to_vec()].concat()
}

fn with_head(head: &[u8], name: &str) -> Vec<u8> {
    [head.to_vec(), fixture(name)].concat()
}

#[test]
fn complete_files_with_bytes_around_them_are_never_called_cut_off() {
    let mp4 = fixture("video-faststart.mp4");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // Phones append data after a JPEG's end: maker trailers, motion-photo videos.
        (
            "camera jpeg with a maker trailer",
            with_tail("camera-canon-exif.jpg", b"\0\0SEFHSEFT\x01\x00"),
            "image/jpeg",
        ),
        (
            "jpeg with a motion-photo video after it",
            [fixture("photo-baseline.jpg"), mp4.clone()].concat(),
            "image/jpeg",
        ),
        (
            "jpeg with 200 KB after it",
            [fixture("photo-progressive.jpg"), vec![0x42; 200 * 1024]].concat(),
            "image/jpeg",
        ),
        (
            "jpeg with 3 MB after it",
            [fixture("camera-sony-exif.jpg"), vec![0x42; 3 * 1024 * 1024]].concat(),
            "image/jpeg",
        ),
        (
            "png with bytes after IEND",
            with_tail("screenshot.png", &[0u8; 300]),
            "image/png",
        ),
        (
            "png with 100 KB after IEND",
            with_tail("screenshot.png", &vec![7u8; 100 * 1024]),
            "image/png",
        ),
        (
            "pdf after a byte-order mark",
            with_head(b"\xEF\xBB\xBF", "notes.pdf"),
            "application/pdf",
        ),
        (
            "pdf after blank lines",
            with_head(b"\r\n\r\n  ", "notes.pdf"),
            "application/pdf",
        ),
        (
            "pdf with an incremental update",
            {
                let pdf = fixture("notes.pdf");
                let update = format!(
                    "\n99 0 obj\n<< /Producer (edit) >>\nendobj\nxref\n99 1\n{:010} 00000 n \ntrailer\n<< /Size 100 /Prev 0 >>\nstartxref\n{}\n%%EOF\n",
                    pdf.len() + 1,
                    pdf.len() + 40
                );
                [pdf, update.into_bytes()].concat()
            },
            "application/pdf",
        ),
        (
            "pdf with padding after %%EOF",
            with_tail("notes.pdf", &[0u8; 2048]),
            "application/pdf",
        ),
        (
            "mp4 with zero padding after its last box",
            with_tail("video-moov-at-end.mp4", &[0u8; 6]),
            "video/mp4",
        ),
        (
            "mp3 with junk before its first frame",
            with_head(&[0u8; 700], "audio-no-id3.mp3"),
            "audio/mpeg",
        ),
        (
            "aac after an id3 tag",
            [
                b"ID3\x04\x00\x00\x00\x00\x00\x0A".to_vec(),
                b"TIT2\x00\x00\x00\x00\x00\x00".to_vec(),
                fixture("audio.aac"),
            ]
            .concat(),
            "audio/aac",
        ),
    ];
    let mut wrong = Vec::new();
    for (label, bytes, declared) in cases {
        let got = verdict(bytes, declared);
        if got != Ok(declared) {
            wrong.push(format!("{label}: {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn real_files_cut_in_transit_are_called_cut_off() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("jpeg", cut("camera-canon-exif.jpg", 0.6), "image/jpeg"),
        (
            "progressive jpeg",
            cut("photo-progressive.jpg", 0.5),
            "image/jpeg",
        ),
        ("png", cut("screenshot.png", 0.7), "image/png"),
        ("webp", cut("sticker-static.webp", 0.5), "image/webp"),
        ("mp4", cut("video-moov-at-end.mp4", 0.5), "video/mp4"),
        (
            "mp4 faststart",
            cut("video-faststart.mp4", 0.9),
            "video/mp4",
        ),
        ("pdf", cut("notes.pdf", 0.5), "application/pdf"),
        ("docx", cut("notes.docx", 0.8), DOCX),
        ("doc", cut("notes.doc", 0.5), DOC),
        (
            "mp3 inside its cover art",
            cut("audio-lame-cover-art.mp3", 0.5),
            "audio/mpeg",
        ),
    ];
    let mut wrong = Vec::new();
    for (label, bytes, declared) in cases {
        let got = verdict(bytes, declared);
        if got != Err("truncated") {
            wrong.push(format!("{label}: {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_legacy_document_is_named_from_its_directory_not_read_whole() {
    let ppt = fixture("slides.ppt");
    let total = ppt.len() as u64;
    let mut reader = ChunkedReader::new(MemoryBlob(ppt));
    let declared = media_type(PPT).unwrap();
    let got = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(inspect(&mut reader, declared, declared.kind.max_size()))
        .unwrap();
    assert!(got.is_ok(), "{got:?}");
    assert!(
        reader.bytes_fetched < total / 2,
        "{} of {total}",
        reader.bytes_fetched
    );
}

#[test]
fn damaged_real_files_get_a_verdict_never_a_panic() {
    // Every file cut at many points and with bytes overwritten (a small xorshift, fixed
    // seed): each gets a verdict, valid or with a reason, and no read error.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (name, declared) in VALID {
        let original = fixture(name);
        let declared = media_type(declared).unwrap();
        for round in 0..40 {
            let mut bytes = original.clone();
            if round % 2 == 0 {
                bytes.truncate(next() as usize % original.len());
            } else {
                for _ in 0..1 + next() % 8 {
                    let at = next() as usize % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            let mut reader = ChunkedReader::new(MemoryBlob(bytes));
            let got = rt.block_on(inspect(&mut reader, declared, declared.kind.max_size()));
            match got {
                Ok(Ok(_)) => {}
                Ok(Err(r)) => assert!(!r.reason.is_empty(), "{name}: {r:?}"),
                Err(e) => panic!("{name} round {round}: {e}"),
            }
        }
    }
}
