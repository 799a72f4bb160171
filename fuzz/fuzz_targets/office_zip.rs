//! libFuzzer entry of `shared::fuzzing::office_zip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::office_zip(data));
