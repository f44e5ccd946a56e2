#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| init::fuzz::kernel_cmdline(data));
