//! libFuzzer entry of `shared::fuzzing::wechat_xml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shared::fuzzing::wechat_xml(data));
