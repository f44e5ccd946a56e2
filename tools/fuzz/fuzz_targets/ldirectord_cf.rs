#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| lbctl::fuzz::ldirectord_cf(data));
