#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pxe::fuzz::site(data));
