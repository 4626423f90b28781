//! The arguments of each reducer the HTTP client calls, one struct per
//! reducer in the hub's own types (the generated bindings' `Role`, SATS's
//! `Identity`), sent through the SATS serde wrapper as a JSON object by
//! parameter name: the hub matches arguments by name, so two of one type
//! cannot trade places as they could in a positional array. A test holds each
//! struct's parameters to the module's schema (`hub-module/schema.json`).

use crate::bindings::Role;
use spacetimedb_lib::Identity;

/// A reducer's arguments: which reducer, and its parameters in order.
pub(crate) trait ReducerArgs: spacetimedb_lib::ser::Serialize {
    const REDUCER: &'static str;
}

macro_rules! reducer_args {
    ($($reducer:ident => $name:ident { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            #[derive(spacetimedb_lib::ser::Serialize)]
            #[sats(crate = spacetimedb_lib)]
            pub(crate) struct $name { $(pub(crate) $field: $ty),* }

            impl ReducerArgs for $name {
                const REDUCER: &'static str = stringify!($reducer);
            }
        )*

        /// Each reducer's name and its parameters' names, as written above.
        #[cfg(test)]
        const EVERY: &[(&str, &[&str])] = &[$((stringify!($reducer), &[$(stringify!($field)),*])),*];
    };
}

reducer_args! {
    set_spot_check_key => SetSpotCheckKey { key_hex: String }
    set_hub_policy => SetHubPolicy {
        tenant_creation: String,
        max_tenants: u32,
        failures_per_identity: u32,
        failures_hub_wide: u32,
        failure_window_secs: u32,
    }
    create_tenant => CreateTenant { name: String }
    create_tenant_with_code => CreateTenantWithCode { name: String, code: String }
    create_tenant_code => CreateTenantCode { code_hash: String, uses: u32, ttl_secs: u32 }
    create_invite => CreateInvite { code_hash: String, uses: u32, ttl_secs: u32, role: Role }
    create_browser_invite => CreateBrowserInvite { code_hash: String, submits: bool, label: String, ttl_secs: u32 }
    create_operator_invite => CreateOperatorInvite { code_hash: String, label: String, ttl_secs: u32 }
    join_tenant => JoinTenant { code: String }
    join_operator => JoinOperator { code: String }
    claim_legacy => ClaimLegacy { code: String }
    pause_limb => PauseLimb { limb_id: u64, paused: bool, reason: String }
    revoke_browser => RevokeBrowser { browser: Identity }
    revoke_operator => RevokeOperator { operator: Identity }
    submit_task => SubmitTask { payload: String, model: String }
    submit_task_once => SubmitTaskOnce { key: String, payload: String, model: String }
    submit_task_replicated => SubmitTaskReplicated { key: String, payload: String, model: String, replicas: u32 }
    submit_task_scored => SubmitTaskScored { key: String, payload: String, model: String }
    grant_limb => GrantLimb { limb_id: u64, reads_tenant: bool, submits: bool }
    configure_hub => ConfigureHub {
        max_open_tasks: u32,
        submits_per_sec: u32,
        submit_burst: u32,
        retain_secs: u64,
        prune_every_secs: u64,
    }
    cancel_task => CancelTask { task_id: u64 }
    set_credit => SetCredit { on: bool }
    set_credit_priority => SetCreditPriority { on: bool }
    add_catalogue_model => AddCatalogueModel {
        model_id: String,
        file: String,
        size_bytes: u64,
        sha256: String,
        sources: Vec<String>,
        license: String,
        keep_ready: bool,
    }
    remove_catalogue_model => RemoveCatalogueModel { model_id: String }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_names_the_parameters_the_module_has() {
        let schema: serde_json::Value = serde_json::from_str(include_str!("../../../hub-module/schema.json")).unwrap();
        let reducers = schema.as_object().unwrap().values().next().unwrap()["reducers"].as_array().unwrap();
        for (reducer, params) in EVERY {
            let declared = reducers.iter().find(|r| r["name"] == *reducer).unwrap_or_else(|| panic!("no {reducer}"));
            let names: Vec<&str> = declared["params"]["elements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|element| element["name"]["some"].as_str().unwrap())
                .collect();
            assert_eq!(&names, params, "{reducer}'s parameters");
        }
    }

    #[test]
    fn arguments_go_as_an_object_by_name_in_the_hubs_json() {
        let role = crate::hub_json(&CreateInvite { code_hash: "ab".into(), uses: 2, ttl_secs: 60, role: Role::Limb });
        assert_eq!(role, r#"{"code_hash":"ab","uses":2,"ttl_secs":60,"role":{"Limb":[]}}"#);
        let identity = Identity::from_hex(format!("{:064x}", 7)).unwrap();
        let revoke = crate::hub_json(&RevokeBrowser { browser: identity });
        assert_eq!(revoke, r#"{"browser":{"__identity__":"0x7"}}"#, "SATS writes an identity as its number in hex");
    }
}
