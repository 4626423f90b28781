#![no_main]
// Source code chunks: every chunk is the text at its offset, within the size,
// and together they are the text, in order, less only whitespace.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let max = 64;
    let chunks = heiwa_extract::code_chunks(text, max);
    for (at, chunk) in &chunks {
        assert_eq!(&text[*at..at + chunk.len()], *chunk);
        assert!(chunk.len() <= max, "{} bytes: {chunk:?}", chunk.len());
    }
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(chunks.iter().map(|(_, c)| squeeze(c)).collect::<String>(), squeeze(text));
});
