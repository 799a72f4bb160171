//! The short, stable-toolchain run of every fuzz target (`make test`): each target gets its
//! seed corpus (the real provider payloads and media files under `tests/fixtures`, and a
//! few edge inputs) and then inputs mutated from it (bytes flipped, inserted, removed,
//! repeated, cut, spliced from another seed), from a fixed seed so a failure repeats.
//! `FUZZ_SECONDS=<n>` runs each target for n seconds instead of a fixed count; a failing
//! input is written under `target/fuzz-failures/` with the panic.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fuzzing::{TARGETS, Target};

/// Inputs a target gets after its seeds in the default run.
const DEFAULT_RUNS: usize = 1500;
/// Largest input the mutator grows to (the parsers' own limits are far above it).
const MAX_LEN: usize = 256 * 1024;

/// xorshift64*: small, fast, and the same sequence everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Bytes that break parsers often: boundaries, quotes, markup, numbers at their limits.
const INTERESTING: &[&[u8]] = &[
    b"\0",
    b"\xff",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b"[",
    b"]",
    b"<",
    b">",
    b"<![CDATA[",
    b"]]>",
    b"&amp;",
    b"&#0;",
    b"-1",
    b"0",
    b"4294967296",
    b"18446744073709551616",
    b"1e309",
    b"null",
    b"true",
    b"\xef\xbb\xbf",
    b"\xc3\x28",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\xd0\xcf\x11\xe0",
    b"ftyp",
    b"moov",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"t=",
    b"v1=",
    b",",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, piece.iter().copied());
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                input.drain(at..end);
            }
            4 if len > 0 => {
                // Repeat a piece (nesting, long runs).
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                let piece: Vec<u8> = input[at..end].to_vec();
                for _ in 0..=rng.below(8) {
                    input.splice(at..at, piece.iter().copied());
                }
            }
            5 => input.truncate(rng.below(len + 1)),
            6 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let at = rng.below(len + 1);
                    let take = (other.len() - from).min(1 + rng.below(256));
                    input.splice(at..at, other[from..from + take].iter().copied());
                }
            }
            _ => {
                // Change a decimal digit (lengths, offsets, timestamps).
                if let Some(i) = (0..len)
                    .map(|_| rng.below(len))
                    .find(|&i| input[i].is_ascii_digit())
                {
                    input[i] = b'0' + rng.below(10) as u8;
                }
            }
        }
        input.truncate(MAX_LEN);
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn files_under(dir: &Path, out: &mut Vec<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push(bytes);
        }
    }
}

/// The seed corpus of a target: real inputs of its kind.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let webhooks = fixtures().join("webhooks");
    match target {
        "meta_webhook" => {
            for provider in ["whatsapp", "messenger", "instagram"] {
                files_under(&webhooks.join(provider), &mut seeds);
            }
        }
        "wechat_xml" => files_under(&webhooks.join("wechat"), &mut seeds),
        "media" => {
            let mut files = Vec::new();
            files_under(&fixtures().join("media"), &mut files);
            // The first byte picks the declared type: each file under every type.
            for file in files.iter().filter(|f| f.len() <= MAX_LEN) {
                for pick in 0..crate::domain::media::MEDIA_TYPES.len() {
                    let mut input = vec![pick as u8];
                    input.extend_from_slice(file);
                    seeds.push(input);
                }
            }
        }
        "office_zip" => {
            let mut files = Vec::new();
            files_under(&fixtures().join("media"), &mut files);
            seeds.extend(files.into_iter().filter(|f| {
                f.len() <= MAX_LEN && (f.starts_with(b"PK") || f.starts_with(b"\xd0\xcf\x11\xe0"))
            }));
        }
        "stripe_signature" => {
            let body = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed"}"#;
            let signed = crate::domain::stripe::sign("whsec_fuzz", 1_767_225_600, body);
            seeds.push([signed.as_bytes(), b"\n", body].concat());
            seeds.push(b"t=1767225600,v1=00,v0=ab\n{}".to_vec());
        }
        "ws_frame" => {
            for frame in [
                r#"{"action":"signal","type":"offer","payload":{"type":"offer","sdp":"v=0\r\n"}}"#,
                r#"{"action":"signal","type":"candidate","payload":{"candidate":"candidate:1 1 udp 1 192.0.2.1 1 typ host","sdpMid":"0","sdpMLineIndex":0}}"#,
                r#"{"action":"signal","type":"bye"}"#,
            ] {
                seeds.push(frame.as_bytes().to_vec());
            }
        }
        _ => {}
    }
    seeds.push(Vec::new());
    seeds
}

/// Runs `target` on `input`; a panic is written out with the input and re-raised.
fn run_one(name: &str, target: Target, input: &[u8]) {
    let outcome = std::panic::catch_unwind(|| target(input));
    if let Err(panic) = outcome {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", fingerprint(input)));
        let _ = std::fs::write(&path, input);
        std::panic::resume_unwind(Box::new(format!(
            "fuzz target {name} panicked on {} bytes (saved to {}): {:?}",
            input.len(),
            path.display(),
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or(panic.downcast_ref::<&str>().copied())
        )));
    }
}

fn fingerprint(input: &[u8]) -> u64 {
    input.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn budget() -> Result<Duration, usize> {
    match std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(seconds) => Ok(Duration::from_secs(seconds)),
        None => Err(DEFAULT_RUNS),
    }
}

fn fuzz(name: &str) {
    let target = TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .expect("a target");
    let seeds = seeds(name);
    assert!(seeds.len() > 1 || name == "office_zip", "{name} has seeds");
    for seed in &seeds {
        run_one(name, target, seed);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ fingerprint(name.as_bytes()));
    let started = Instant::now();
    let mut runs = 0usize;
    loop {
        match budget() {
            Ok(time) if started.elapsed() >= time => break,
            Err(count) if runs >= count => break,
            _ => {}
        }
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut input, &seeds);
        run_one(name, target, &input);
        runs += 1;
    }
}

#[test]
fn fuzz_meta_webhook() {
    fuzz("meta_webhook");
}

#[test]
fn fuzz_wechat_xml() {
    fuzz("wechat_xml");
}

#[test]
fn fuzz_media() {
    fuzz("media");
}

#[test]
fn fuzz_office_zip() {
    fuzz("office_zip");
}

#[test]
fn fuzz_stripe_signature() {
    fuzz("stripe_signature");
}

#[test]
fn fuzz_ws_frame() {
    fuzz("ws_frame");
}

#[test]
fn every_target_has_its_test() {
    let source = include_str!("fuzzing_tests.rs");
    for (name, _) in TARGETS {
        assert!(source.contains(&format!("fn fuzz_{name}()")), "{name}");
    }
}
