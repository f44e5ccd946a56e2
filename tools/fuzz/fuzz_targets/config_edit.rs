#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lbd::fuzz::config_edit(data));
