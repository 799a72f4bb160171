//! Office documents: OOXML (a ZIP's central directory, never extracted) and the legacy
//! formats (an OLE2 compound file's directory: which streams it holds).

use super::{Blob, ChunkedReader, MAX_INDEX, Verdict, le16, le32, le64, reject};

/// Most entries in an Office document.
const MAX_ZIP_ENTRIES: usize = 5_000;
/// Most bytes an Office document may expand to.
const MAX_ZIP_UNCOMPRESSED: u64 = 100 * 1024 * 1024;
/// Highest compression ratio of a large entry (zip bombs compress zeros ~1000:1).
const MAX_ZIP_RATIO: u64 = 100;

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";

/// Where a ZIP's central directory is, from its end records (ZIP64 ones when the classic
/// record is saturated): `(entries, size, offset)`.
async fn directory<B: Blob>(reader: &mut ChunkedReader<B>, size: u64) -> Verdict<(u64, u64, u64)> {
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
    if entries != 0xFFFF && cd_size != u32::MAX && cd_offset != u32::MAX {
        return Ok(Ok((
            u64::from(entries),
            u64::from(cd_size),
            u64::from(cd_offset),
        )));
    }
    // ZIP64: a locator right before the classic record points at the ZIP64 record.
    let locator = eocd
        .checked_sub(20)
        .and_then(|at| tail.get(at..eocd))
        .filter(|l| l.starts_with(b"PK\x06\x07"));
    let Some(record_at) = locator.and_then(|l| le64(l, 8)).filter(|at| *at < size) else {
        return reject("corrupt", "the archive's ZIP64 directory record is missing");
    };
    let record = reader.peek(record_at, 56).await?;
    if !record.starts_with(b"PK\x06\x06") {
        return reject("corrupt", "the archive's ZIP64 directory record is damaged");
    }
    match (le64(&record, 32), le64(&record, 40), le64(&record, 48)) {
        (Some(n), Some(s), Some(o)) => Ok(Ok((n, s, o))),
        _ => reject("corrupt", "the archive's ZIP64 directory record is damaged"),
    }
}

/// Whether bytes hold a ZIP end record with its central directory right before it (what a
/// ZIP reader finds in a file with an archive appended; a stray signature in compressed
/// data has no directory).
pub(super) fn ends_with_zip(tail: &[u8]) -> bool {
    tail.windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"PK\x05\x06")
        .any(|(at, _)| {
            let cd_size = le32(tail, at + 12).map_or(0, |s| s as usize);
            match at.checked_sub(cd_size) {
                Some(cd) => cd_size == 0 || tail[cd..].starts_with(b"PK\x01\x02"),
                // The directory starts before these bytes: assume the worst.
                None => true,
            }
        })
}

/// The ZIP64 extended-information values of a directory entry, in their order.
fn zip64_extra(extra: &[u8]) -> Vec<u64> {
    let mut at = 0;
    while let (Some(id), Some(len)) = (le16(extra, at), le16(extra, at + 2)) {
        let body = extra
            .get(at + 4..at + 4 + usize::from(len))
            .unwrap_or_default();
        if id == 0x0001 {
            return body.chunks_exact(8).filter_map(|c| le64(c, 0)).collect();
        }
        at += 4 + usize::from(len);
    }
    Vec::new()
}

/// Walks a ZIP's central directory (never extracting) and names the Office type.
pub(super) async fn zip<B: Blob>(
    reader: &mut ChunkedReader<B>,
    size: u64,
) -> Verdict<&'static str> {
    let (entries, cd_size, cd_offset) = match directory(reader, size).await? {
        Ok(d) => d,
        Err(r) => return Ok(Err(r)),
    };
    if entries > MAX_ZIP_ENTRIES as u64 {
        return reject(
            "zip_bomb",
            format!("the archive has {entries} entries; at most {MAX_ZIP_ENTRIES} are accepted"),
        );
    }
    if cd_size > MAX_INDEX || cd_offset.saturating_add(cd_size) > size {
        return reject("corrupt", "the archive directory points outside the file");
    }
    let cd = reader.read(cd_offset, cd_size).await?;
    let damaged = || reject("corrupt", "the archive directory is damaged");
    let mut at = 0usize;
    let mut names = Vec::new();
    let mut total: u64 = 0;
    for _ in 0..entries {
        if cd.get(at..at + 4) != Some(b"PK\x01\x02") {
            return damaged();
        }
        let (Some(compressed), Some(uncompressed), Some(n), Some(x), Some(c), Some(local)) = (
            le32(&cd, at + 20),
            le32(&cd, at + 24),
            le16(&cd, at + 28),
            le16(&cd, at + 30),
            le16(&cd, at + 32),
            le32(&cd, at + 42),
        ) else {
            return damaged();
        };
        let name_at = at + 46;
        let extra_at = name_at + usize::from(n);
        let (Some(name), Some(extra)) = (
            cd.get(name_at..extra_at),
            cd.get(extra_at..extra_at + usize::from(x)),
        ) else {
            return damaged();
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
        // Saturated sizes and offsets live in the ZIP64 extra field, in this order.
        let mut wide = zip64_extra(extra).into_iter();
        let mut widen = |v: u32| {
            if v == u32::MAX {
                wide.next().unwrap_or(u64::MAX)
            } else {
                u64::from(v)
            }
        };
        let uncompressed = widen(uncompressed);
        let compressed = widen(compressed);
        let local = widen(local);
        if local >= cd_offset {
            return reject("corrupt", "an archive entry points outside the file");
        }
        if uncompressed > 1024 * 1024
            && uncompressed > compressed.max(1).saturating_mul(MAX_ZIP_RATIO)
        {
            return reject(
                "zip_bomb",
                format!(
                    "the entry {name:?} expands {}x; the archive looks like a zip bomb",
                    uncompressed / compressed.max(1)
                ),
            );
        }
        total = total.saturating_add(uncompressed);
        if total > MAX_ZIP_UNCOMPRESSED {
            return reject("zip_bomb", "the archive expands to more than 100 MB");
        }
        names.push(lower);
        at = extra_at + usize::from(x) + usize::from(c);
    }
    // Part names are case-insensitive (OPC); the content-types part may be anywhere.
    let has = |n: &str| names.iter().any(|x| x == n);
    if !has("[content_types].xml") {
        return reject(
            "content_mismatch",
            "the ZIP archive is not an Office document",
        );
    }
    Ok(Ok(if has("word/document.xml") {
        DOCX
    } else if has("xl/workbook.xml") {
        XLSX
    } else if has("ppt/presentation.xml") {
        PPTX
    } else {
        return reject(
            "content_mismatch",
            "the archive is not a Word, Excel or PowerPoint document",
        );
    }))
}

/// The types a compound file can be.
pub(super) const LEGACY: [&str; 3] = [
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
];

/// The OLE2 compound file signature.
pub(super) const CFB_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// Sector numbers at and above this end a chain or mark a free sector.
const MAX_REGULAR_SECTOR: u32 = 0xFFFF_FFFA;
/// Directory entries are 128 bytes.
const DIR_ENTRY: usize = 128;
/// Most directory sectors read (4,096 entries of 512-byte sectors, far above any document).
const MAX_DIR_SECTORS: usize = 1_024;
/// Most DIFAT sectors followed (64 cover compound files far above the 100 MB inbound limit).
const MAX_DIFAT_HOPS: u32 = 64;
/// The header holds the first 109 FAT sector numbers.
const HEADER_DIFAT: u32 = 109;

/// A compound file's geometry, from its 512-byte header.
struct Cfb {
    shift: u32,
    size: u64,
    /// FAT sectors the header declares.
    fat_sectors: u32,
    first_difat: u32,
    /// DIFAT sectors the header declares (bounds the chain walk).
    difat_sectors: u32,
    header: Vec<u8>,
}

impl Cfb {
    fn sector_size(&self) -> u64 {
        1 << self.shift
    }

    fn offset(&self, sector: u32) -> u64 {
        (u64::from(sector) + 1) << self.shift
    }

    /// The sector holding FAT block `index` (from the header, then the DIFAT chain). FAT
    /// and DIFAT entries are read through the chunk cache, so a looping chain costs no
    /// more requests.
    async fn fat_sector<B: Blob>(
        &self,
        reader: &mut ChunkedReader<B>,
        index: u32,
    ) -> Result<Option<u32>, crate::Error> {
        if index >= self.fat_sectors {
            return Ok(None);
        }
        if index < HEADER_DIFAT {
            return Ok(le32(&self.header, 0x4C + index as usize * 4));
        }
        let per = (self.sector_size() / 4) as u32 - 1;
        let (mut hop, slot) = ((index - HEADER_DIFAT) / per, (index - HEADER_DIFAT) % per);
        if hop >= self.difat_sectors.min(MAX_DIFAT_HOPS) {
            return Ok(None);
        }
        let mut sector = self.first_difat;
        while hop > 0 {
            if sector >= MAX_REGULAR_SECTOR {
                return Ok(None);
            }
            let next = reader
                .read(self.offset(sector) + u64::from(per) * 4, 4)
                .await?;
            sector = le32(&next, 0).unwrap_or(u32::MAX);
            hop -= 1;
        }
        if sector >= MAX_REGULAR_SECTOR {
            return Ok(None);
        }
        let entry = reader
            .read(self.offset(sector) + u64::from(slot) * 4, 4)
            .await?;
        Ok(le32(&entry, 0))
    }

    /// The sector after `sector` in its chain.
    async fn next<B: Blob>(
        &self,
        reader: &mut ChunkedReader<B>,
        sector: u32,
    ) -> Result<Option<u32>, crate::Error> {
        let per = (self.sector_size() / 4) as u32;
        let Some(fat) = self.fat_sector(reader, sector / per).await? else {
            return Ok(None);
        };
        if fat >= MAX_REGULAR_SECTOR || self.offset(fat) >= self.size {
            return Ok(None);
        }
        let entry = reader
            .read(self.offset(fat) + u64::from(sector % per) * 4, 4)
            .await?;
        Ok(le32(&entry, 0))
    }
}

/// The names of the streams and storages at the root of a directory.
fn root_names(dir: &[u8]) -> Option<Vec<String>> {
    let entry = |i: u32| dir.get(i as usize * DIR_ENTRY..(i as usize + 1) * DIR_ENTRY);
    let root = entry(0)?;
    if root[0x42] != 5 {
        return None;
    }
    let mut names = Vec::new();
    let mut stack = vec![le32(root, 0x4C)?];
    let mut visited = 0;
    while let Some(i) = stack.pop() {
        if i >= MAX_REGULAR_SECTOR {
            continue;
        }
        visited += 1;
        if visited > dir.len() / DIR_ENTRY {
            return None; // a cycle
        }
        let e = entry(i)?;
        let len = usize::from(le16(e, 0x40)?).min(64);
        let units: Vec<u16> = e[..len]
            .chunks_exact(2)
            .filter_map(|c| le16(c, 0))
            .take_while(|u| *u != 0)
            .collect();
        names.push(String::from_utf16_lossy(&units).to_lowercase());
        stack.push(le32(e, 0x44)?);
        stack.push(le32(e, 0x48)?);
    }
    Some(names)
}

/// A legacy Office file: which document its root streams say it is (a Word file declared
/// as Excel is refused like any other mismatch).
pub(super) async fn cfb<B: Blob>(
    reader: &mut ChunkedReader<B>,
    size: u64,
) -> Verdict<&'static str> {
    let header = reader.read(0, 512).await?;
    let shift = le16(&header, 0x1E).map(u32::from);
    let first_dir = le32(&header, 0x30);
    let (Some(shift @ (9 | 12)), Some(first_dir), Some(first_difat)) =
        (shift, first_dir, le32(&header, 0x44))
    else {
        return reject("corrupt", "the legacy Office file has no readable header");
    };
    let cfb = Cfb {
        shift,
        size,
        fat_sectors: le32(&header, 0x2C).unwrap_or(0),
        first_difat,
        difat_sectors: le32(&header, 0x48).unwrap_or(0),
        header,
    };
    let mut dir = Vec::new();
    let mut sector = first_dir;
    let mut read = 0;
    while sector < MAX_REGULAR_SECTOR {
        read += 1;
        if read > MAX_DIR_SECTORS || dir.len() as u64 >= MAX_INDEX {
            return reject(
                "corrupt",
                "the legacy Office file's directory is unreasonably large",
            );
        }
        let at = cfb.offset(sector);
        if at + cfb.sector_size() > size {
            return reject(
                "truncated",
                "the legacy Office file is shorter than its directory says: it was cut off; upload it again",
            );
        }
        dir.extend(reader.read(at, cfb.sector_size()).await?);
        sector = cfb.next(reader, sector).await?.unwrap_or(u32::MAX);
    }
    let Some(names) = root_names(&dir) else {
        return reject(
            "corrupt",
            "the legacy Office file's directory cannot be read",
        );
    };
    let has = |n: &str| names.iter().any(|x| x == n);
    if has("worddocument") {
        Ok(Ok(LEGACY[0]))
    } else if has("workbook") || has("book") {
        Ok(Ok(LEGACY[1]))
    } else if has("powerpoint document") {
        Ok(Ok(LEGACY[2]))
    } else if has("encryptedpackage") {
        reject(
            "encrypted",
            "the document is password-protected, so its content cannot be checked; save it without a password",
        )
    } else {
        reject(
            "content_mismatch",
            "the file is a compound file but not a Word, Excel or PowerPoint document",
        )
    }
}
