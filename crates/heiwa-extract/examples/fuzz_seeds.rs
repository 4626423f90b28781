//! Write the fuzz targets' seeds: `cargo run -p heiwa-extract --example fuzz_seeds -- DIR`
//! (scripts/fuzz does), one folder per format.

fn main() -> std::io::Result<()> {
    let dir = std::env::args_os().nth(1).expect("usage: fuzz_seeds DIR");
    heiwa_extract::adversarial::write_fuzz_seeds(std::path::Path::new(&dir))
}
