#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lbd::fuzz::check_reply(data));
