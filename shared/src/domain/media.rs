//! Media rules (SPEC §4 media table): what may be uploaded, declared and real.
//!
//! A declared upload (`filename`, `content_type`, `size`) is checked first; the bytes are
//! checked later by [`crate::domain::sniff`], and both must agree.

use serde::Serialize;

use crate::Error;

const KB: u64 = 1024;
const MB: u64 = 1024 * 1024;
/// Longest accepted file name.
const MAX_FILENAME_CHARS: usize = 255;

/// What a media file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// JPEG, PNG.
    Image,
    /// WEBP 512×512.
    Sticker,
    /// MP3, OGG/Opus, AMR, AAC, M4A, 3GP audio.
    Audio,
    /// MP4/3GP with H.264 and AAC.
    Video,
    /// PDF, Office, text.
    Document,
}

impl MediaKind {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Sticker => "sticker",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Document => "document",
        }
    }

    /// Largest file of this kind (stickers: the animated limit; static ones are checked
    /// against [`STATIC_STICKER_MAX`] once the content is known).
    pub fn max_size(self) -> u64 {
        match self {
            Self::Image => 5 * MB,
            Self::Sticker => 500 * KB,
            Self::Audio | Self::Video | Self::Document => 16 * MB,
        }
    }
}

/// Largest media a customer may send us (providers allow up to 100 MB documents).
pub const INBOUND_MAX_SIZE: u64 = 100 * MB;

/// Largest static sticker.
pub const STATIC_STICKER_MAX: u64 = 100 * KB;
/// Sticker dimensions.
pub const STICKER_SIDE: u32 = 512;

/// One accepted content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType {
    /// Canonical MIME type.
    pub mime: &'static str,
    /// Kind.
    pub kind: MediaKind,
    /// Accepted file extensions (lower case).
    pub extensions: &'static [&'static str],
}

/// Every accepted type. `image/webp` is for stickers only.
pub const MEDIA_TYPES: &[MediaType] = &[
    MediaType {
        mime: "image/jpeg",
        kind: MediaKind::Image,
        extensions: &["jpg", "jpeg"],
    },
    MediaType {
        mime: "image/png",
        kind: MediaKind::Image,
        extensions: &["png"],
    },
    MediaType {
        mime: "image/webp",
        kind: MediaKind::Sticker,
        extensions: &["webp"],
    },
    MediaType {
        mime: "audio/mpeg",
        kind: MediaKind::Audio,
        extensions: &["mp3"],
    },
    MediaType {
        mime: "audio/ogg",
        kind: MediaKind::Audio,
        extensions: &["ogg", "opus"],
    },
    MediaType {
        mime: "audio/amr",
        kind: MediaKind::Audio,
        extensions: &["amr"],
    },
    MediaType {
        mime: "audio/aac",
        kind: MediaKind::Audio,
        extensions: &["aac"],
    },
    MediaType {
        mime: "audio/mp4",
        kind: MediaKind::Audio,
        extensions: &["m4a"],
    },
    MediaType {
        mime: "audio/3gpp",
        kind: MediaKind::Audio,
        extensions: &["3gp"],
    },
    MediaType {
        mime: "video/mp4",
        kind: MediaKind::Video,
        extensions: &["mp4"],
    },
    MediaType {
        mime: "video/3gpp",
        kind: MediaKind::Video,
        extensions: &["3gp"],
    },
    MediaType {
        mime: "application/pdf",
        kind: MediaKind::Document,
        extensions: &["pdf"],
    },
    MediaType {
        mime: "application/msword",
        kind: MediaKind::Document,
        extensions: &["doc"],
    },
    MediaType {
        mime: "application/vnd.ms-excel",
        kind: MediaKind::Document,
        extensions: &["xls"],
    },
    MediaType {
        mime: "application/vnd.ms-powerpoint",
        kind: MediaKind::Document,
        extensions: &["ppt"],
    },
    MediaType {
        mime: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        kind: MediaKind::Document,
        extensions: &["docx"],
    },
    MediaType {
        mime: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        kind: MediaKind::Document,
        extensions: &["xlsx"],
    },
    MediaType {
        mime: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        kind: MediaKind::Document,
        extensions: &["pptx"],
    },
    MediaType {
        mime: "text/plain",
        kind: MediaKind::Document,
        extensions: &["txt"],
    },
];

/// Other names clients use for accepted types.
const ALIASES: &[(&str, &str)] = &[
    ("image/jpg", "image/jpeg"),
    ("image/pjpeg", "image/jpeg"),
    ("audio/mp3", "audio/mpeg"),
    ("audio/opus", "audio/ogg"),
    ("audio/x-m4a", "audio/mp4"),
    ("audio/m4a", "audio/mp4"),
    ("audio/aacp", "audio/aac"),
    ("audio/x-aac", "audio/aac"),
    ("audio/x-mp3", "audio/mpeg"),
    ("audio/mpeg3", "audio/mpeg"),
    ("audio/x-mpeg", "audio/mpeg"),
    ("application/x-pdf", "application/pdf"),
];

/// The accepted type for a MIME type (parameters and case ignored, aliases resolved).
pub fn media_type(content_type: &str) -> Option<&'static MediaType> {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == essence)
        .map_or(essence.as_str(), |(_, c)| c);
    MEDIA_TYPES.iter().find(|t| t.mime == canonical)
}

/// A declared upload that passed the declared checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredUpload {
    /// File name as given (trimmed).
    pub filename: String,
    /// The accepted type.
    pub media_type: &'static MediaType,
    /// Declared size in bytes.
    pub size: u64,
}

fn rejected(code: &'static str, message: impl Into<String>) -> Error {
    Error::validation(code, message)
}

/// Checks a declared upload: type accepted for some kind, extension agreeing with it, size
/// within the kind's limit. HEIC is refused with the hint to convert to JPEG.
pub fn check_declared(
    filename: &str,
    content_type: &str,
    size: u64,
) -> Result<DeclaredUpload, Error> {
    let filename = filename.trim();
    if filename.is_empty()
        || filename.chars().count() > MAX_FILENAME_CHARS
        || filename
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        || filename.starts_with('.')
    {
        return Err(rejected(
            "invalid_filename",
            "filename must be a plain file name (no path, no control characters) of at most 255 characters",
        ));
    }
    let extension = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if matches!(essence.as_str(), "image/heic" | "image/heif")
        || matches!(extension.as_str(), "heic" | "heif")
    {
        return Err(rejected(
            "heic_not_supported",
            "HEIC/HEIF images cannot be sent on WhatsApp; convert the photo to JPEG first",
        ));
    }
    let Some(media_type) = media_type(content_type) else {
        return Err(rejected(
            "unsupported_type",
            format!("content type {essence:?} is not accepted for any media kind"),
        ));
    };
    if !media_type.extensions.contains(&extension.as_str()) {
        return Err(rejected(
            "extension_mismatch",
            format!(
                "a {} file must end in .{} (got {filename:?})",
                media_type.mime,
                media_type.extensions.join(" or .")
            ),
        ));
    }
    let max = media_type.kind.max_size();
    if size == 0 {
        return Err(rejected("empty_file", "size must be at least 1 byte"));
    }
    if size > max {
        return Err(rejected(
            "too_large",
            format!(
                "{} files may be at most {} bytes",
                media_type.kind.as_str(),
                max
            ),
        ));
    }
    Ok(DeclaredUpload {
        filename: filename.to_owned(),
        media_type,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jpeg_photo_is_an_image() {
        let d = check_declared("photo.JPG", "image/jpeg", 1000).unwrap();
        assert_eq!(d.media_type.kind, MediaKind::Image);
    }

    #[test]
    fn webp_is_only_for_stickers() {
        assert_eq!(
            check_declared("s.webp", "image/webp", 1000)
                .unwrap()
                .media_type
                .kind,
            MediaKind::Sticker
        );
        assert_eq!(
            check_declared("s.webp", "image/webp", 600 * KB)
                .unwrap_err()
                .code(),
            "too_large"
        );
    }

    #[test]
    fn heic_is_refused_with_the_jpeg_hint() {
        for (name, ct) in [
            ("p.heic", "image/heic"),
            ("p.heic", "image/jpeg"),
            ("p.jpg", "image/heif"),
        ] {
            let err = check_declared(name, ct, 10).unwrap_err();
            assert_eq!(err.code(), "heic_not_supported");
            assert!(err.to_string().contains("JPEG"));
        }
    }

    #[test]
    fn extension_must_agree_with_the_type() {
        assert_eq!(
            check_declared("a.png", "image/jpeg", 10)
                .unwrap_err()
                .code(),
            "extension_mismatch"
        );
        assert_eq!(
            check_declared("noext", "image/jpeg", 10)
                .unwrap_err()
                .code(),
            "extension_mismatch"
        );
        assert!(check_declared("voice.opus", "audio/ogg; codecs=opus", 10).is_ok());
        assert!(check_declared("voice.ogg", "audio/opus", 10).is_ok());
    }

    #[test]
    fn names_browsers_and_phones_give_common_types_are_understood() {
        for (name, given, canonical) in [
            ("a.aac", "audio/x-aac", "audio/aac"),
            ("a.mp3", "audio/x-mp3", "audio/mpeg"),
            ("a.mp3", "audio/mpeg3", "audio/mpeg"),
            ("a.mp3", "audio/x-mpeg", "audio/mpeg"),
            ("a.pdf", "application/x-pdf", "application/pdf"),
            ("a.txt", "text/plain; charset=UTF-16", "text/plain"),
            ("a.m4a", "audio/x-m4a", "audio/mp4"),
        ] {
            let declared = check_declared(name, given, 10).unwrap();
            assert_eq!(declared.media_type.mime, canonical, "{given}");
        }
    }

    #[test]
    fn sizes_are_held_to_the_kind_limits() {
        assert!(check_declared("a.png", "image/png", 5 * MB).is_ok());
        assert_eq!(
            check_declared("a.png", "image/png", 5 * MB + 1)
                .unwrap_err()
                .code(),
            "too_large"
        );
        assert!(check_declared("a.mp4", "video/mp4", 16 * MB).is_ok());
        assert_eq!(
            check_declared("a.pdf", "application/pdf", 0)
                .unwrap_err()
                .code(),
            "empty_file"
        );
    }

    #[test]
    fn unknown_types_and_path_names_are_refused() {
        assert_eq!(
            check_declared("a.gif", "image/gif", 10).unwrap_err().code(),
            "unsupported_type"
        );
        assert_eq!(
            check_declared("a.exe", "application/octet-stream", 10)
                .unwrap_err()
                .code(),
            "unsupported_type"
        );
        for name in [
            "../a.png",
            "dir/a.png",
            "a\\b.png",
            "",
            ".png",
            "a\u{0}.png",
        ] {
            assert_eq!(
                check_declared(name, "image/png", 10).unwrap_err().code(),
                "invalid_filename",
                "{name:?}"
            );
        }
    }
}

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaStatus {
    /// Waiting for the upload, or being checked.
    Pending,
    /// Checked by content and moved to the clean prefix.
    Valid,
    /// Refused (and deleted); `reason` says why.
    Rejected,
}

impl MediaStatus {
    /// The stored/API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Valid => "valid",
            Self::Rejected => "rejected",
        }
    }

    /// Parses the stored name.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "pending" => Some(Self::Pending),
            "valid" => Some(Self::Valid),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// A media record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRecord {
    /// Id.
    pub id: String,
    /// Owner.
    pub tenant_id: crate::domain::ids::TenantId,
    /// Status.
    pub status: MediaStatus,
    /// Declared file name.
    pub filename: String,
    /// Declared (and, once valid, verified) MIME type.
    pub mime_type: String,
    /// Kind.
    pub kind: MediaKind,
    /// Declared size, then the real one once checked.
    pub size: u64,
    /// SHA-256 (hex) of the valid file.
    pub sha256: Option<String>,
    /// Why it was rejected: code.
    pub reason_code: Option<String>,
    /// Why it was rejected: sentence.
    pub reason: Option<String>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Sent by a customer (fetched from the provider) rather than uploaded by an agent.
    pub inbound: bool,
    /// Which upload was promoted to the clean prefix (see [`clean_key`]); `None` before
    /// validation, and for files promoted before clean keys carried it.
    pub version: Option<String>,
}

impl MediaRecord {
    /// What the record says the file must be.
    pub fn claim(&self) -> Option<Claim> {
        media_type(&self.mime_type).map(|media_type| Claim {
            media_type,
            inbound: self.inbound,
        })
    }

    /// Where the valid file lives.
    pub fn clean_key(&self) -> String {
        clean_key(&self.tenant_id, &self.id, self.version.as_deref())
    }
}

/// What a file is checked against: the declared type, and whether a customer sent it
/// (customers may send larger files than agents may upload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The declared type.
    pub media_type: &'static MediaType,
    /// Fetched from a provider rather than uploaded through a form.
    pub inbound: bool,
}

impl Claim {
    /// The size limit the content is checked against.
    pub fn max_size(&self) -> u64 {
        if self.inbound {
            INBOUND_MAX_SIZE
        } else {
            self.media_type.kind.max_size()
        }
    }
}

/// The outcome of checking one file, written to its record only while the record is
/// still `pending` and (when `claim` is given) still declares what the file was checked
/// against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// Owner.
    pub tenant_id: crate::domain::ids::TenantId,
    /// Media id.
    pub id: String,
    /// `valid` or `rejected`.
    pub status: MediaStatus,
    /// The verified MIME type (valid), or the declared one (rejected).
    pub mime_type: String,
    /// The real size in bytes.
    pub size: u64,
    /// SHA-256 (hex) of a valid file.
    pub sha256: Option<String>,
    /// The promoted upload's version (valid).
    pub version: Option<String>,
    /// Rejection code.
    pub reason_code: Option<String>,
    /// Rejection sentence.
    pub reason: Option<String>,
    /// The declaration the file was checked against, to match the record's.
    pub claim: Option<Claim>,
}

/// Object keys of an upload: received into quarantine, moved to clean once valid.
pub fn quarantine_key(tenant: &crate::domain::ids::TenantId, id: &str) -> String {
    format!("quarantine/{tenant}/{id}")
}

/// Where a valid file lives: `clean/{tenant}/{id}/{version}`, the version naming the
/// upload it was copied from, so a later upload through the same form can never replace
/// a file already checked and settled. Files promoted before versions: `clean/{tenant}/{id}`.
pub fn clean_key(tenant: &crate::domain::ids::TenantId, id: &str, version: Option<&str>) -> String {
    match version {
        Some(version) => format!("clean/{tenant}/{id}/{version}"),
        None => format!("clean/{tenant}/{id}"),
    }
}

/// The version part of a clean key, from the store's ETag of the quarantined upload
/// (`"9b2c…"`, or `"9b2c…-3"` for multipart objects); `None` when it is not one.
pub fn object_version(etag: &str) -> Option<String> {
    let tag = etag.trim().trim_start_matches("W/").trim_matches('"');
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then(|| tag.to_owned())
}

/// The tenant and media id of a quarantine key, if it is one of ours.
pub fn parse_quarantine_key(key: &str) -> Option<(crate::domain::ids::TenantId, String)> {
    let rest = key.strip_prefix("quarantine/")?;
    let (tenant, id) = rest.split_once('/')?;
    let tenant = crate::domain::ids::TenantId::parse(tenant).ok()?;
    let id_ok = !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric());
    id_ok.then(|| (tenant, id.to_owned()))
}

#[cfg(test)]
mod layout_tests {
    use super::*;
    use crate::domain::ids::TenantId;

    #[test]
    fn clean_keys_name_the_promoted_upload() {
        let tenant = TenantId::parse("acme").unwrap();
        assert_eq!(
            clean_key(&tenant, "01J", Some("abc-2")),
            "clean/acme/01J/abc-2"
        );
        assert_eq!(clean_key(&tenant, "01J", None), "clean/acme/01J");
        assert_eq!(
            object_version("\"9b2cf535f27731c974343645a3985328\"").as_deref(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        assert_eq!(
            object_version("\"d41d8cd9-3\"").as_deref(),
            Some("d41d8cd9-3")
        );
        assert_eq!(object_version("W/\"abc\"").as_deref(), Some("abc"));
        for bad in ["", "\"\"", "\"a/b\"", "\"../x\""] {
            assert_eq!(object_version(bad), None, "{bad:?}");
        }
        assert_eq!(object_version(&"a".repeat(65)), None);
    }

    #[test]
    fn customers_may_send_larger_files_than_agents_upload() {
        let pdf = media_type("application/pdf").unwrap();
        let upload = Claim {
            media_type: pdf,
            inbound: false,
        };
        let inbound = Claim {
            media_type: pdf,
            inbound: true,
        };
        assert_eq!(upload.max_size(), MediaKind::Document.max_size());
        assert_eq!(inbound.max_size(), INBOUND_MAX_SIZE);
    }
}
