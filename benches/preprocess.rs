//! Input decode and preprocessing of the benchmark image (benches/data/chest_512.png, 512×512
//! grayscale): PNG decode to RGB, then bicubic resize to 224 + normalisation to `pixel_values`.
//!   cargo bench --bench preprocess

mod common;

use std::path::Path;

use anyhow::Result;
use unimed_edge::input::preprocess::pixel_values;
use unimed_edge::{load_image, Bundle, InputOptions};

fn main() -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/chest_512.png");
    let opts = InputOptions::default();
    let n = common::iters(100);
    common::bench("decode chest_512.png", 3, n, || load_image(&path, &opts));
    // Size, mean and std are the bundle's (they are the same for every Uni-Med bundle: 224, CLIP stats).
    let Some(dir) = common::bundle() else {
        return Ok(());
    };
    let p = Bundle::load(&dir)?.manifest().preprocess.clone();
    let size = u32::try_from(p.image_size)?;
    let img = load_image(&path, &opts)?;
    common::bench(
        &format!("resize 512->{size} bicubic + normalise"),
        3,
        n,
        || pixel_values(&img.rgb, size, p.mean, p.std),
    );
    Ok(())
}
