#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pxe::fuzz::http_request(data));
