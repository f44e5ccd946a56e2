#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| init::fuzz::dhcp_message(data));
