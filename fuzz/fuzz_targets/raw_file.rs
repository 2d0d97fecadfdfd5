#![no_main]
// The first byte picks the format, the rest is the file.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&pick, rest)) = data.split_first() {
        let formats = gradus_fuzz::RAW_FORMATS;
        gradus_fuzz::raw_file(formats[pick as usize % formats.len()], rest);
    }
});
