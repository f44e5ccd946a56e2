#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lbd::fuzz::rtnetlink_reply(data));
