//! `heiwa doctor` and `heiwa status`.

use anyhow::Context;
use heiwa_config::data_dir;
use limb_core::{doctor, LimbInfo};

pub async fn doctor(json: bool) -> anyhow::Result<()> {
    let parts = limb_core::chosen_parts(&data_dir())?;
    let work = data_dir().join("doctor");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let ok = doctor::run(&parts, &work, &mut |check| {
        if json {
            println!("{}", serde_json::to_string(check).expect("a check serialises"));
        } else {
            let mark = match (check.ok, check.off) {
                (true, false) => "ok  ",
                (true, true) => "off ",
                (false, _) => "FAIL",
            };
            println!("[{mark}] {:<9} {:>6} ms  {}", check.part, check.millis, check.detail);
        }
    })
    .await;
    anyhow::ensure!(ok, "some parts failed; see above");
    Ok(())
}

pub fn status() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&LimbInfo::gather(&data_dir()))?);
    Ok(())
}
