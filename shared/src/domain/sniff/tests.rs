//! Small files built byte by byte, and hostile variants of them (real files from real
//! tools are in `corpus_tests`).

use super::*;
use crate::domain::media::media_type;

// ---------- builders ----------

fn png(extra_tail: &[u8]) -> Vec<u8> {
    let mut f = b"\x89PNG\r\n\x1a\n".to_vec();
    f.extend([0, 0, 0, 13]);
    f.extend(b"IHDR");
    f.extend(64u32.to_be_bytes());
    f.extend(48u32.to_be_bytes());
    f.extend([8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    f.extend([0, 0, 0, 4]);
    f.extend(b"IDAT");
    f.extend([0x78, 0x9c, 0x63, 0x00, 0xde, 0xad, 0xbe, 0xef]);
    f.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    f.extend_from_slice(extra_tail);
    f
}

fn jpeg() -> Vec<u8> {
    let mut f = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    f.extend(b"JFIF\0");
    f.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
    f.extend([0xFF, 0xDA, 0x00, 0x08, 1, 2, 3, 4, 5, 6]);
    f.extend(vec![0x55; 200]);
    f.extend([0xFF, 0xD9]);
    f
}

fn webp_vp8x(w: u32, h: u32, animated: bool, pad: usize) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    body.extend(b"VP8X");
    body.extend(10u32.to_le_bytes());
    body.push(if animated { 0x02 } else { 0 });
    body.extend([0, 0, 0]);
    body.extend(&(w - 1).to_le_bytes()[..3]);
    body.extend(&(h - 1).to_le_bytes()[..3]);
    body.extend(vec![0u8; pad]);
    let mut f = b"RIFF".to_vec();
    f.extend((body.len() as u32).to_le_bytes());
    f.extend(body);
    f
}

fn webp_vp8(w: u16, h: u16) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    body.extend(b"VP8 ");
    body.extend(18u32.to_le_bytes());
    body.extend([0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a]);
    body.extend(w.to_le_bytes());
    body.extend(h.to_le_bytes());
    body.extend([0u8; 8]);
    let mut f = b"RIFF".to_vec();
    f.extend((body.len() as u32).to_le_bytes());
    f.extend(body);
    f
}

fn ogg(first_packet: &[u8]) -> Vec<u8> {
    let mut f = b"OggS".to_vec();
    f.extend([0, 0x02]);
    f.extend([0u8; 8]);
    f.extend(1u32.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.extend(0u32.to_le_bytes());
    f.push(1);
    f.push(first_packet.len() as u8);
    f.extend_from_slice(first_packet);
    f
}

fn opus_head() -> Vec<u8> {
    let mut p = b"OpusHead".to_vec();
    p.extend([1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    p
}

fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend(kind);
    b.extend_from_slice(payload);
    b
}

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let mut p = major.to_vec();
    p.extend(0u32.to_be_bytes());
    for c in compatible {
        p.extend(*c);
    }
    boxed(b"ftyp", &p)
}

fn trak(handler: &[u8; 4], codec: &[u8; 4]) -> Vec<u8> {
    let mut hdlr = vec![0u8; 8];
    hdlr.extend(handler);
    hdlr.extend([0u8; 13]);
    let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend(boxed(codec, &[0u8; 28]));
    let stbl = boxed(b"stbl", &boxed(b"stsd", &stsd));
    let minf = boxed(b"minf", &stbl);
    let mdia = boxed(b"mdia", &[boxed(b"hdlr", &hdlr), minf].concat());
    boxed(b"trak", &mdia)
}

fn mp4(brand: &[u8; 4], tracks: &[(&[u8; 4], &[u8; 4])], moov_first: bool) -> Vec<u8> {
    let mut moov_payload = boxed(b"mvhd", &[0u8; 100]);
    for (h, c) in tracks {
        moov_payload.extend(trak(h, c));
    }
    let moov = boxed(b"moov", &moov_payload);
    let mdat = boxed(b"mdat", &vec![0xAB; 4096]);
    let head = ftyp(brand, &[brand, b"isom"]);
    if moov_first {
        [head, moov, mdat].concat()
    } else {
        [head, mdat, moov].concat()
    }
}

struct Entry<'a> {
    name: &'a str,
    compressed: u32,
    uncompressed: u32,
}

fn zip_entries(entries: &[Entry]) -> Vec<u8> {
    let mut f = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = f.len() as u32;
        let data = vec![b'x'; e.compressed as usize];
        f.extend(b"PK\x03\x04");
        f.extend([20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        f.extend(0u32.to_le_bytes());
        f.extend(e.compressed.to_le_bytes());
        f.extend(e.uncompressed.to_le_bytes());
        f.extend((e.name.len() as u16).to_le_bytes());
        f.extend(0u16.to_le_bytes());
        f.extend(e.name.as_bytes());
        f.extend(&data);
        central.extend([b'P', b'K', 1, 2]);
        central.extend([20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0]);
        central.extend(0u32.to_le_bytes());
        central.extend(e.compressed.to_le_bytes());
        central.extend(e.uncompressed.to_le_bytes());
        central.extend((e.name.len() as u16).to_le_bytes());
        central.extend([0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend(0u32.to_le_bytes());
        central.extend(offset.to_le_bytes());
        central.extend(e.name.as_bytes());
    }
    let cd_offset = f.len() as u32;
    f.extend(&central);
    f.extend([b'P', b'K', 5, 6, 0, 0, 0, 0]);
    f.extend((entries.len() as u16).to_le_bytes());
    f.extend((entries.len() as u16).to_le_bytes());
    f.extend((central.len() as u32).to_le_bytes());
    f.extend(cd_offset.to_le_bytes());
    f.extend(0u16.to_le_bytes());
    f
}

fn office(main: &str, extra: &[&str]) -> Vec<u8> {
    let mut names = vec!["[Content_Types].xml", "_rels/.rels", main];
    names.extend_from_slice(extra);
    let entries: Vec<Entry> = names
        .iter()
        .map(|n| Entry {
            name: n,
            compressed: 200,
            uncompressed: 900,
        })
        .collect();
    zip_entries(&entries)
}

fn pdf(with_eof: bool) -> Vec<u8> {
    let mut f =
        b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n".to_vec();
    if with_eof {
        f.extend(b"%%EOF\n");
    }
    f
}

fn ole2() -> Vec<u8> {
    let mut f = vec![0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
    f.extend(vec![0u8; 1024]);
    f
}

fn mp3_frames() -> Vec<u8> {
    let mut f = Vec::new();
    for _ in 0..4 {
        f.extend([0xFF, 0xFB, 0x90, 0x64]);
        f.extend(vec![0u8; 413]);
    }
    f
}

fn id3_mp3() -> Vec<u8> {
    let mut f = b"ID3".to_vec();
    f.extend([4, 0, 0, 0, 0, 0, 10]);
    f.extend(vec![0u8; 10]);
    f.extend(mp3_frames());
    f
}

fn adts() -> Vec<u8> {
    let mut f = vec![0xFF, 0xF1, 0x50, 0x80, 0x02, 0x1F, 0xFC];
    f.extend(vec![0u8; 300]);
    f
}

// ---------- harness ----------

fn mime(m: &str) -> &'static MediaType {
    media_type(m).expect("known type")
}

fn check(bytes: Vec<u8>, declared: &str) -> Result<Inspection, Rejection> {
    let mut reader = ChunkedReader::new(MemoryBlob(bytes));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(inspect(
        &mut reader,
        mime(declared),
        mime(declared).kind.max_size(),
    ))
    .expect("no read error")
}

fn rejected(bytes: Vec<u8>, declared: &str) -> &'static str {
    match check(bytes, declared) {
        Ok(i) => panic!("accepted as {} but should be rejected", i.mime),
        Err(r) => {
            assert!(!r.reason.is_empty());
            r.code
        }
    }
}

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

// ---------- valid files ----------

#[test]
fn real_small_files_of_every_accepted_type_pass() {
    let valid: Vec<(Vec<u8>, &str)> = vec![
        (png(&[]), "image/png"),
        (jpeg(), "image/jpeg"),
        (webp_vp8x(512, 512, false, 64), "image/webp"),
        (webp_vp8x(512, 512, true, 200 * 1024), "image/webp"),
        (webp_vp8(512, 512), "image/webp"),
        (ogg(&opus_head()), "audio/ogg"),
        (mp3_frames(), "audio/mpeg"),
        (id3_mp3(), "audio/mpeg"),
        (adts(), "audio/aac"),
        (
            b"ADIF\x00\x00\x00\x40\x00\x10\x00\x00\x00\x00".to_vec(),
            "audio/aac",
        ),
        (b"#!AMR\n\x3c\x55\x00".to_vec(), "audio/amr"),
        (b"#!AMR-WB\n\x24\x55\x00\x11".to_vec(), "audio/amr"),
        (mp4(b"M4A ", &[(b"soun", b"mp4a")], true), "audio/mp4"),
        (mp4(b"3gp4", &[(b"soun", b"samr")], true), "audio/3gpp"),
        (
            mp4(b"isom", &[(b"vide", b"avc1"), (b"soun", b"mp4a")], true),
            "video/mp4",
        ),
        (
            mp4(b"isom", &[(b"vide", b"avc1"), (b"soun", b"mp4a")], false),
            "video/mp4",
        ),
        (mp4(b"mp42", &[(b"vide", b"avc1")], true), "video/mp4"),
        (
            mp4(b"3gp5", &[(b"vide", b"avc1"), (b"soun", b"mp4a")], true),
            "video/3gpp",
        ),
        (pdf(true), "application/pdf"),
        (office("word/document.xml", &["word/styles.xml"]), DOCX),
        (
            office("xl/workbook.xml", &["xl/worksheets/sheet1.xml"]),
            XLSX,
        ),
        (
            office("ppt/presentation.xml", &["ppt/slides/slide1.xml"]),
            PPTX,
        ),
        (
            "Hello, 世界 — plain text\n".as_bytes().to_vec(),
            "text/plain",
        ),
    ];
    for (bytes, declared) in valid {
        let got = check(bytes, declared).unwrap_or_else(|r| panic!("{declared}: {r:?}"));
        assert_eq!(got.mime, declared);
    }
}

#[test]
fn stickers_report_size_and_animation() {
    let i = check(webp_vp8x(512, 512, true, 1000), "image/webp").unwrap();
    assert_eq!(
        (i.width, i.height, i.animated, i.kind),
        (Some(512), Some(512), true, MediaKind::Sticker)
    );
}

#[test]
fn deciding_an_mp4_with_moov_at_the_end_reads_headers_not_the_media() {
    // 12 MB of media data between ftyp and moov.
    let mut moov_payload = boxed(b"mvhd", &[0u8; 100]);
    moov_payload.extend(trak(b"vide", b"avc1"));
    moov_payload.extend(trak(b"soun", b"mp4a"));
    let mut f = ftyp(b"isom", &[b"isom"]);
    f.extend(boxed(b"mdat", &vec![0u8; 12 * 1024 * 1024]));
    f.extend(boxed(b"moov", &moov_payload));
    let total = f.len() as u64;
    let mut reader = ChunkedReader::new(MemoryBlob(f));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let verdict = rt
        .block_on(inspect(&mut reader, mime("video/mp4"), 16 * 1024 * 1024))
        .unwrap();
    assert!(verdict.is_ok());
    assert!(
        reader.bytes_fetched <= 4 * CHUNK,
        "fetched {} of {total}",
        reader.bytes_fetched
    );
}

// ---------- hostile files: each rejected with its specific reason ----------

#[test]
fn hostile_files_are_rejected_with_their_reason() {
    let mut huge_entries = Vec::new();
    let names: Vec<String> = (0..5_001).map(|i| format!("f{i}.xml")).collect();
    for n in &names {
        huge_entries.push(Entry {
            name: n,
            compressed: 0,
            uncompressed: 0,
        });
    }
    let many_entries = zip_entries(&huge_entries);
    let big_names: Vec<String> = (0..60).map(|i| format!("xl/media/image{i}.png")).collect();
    let mut expanding = vec![
        Entry {
            name: "[Content_Types].xml",
            compressed: 10,
            uncompressed: 10,
        },
        Entry {
            name: "xl/workbook.xml",
            compressed: 10,
            uncompressed: 10,
        },
    ];
    for n in &big_names {
        expanding.push(Entry {
            name: n,
            compressed: 40_000,
            uncompressed: 2_000_000,
        });
    }
    let expanding = zip_entries(&expanding);
    let mut lying_cd = office("word/document.xml", &[]);
    let n = lying_cd.len();
    lying_cd[n - 6..n - 2].copy_from_slice(&u32::MAX.wrapping_sub(5).to_le_bytes());

    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "png declared jpeg",
            png(&[]),
            "image/jpeg",
            "content_mismatch",
        ),
        ("jpeg declared png", jpeg(), "image/png", "content_mismatch"),
        (
            "png without IEND",
            png(&[])[..40].to_vec(),
            "image/png",
            "truncated",
        ),
        (
            "jpeg without EOI",
            jpeg()[..100].to_vec(),
            "image/jpeg",
            "truncated",
        ),
        (
            "png with zip appended",
            png(&office("word/document.xml", &[])),
            "image/png",
            "polyglot",
        ),
        (
            "jpeg with zip appended",
            [jpeg(), office("word/document.xml", &[])].concat(),
            "image/jpeg",
            "polyglot",
        ),
        (
            "mp4 with zip appended",
            [
                mp4(b"isom", &[(b"vide", b"avc1")], true),
                zip_entries(&[Entry {
                    name: "a",
                    compressed: 1,
                    uncompressed: 1,
                }]),
            ]
            .concat(),
            "video/mp4",
            "polyglot",
        ),
        (
            "png header without IHDR",
            {
                let mut p = png(&[]);
                p[12..16].copy_from_slice(b"XXXX");
                p
            },
            "image/png",
            "corrupt",
        ),
        (
            "ogg vorbis",
            ogg(b"\x01vorbis\x00\x00\x00\x00\x02\x44\xac"),
            "audio/ogg",
            "vorbis_not_supported",
        ),
        (
            "ogg flac",
            ogg(b"\x7fFLAC\x01\x00"),
            "audio/ogg",
            "unsupported_codec",
        ),
        (
            "ogg whose first page starts no stream",
            {
                let mut o = ogg(&opus_head());
                o[5] = 0;
                o
            },
            "audio/ogg",
            "corrupt",
        ),
        (
            "ogg speex",
            ogg(b"Speex   1.2"),
            "audio/ogg",
            "unsupported_codec",
        ),
        (
            "mp4 with hevc",
            mp4(b"isom", &[(b"vide", b"hvc1"), (b"soun", b"mp4a")], true),
            "video/mp4",
            "unsupported_codec",
        ),
        (
            "mp4 with hev1",
            mp4(b"isom", &[(b"vide", b"hev1")], true),
            "video/mp4",
            "unsupported_codec",
        ),
        (
            "mp4 with vp9",
            mp4(b"isom", &[(b"vide", b"vp09")], true),
            "video/mp4",
            "unsupported_codec",
        ),
        (
            "mp4 encrypted",
            mp4(b"isom", &[(b"vide", b"encv")], true),
            "video/mp4",
            "unsupported_codec",
        ),
        (
            "mp4 with mp3 sound",
            mp4(b"isom", &[(b"vide", b"avc1"), (b"soun", b".mp3")], true),
            "video/mp4",
            "unsupported_codec",
        ),
        (
            "mp4 with two audio tracks",
            mp4(
                b"isom",
                &[(b"vide", b"avc1"), (b"soun", b"mp4a"), (b"soun", b"mp4a")],
                true,
            ),
            "video/mp4",
            "too_many_audio_tracks",
        ),
        (
            "mp4 cut inside mdat",
            mp4(b"isom", &[(b"vide", b"avc1")], false)[..2000].to_vec(),
            "video/mp4",
            "truncated",
        ),
        (
            "mp4 without moov",
            [ftyp(b"isom", &[b"isom"]), boxed(b"mdat", &[0; 64])].concat(),
            "video/mp4",
            "corrupt",
        ),
        (
            "mp4 box smaller than its header",
            [
                ftyp(b"isom", &[b"isom"]),
                vec![0, 0, 0, 4, b'f', b'r', b'e', b'e'],
            ]
            .concat(),
            "video/mp4",
            "corrupt",
        ),
        (
            "heic as mp4",
            mp4(b"heic", &[(b"vide", b"hvc1")], true),
            "video/mp4",
            "heic_not_supported",
        ),
        (
            "heif image as video",
            [ftyp(b"mif1", &[b"heic"]), boxed(b"meta", &[0; 32])].concat(),
            "video/mp4",
            "heic_not_supported",
        ),
        (
            "m4a declared video",
            mp4(b"M4A ", &[(b"soun", b"mp4a")], true),
            "video/mp4",
            "content_mismatch",
        ),
        (
            "video declared m4a",
            mp4(b"isom", &[(b"vide", b"avc1")], true),
            "audio/mp4",
            "content_mismatch",
        ),
        (
            "3gp video declared mp4",
            mp4(b"3gp5", &[(b"vide", b"avc1")], true),
            "video/mp4",
            "content_mismatch",
        ),
        (
            "m4a with amr outside 3gp",
            mp4(b"M4A ", &[(b"soun", b"samr")], true),
            "audio/mp4",
            "unsupported_codec",
        ),
        (
            "m4a with no tracks",
            mp4(b"M4A ", &[], true),
            "audio/mp4",
            "corrupt",
        ),
        (
            "sticker 256x256",
            webp_vp8x(256, 256, false, 10),
            "image/webp",
            "sticker_dimensions",
        ),
        (
            "sticker 512x300 vp8",
            webp_vp8(512, 300),
            "image/webp",
            "sticker_dimensions",
        ),
        (
            "static sticker of 150 KB",
            webp_vp8x(512, 512, false, 150 * 1024),
            "image/webp",
            "too_large",
        ),
        (
            "animated sticker over 500 KB",
            webp_vp8x(512, 512, true, 520 * 1024),
            "image/webp",
            "too_large",
        ),
        (
            "webp declared png",
            webp_vp8x(512, 512, false, 10),
            "image/png",
            "content_mismatch",
        ),
        (
            "webp cut short",
            webp_vp8x(512, 512, false, 4000)[..600].to_vec(),
            "image/webp",
            "truncated",
        ),
        (
            "webp with an unknown first chunk",
            {
                let mut w = webp_vp8x(512, 512, false, 10);
                w[12..16].copy_from_slice(b"ABCD");
                w
            },
            "image/webp",
            "corrupt",
        ),
        (
            "zip bomb entry",
            zip_entries(&[
                Entry {
                    name: "[Content_Types].xml",
                    compressed: 10,
                    uncompressed: 10,
                },
                Entry {
                    name: "word/document.xml",
                    compressed: 1000,
                    uncompressed: 1_000_000_000,
                },
            ]),
            DOCX,
            "zip_bomb",
        ),
        ("zip with 5001 entries", many_entries, DOCX, "zip_bomb"),
        ("zip expanding past 100 MB", expanding, XLSX, "zip_bomb"),
        (
            "docm with macros",
            office("word/document.xml", &["word/vbaProject.bin"]),
            DOCX,
            "macro_enabled",
        ),
        (
            "xlsm with macros",
            office("xl/workbook.xml", &["xl/vbaProject.bin"]),
            XLSX,
            "macro_enabled",
        ),
        (
            "pptm with vbaData",
            office("ppt/presentation.xml", &["ppt/vbaData.xml"]),
            PPTX,
            "macro_enabled",
        ),
        (
            "zip slip ../",
            office("word/document.xml", &["../../etc/cron.d/evil"]),
            DOCX,
            "path_traversal",
        ),
        (
            "zip absolute path",
            office("word/document.xml", &["/etc/passwd"]),
            DOCX,
            "path_traversal",
        ),
        (
            "zip backslash path",
            office("word/document.xml", &["..\\evil.dll"]),
            DOCX,
            "path_traversal",
        ),
        (
            "zip drive letter",
            office("word/document.xml", &["C:/Windows/evil.dll"]),
            DOCX,
            "path_traversal",
        ),
        (
            "plain zip as docx",
            zip_entries(&[Entry {
                name: "photo.jpg",
                compressed: 10,
                uncompressed: 10,
            }]),
            DOCX,
            "content_mismatch",
        ),
        (
            "xlsx declared docx",
            office("xl/workbook.xml", &[]),
            DOCX,
            "content_mismatch",
        ),
        (
            "zip without its directory",
            office("word/document.xml", &[])[..150].to_vec(),
            DOCX,
            "truncated",
        ),
        ("zip directory pointing outside", lying_cd, DOCX, "corrupt"),
        (
            "zip declared pdf",
            office("word/document.xml", &[]),
            "application/pdf",
            "content_mismatch",
        ),
        (
            "pdf without %%EOF",
            pdf(false),
            "application/pdf",
            "truncated",
        ),
        ("pdf declared docx", pdf(true), DOCX, "content_mismatch"),
        (
            "exe declared pdf",
            [b"MZ\x90\x00".to_vec(), vec![0u8; 500]].concat(),
            "application/pdf",
            "content_mismatch",
        ),
        (
            "elf declared doc",
            [b"\x7fELF".to_vec(), vec![0u8; 500]].concat(),
            "application/msword",
            "content_mismatch",
        ),
        (
            "binary declared txt",
            vec![0u8, 1, 2, 3, 0, 0],
            "text/plain",
            "content_mismatch",
        ),
        (
            "text with control bytes",
            vec![b'h', b'i', 0xC3, 0x28, 0x01, 0x02, b'!'],
            "text/plain",
            "content_mismatch",
        ),
        (
            "zip declared txt",
            office("word/document.xml", &[]),
            "text/plain",
            "content_mismatch",
        ),
        (
            "ole2 declared pdf",
            ole2(),
            "application/pdf",
            "content_mismatch",
        ),
        ("ole2 declared docx", ole2(), DOCX, "content_mismatch"),
        ("empty file", Vec::new(), "image/png", "empty_file"),
        (
            "6 MB png (declared smaller)",
            png(&vec![0u8; 6 * 1024 * 1024]),
            "image/png",
            "too_large",
        ),
        (
            "17 MB mp4",
            [
                mp4(b"isom", &[(b"vide", b"avc1")], true),
                vec![0u8; 17 * 1024 * 1024],
            ]
            .concat(),
            "video/mp4",
            "too_large",
        ),
        ("aac declared mp3", adts(), "audio/mpeg", "content_mismatch"),
        (
            "mp3 declared aac",
            mp3_frames(),
            "audio/aac",
            "content_mismatch",
        ),
        (
            "amr declared ogg",
            b"#!AMR\n\x3c".to_vec(),
            "audio/ogg",
            "content_mismatch",
        ),
        (
            "ogg opus declared mp3",
            ogg(&opus_head()),
            "audio/mpeg",
            "content_mismatch",
        ),
        (
            "id3 tag with garbage after",
            {
                let mut f = b"ID3".to_vec();
                f.extend([4, 0, 0, 0, 0, 0, 10]);
                f.extend(vec![0u8; 10]);
                f.extend(b"garbage-not-a-frame");
                f
            },
            "audio/mpeg",
            "corrupt",
        ),
        (
            "gif declared png",
            b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec(),
            "image/png",
            "content_mismatch",
        ),
        (
            "svg declared png",
            b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>".to_vec(),
            "image/png",
            "content_mismatch",
        ),
        (
            "html declared jpeg",
            b"<html><body>hi</body></html>".to_vec(),
            "image/jpeg",
            "content_mismatch",
        ),
        (
            "heic declared jpeg",
            mp4(b"heic", &[], true),
            "image/jpeg",
            "heic_not_supported",
        ),
        (
            "moov with a wrapping 64-bit box size",
            {
                let mut inner = boxed(b"free", &[]);
                inner.extend([0, 0, 0, 1]);
                inner.extend(b"trak");
                inner.extend((u64::MAX - 7).to_be_bytes());
                inner.extend([0u8; 16]);
                [ftyp(b"isom", &[b"isom"]), boxed(b"moov", &inner)].concat()
            },
            "video/mp4",
            "corrupt",
        ),
        (
            "text with a binary tail after 8 KB",
            [vec![b'a'; 70 * 1024], vec![0x7f, b'E', b'L', b'F', 0, 0]].concat(),
            "text/plain",
            "content_mismatch",
        ),
        (
            "pdf with a zip appended",
            [pdf(true), office("word/document.xml", &[])].concat(),
            "application/pdf",
            "polyglot",
        ),
        (
            "jpeg whose last 64 KB are zeros",
            [jpeg()[..100].to_vec(), vec![0u8; 70 * 1024]].concat(),
            "image/jpeg",
            "truncated",
        ),
    ];
    assert!(cases.len() >= 50, "{} hostile files", cases.len());
    for (label, bytes, declared, code) in cases {
        assert_eq!(rejected(bytes, declared), code, "{label}");
    }
}

// ---------- layouts real writers produce ----------

fn moov(tracks: &[(&[u8; 4], &[u8; 4])]) -> Vec<u8> {
    let mut payload = boxed(b"mvhd", &[0u8; 100]);
    for (h, c) in tracks {
        payload.extend(trak(h, c));
    }
    boxed(b"moov", &payload)
}

fn av() -> Vec<u8> {
    moov(&[(b"vide", b"avc1"), (b"soun", b"mp4a")])
}

/// An `mdat` with a 64-bit size, as recorders write for long takes.
fn mdat64(payload: usize) -> Vec<u8> {
    let mut b = vec![0, 0, 0, 1];
    b.extend(b"mdat");
    b.extend(((payload + 16) as u64).to_be_bytes());
    b.extend(vec![0x11; payload]);
    b
}

/// An ID3v2.4 tag with a footer (flag 0x10), `body` bytes of frames.
fn id3v24_with_footer(body: usize) -> Vec<u8> {
    let size = [
        ((body >> 21) & 0x7F) as u8,
        ((body >> 14) & 0x7F) as u8,
        ((body >> 7) & 0x7F) as u8,
        (body & 0x7F) as u8,
    ];
    let mut f = b"ID3\x04\x00\x10".to_vec();
    f.extend(size);
    f.extend(vec![0x20; body]);
    f.extend(b"3DI\x04\x00\x10");
    f.extend(size);
    f
}

/// A ZIP64 end (record, locator, saturated classic record) for an archive's directory.
fn as_zip64(zip: &[u8]) -> Vec<u8> {
    let eocd = zip.len() - 22;
    let entries = u64::from(le16(zip, eocd + 10).unwrap());
    let cd_size = u64::from(le32(zip, eocd + 12).unwrap());
    let cd_offset = u64::from(le32(zip, eocd + 16).unwrap());
    let mut f = zip[..eocd].to_vec();
    let record_at = f.len() as u64;
    f.extend(b"PK\x06\x06");
    f.extend(44u64.to_le_bytes());
    f.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend(entries.to_le_bytes());
    f.extend(entries.to_le_bytes());
    f.extend(cd_size.to_le_bytes());
    f.extend(cd_offset.to_le_bytes());
    f.extend(b"PK\x06\x07");
    f.extend(0u32.to_le_bytes());
    f.extend(record_at.to_le_bytes());
    f.extend(1u32.to_le_bytes());
    f.extend(b"PK\x05\x06\0\0\0\0");
    f.extend([0xFF; 12]);
    f.extend([0, 0]);
    f
}

#[test]
fn layouts_phones_and_recorders_write_are_accepted() {
    let ftyp_iso = ftyp(b"isom", &[b"isom", b"avc1"]);
    let valid: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "mp4 with a 64-bit mdat before moov",
            [ftyp_iso.clone(), mdat64(5000), av()].concat(),
            "video/mp4",
        ),
        (
            "mp4 whose last mdat runs to the end (size 0)",
            [
                ftyp_iso.clone(),
                av(),
                vec![0, 0, 0, 0],
                b"mdat".to_vec(),
                vec![1; 3000],
            ]
            .concat(),
            "video/mp4",
        ),
        (
            "mp4 with free, wide and uuid boxes",
            [
                ftyp_iso.clone(),
                boxed(b"free", &[0; 40]),
                boxed(b"wide", &[]),
                boxed(b"uuid", &[7; 24]),
                boxed(b"mdat", &[1; 900]),
                av(),
            ]
            .concat(),
            "video/mp4",
        ),
        (
            "quicktime-era mp4 without ftyp",
            [boxed(b"wide", &[]), boxed(b"mdat", &[1; 900]), av()].concat(),
            "video/mp4",
        ),
        (
            "mp4 brand listing 3gp as compatible, declared 3gp",
            [
                ftyp(b"mp42", &[b"isom", b"3gp4"]),
                av(),
                boxed(b"mdat", &[1; 100]),
            ]
            .concat(),
            "video/3gpp",
        ),
        (
            "mp4 brand listing 3gp as compatible, declared mp4",
            [
                ftyp(b"mp42", &[b"isom", b"3gp4"]),
                av(),
                boxed(b"mdat", &[1; 100]),
            ]
            .concat(),
            "video/mp4",
        ),
        (
            "fragmented mp4 with 600 fragments",
            {
                let mut f = [ftyp_iso.clone(), av()].concat();
                for _ in 0..600 {
                    f.extend(boxed(b"moof", &[0; 24]));
                    f.extend(boxed(b"mdat", &[1; 64]));
                }
                f
            },
            "video/mp4",
        ),
        (
            "mp4 with timecode and metadata tracks (iPhone)",
            [
                ftyp(b"qt  ", &[b"qt  "]),
                moov(&[
                    (b"vide", b"avc1"),
                    (b"soun", b"mp4a"),
                    (b"tmcd", b"tmcd"),
                    (b"meta", b"mebx"),
                ]),
                boxed(b"mdat", &[1; 100]),
            ]
            .concat(),
            "video/mp4",
        ),
        (
            "mp3 after an ID3v2.4 tag with a footer",
            [id3v24_with_footer(300), mp3_frames()].concat(),
            "audio/mpeg",
        ),
        (
            "mp3 after an ID3 tag larger than the first read (cover art)",
            [id3v24_with_footer(200 * 1024), mp3_frames()].concat(),
            "audio/mpeg",
        ),
        (
            "mp3 after two ID3 tags and zero padding",
            [
                id3_mp3()[..20].to_vec(),
                id3_mp3()[..20].to_vec(),
                vec![0; 512],
                mp3_frames(),
            ]
            .concat(),
            "audio/mpeg",
        ),
        (
            "ogg opus after a skeleton stream",
            {
                let mut skeleton = ogg(b"fishead\0\x03\x00\x00\x00");
                skeleton.extend(ogg(&opus_head()));
                skeleton
            },
            "audio/ogg",
        ),
        (
            "docx with ZIP64 end records",
            as_zip64(&office("word/document.xml", &[])),
            DOCX,
        ),
        (
            "docx with upper-case part names, content types last",
            office("WORD/DOCUMENT.XML", &["[CONTENT_TYPES].XML"]),
            DOCX,
        ),
    ];
    let mut wrong = Vec::new();
    for (label, bytes, declared) in valid {
        match check(bytes, declared) {
            Ok(i) if i.mime == declared => {}
            other => wrong.push(format!("{label}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_legacy_office_file_is_named_by_its_root_streams() {
    let doc = super::corpus_tests::fixture("notes.doc");
    let renamed = |to: &str| {
        let from: Vec<u8> = "WordDocument"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let at = doc
            .windows(from.len())
            .position(|w| w == from.as_slice())
            .expect("the Word stream's directory entry");
        let mut f = doc.clone();
        let mut name: Vec<u8> = to.encode_utf16().flat_map(u16::to_le_bytes).collect();
        name.resize(64, 0);
        f[at..at + 64].copy_from_slice(&name);
        f[at + 64..at + 66].copy_from_slice(&((to.len() as u16 + 1) * 2).to_le_bytes());
        f
    };
    assert_eq!(
        check(renamed("Workbook"), "application/vnd.ms-excel").map(|i| i.mime),
        Ok("application/vnd.ms-excel")
    );
    assert_eq!(
        rejected(renamed("EncryptedPackage"), DOCX),
        "content_mismatch"
    );
    assert_eq!(
        rejected(renamed("EncryptedPackage"), "application/msword"),
        "encrypted"
    );
    assert_eq!(
        rejected(renamed("VisioDocument"), "application/msword"),
        "content_mismatch"
    );
    // A directory whose chain loops on itself.
    let mut looping = doc.clone();
    let first_dir = le32(&doc, 0x30).unwrap();
    let fat0 = le32(&doc, 0x4C).unwrap();
    let slot = ((fat0 as usize + 1) << 9) + first_dir as usize * 4;
    looping[slot..slot + 4].copy_from_slice(&first_dir.to_le_bytes());
    assert_eq!(rejected(looping.clone(), "application/msword"), "corrupt");
    // ... and costs a few reads, not one per lap.
    let mut reader = ChunkedReader::new(MemoryBlob(looping));
    let declared = mime("application/msword");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(inspect(&mut reader, declared, declared.kind.max_size()))
        .unwrap()
        .unwrap_err();
    assert!(reader.reads <= 4, "{} reads", reader.reads);
}
