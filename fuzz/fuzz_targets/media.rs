//! libFuzzer entry of `shared::fuzzing::media`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::media(data));
