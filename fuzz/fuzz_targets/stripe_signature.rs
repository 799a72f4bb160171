//! libFuzzer entry of `shared::fuzzing::stripe_signature`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::stripe_signature(data));
