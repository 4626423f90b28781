#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| heiwa_extract_fuzz::check("epub", data));
