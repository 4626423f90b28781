//! `heiwa tenant credit`: what each donor's limbs earned by verified work,
//! summed from the hub's ledger (as a reader of the tenant sees it).

use crate::hub_args::HubArgs;
use heiwa_hub::{credits_text, LimbCreditLine};
use std::collections::HashMap;

/// A limb's name, as the tenant's `limb` rows give it.
#[derive(serde::Deserialize)]
struct LimbName {
    id: u64,
    name: String,
}

/// A donor as people tell them apart: the first characters of its invite's hash.
fn donor_label(donor: &str) -> &str {
    &donor[..donor.len().min(8)]
}

pub async fn credit(json: bool, hub: &HubArgs) -> anyhow::Result<()> {
    let (http, token) = hub.client().await?;
    let lines = http.credit(&hub.database, None, &token).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    let names: HashMap<u64, String> = http
        .rows_as::<LimbName>(&hub.database, "SELECT * FROM limb", &token)
        .await?
        .into_iter()
        .map(|limb| (limb.id, limb.name))
        .collect();
    let mut by_donor: Vec<(&str, Vec<&LimbCreditLine>)> = Vec::new();
    for line in &lines {
        match by_donor.iter_mut().find(|(donor, _)| *donor == line.donor) {
            Some((_, limbs)) => limbs.push(line),
            None => by_donor.push((&line.donor, vec![line])),
        }
    }
    println!(
        "{:<8}  {:>5}  {:<16}  {:>10}  {:>10}  {:>12}  {:>6}  {:>9}  {:>9}",
        "donor", "limb", "name", "24 h", "7 days", "all time", "tasks", "escrow", "revoked"
    );
    let (mut paid, mut escrow, mut revoked) = (0, 0, 0);
    for (donor, limbs) in &by_donor {
        for line in limbs {
            let name = names.get(&line.limb_id).map_or("(gone)", String::as_str);
            println!(
                "{:<8}  {:>5}  {:<16}  {:>10}  {:>10}  {:>12}  {:>6}  {:>9}  {:>9}",
                donor_label(donor),
                line.limb_id,
                name,
                credits_text(line.day.milli),
                credits_text(line.week.milli),
                credits_text(line.all.milli),
                line.all.tasks,
                credits_text(line.all.escrow_milli),
                credits_text(line.all.revoked_milli),
            );
            paid += line.all.milli;
            escrow += line.all.escrow_milli;
            revoked += line.all.revoked_milli;
        }
    }
    println!(
        "{} credits paid to {} donors; {} in escrow; {} revoked",
        credits_text(paid),
        by_donor.len(),
        credits_text(escrow),
        credits_text(revoked)
    );
    println!("queue: {}", queue_order(http.credit_priority(&hub.database, &token).await?));
    Ok(())
}

fn queue_order(credit_first: bool) -> &'static str {
    if credit_first {
        "a donor's own tasks go ahead by the donor's credit, then oldest first"
    } else {
        "oldest first (credit does not buy a place: `--priority on` to change it)"
    }
}

/// `heiwa tenant credit --priority on|off`: the owner's choice.
pub async fn set_priority(on: bool, hub: &HubArgs) -> anyhow::Result<()> {
    let (http, token) = hub.client().await?;
    http.set_credit_priority(&hub.database, on, &token).await?;
    println!("queue: {}", queue_order(on));
    Ok(())
}
