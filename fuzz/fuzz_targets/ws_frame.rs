//! libFuzzer entry of `shared::fuzzing::ws_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::ws_frame(data));
