//! Media files for measurements and tests: valid content of a given size, built in memory.

/// A valid 64×48 PNG whose IDAT carries `padding` more bytes.
pub fn png(padding: usize) -> Vec<u8> {
    let mut f = b"\x89PNG\r\n\x1a\n".to_vec();
    f.extend([0, 0, 0, 13]);
    f.extend(b"IHDR");
    f.extend(64u32.to_be_bytes());
    f.extend(48u32.to_be_bytes());
    f.extend([8, 2, 0, 0, 0, 0x12, 0x34, 0x56, 0x78]);
    f.extend(((padding + 4) as u32).to_be_bytes());
    f.extend(b"IDAT");
    f.extend([0x78, 0x9c, 0x63, 0x00]);
    f.extend(vec![0u8; padding]);
    f.extend([0xde, 0xad, 0xbe, 0xef]);
    f.extend([0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    f
}

fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend(kind);
    b.extend_from_slice(payload);
    b
}

fn trak(handler: &[u8; 4], codec: &[u8; 4]) -> Vec<u8> {
    let mut hdlr = vec![0u8; 8];
    hdlr.extend(handler);
    hdlr.extend([0u8; 13]);
    let mut stsd = vec![0, 0, 0, 0, 0, 0, 0, 1];
    stsd.extend(boxed(codec, &[0u8; 78]));
    let stbl = boxed(
        b"stbl",
        &[
            boxed(b"stsd", &stsd),
            boxed(b"stts", &[0u8; 8]),
            boxed(b"stsz", &vec![0u8; 40_000]),
        ]
        .concat(),
    );
    let mdia = boxed(
        b"mdia",
        &[boxed(b"hdlr", &hdlr), boxed(b"minf", &stbl)].concat(),
    );
    boxed(b"trak", &mdia)
}

/// An MP4 of `size` bytes: ftyp, a large mdat, then moov (H.264 + AAC).
pub fn mp4(size: usize) -> Vec<u8> {
    let moov = boxed(
        b"moov",
        &[
            boxed(b"mvhd", &[0u8; 100]),
            trak(b"vide", b"avc1"),
            trak(b"soun", b"mp4a"),
        ]
        .concat(),
    );
    let mut ftyp = b"isom".to_vec();
    ftyp.extend(0u32.to_be_bytes());
    ftyp.extend(b"isomavc1mp41");
    let ftyp = boxed(b"ftyp", &ftyp);
    let mdat_payload = size - ftyp.len() - moov.len() - 8;
    let mut f = ftyp;
    f.extend(((mdat_payload + 8) as u32).to_be_bytes());
    f.extend(b"mdat");
    f.resize(f.len() + mdat_payload, 0x5A);
    f.extend(moov);
    f
}
