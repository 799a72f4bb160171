//! libFuzzer entry of `shared::fuzzing::meta_webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::meta_webhook(data));
