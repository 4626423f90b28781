//! Who on Discord may do what: the config's grants, by user id and role id
//! (ids, never names, which anyone can take). Pure: tested without Discord.

use std::collections::BTreeSet;

/// One kind of thing a Discord user may ask the bot to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// `/status`, `/task`, `/limbs`.
    View,
    /// `/submit`.
    Submit,
    /// `/cancel`.
    Cancel,
    /// `/invite`: a code that lets a new machine in.
    Invite,
    /// `/pause`, `/resume`.
    Pause,
}

impl Permission {
    pub const ALL: [Permission; 5] =
        [Permission::View, Permission::Submit, Permission::Cancel, Permission::Invite, Permission::Pause];

    /// A word of the config's `may` list; `owner` is all of them.
    pub fn named(word: &str) -> Result<Vec<Permission>, String> {
        Ok(match word {
            "view" => vec![Permission::View],
            "submit" => vec![Permission::Submit],
            "cancel" => vec![Permission::Cancel],
            "invite" => vec![Permission::Invite],
            "pause" => vec![Permission::Pause],
            "owner" => Permission::ALL.to_vec(),
            other => {
                return Err(format!(
                    "{other:?} is not a permission (view, submit, cancel, invite, pause, or owner for all)"
                ))
            }
        })
    }

    /// What it lets one do, for a refusal.
    pub fn doing(self) -> &'static str {
        match self {
            Permission::View => "view this tenant's tasks and limbs",
            Permission::Submit => "submit tasks",
            Permission::Cancel => "cancel tasks",
            Permission::Invite => "invite machines",
            Permission::Pause => "pause or resume limbs",
        }
    }
}

/// What one user, or everyone with one role, may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    User { id: String, may: BTreeSet<Permission> },
    Role { id: String, may: BTreeSet<Permission> },
}

impl Grant {
    pub fn may(&self) -> &BTreeSet<Permission> {
        match self {
            Grant::User { may, .. } | Grant::Role { may, .. } => may,
        }
    }
}

/// Everything `user` may do, given the roles Discord says it has in the
/// server the command came from (none in a direct message).
pub fn permissions(grants: &[Grant], user: &str, roles: &[String]) -> BTreeSet<Permission> {
    grants
        .iter()
        .filter(|grant| match grant {
            Grant::User { id, .. } => id == user,
            Grant::Role { id, .. } => roles.iter().any(|role| role == id),
        })
        .flat_map(|grant| grant.may().iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant_user(id: &str, may: &[Permission]) -> Grant {
        Grant::User { id: id.into(), may: may.iter().copied().collect() }
    }

    #[test]
    fn a_user_gets_its_own_grants_and_its_roles_and_nobody_else_gets_anything() {
        let grants = vec![
            grant_user("1", &[Permission::View]),
            Grant::Role { id: "50".into(), may: [Permission::Submit].into() },
            grant_user("2", &Permission::ALL),
        ];
        let roles = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(permissions(&grants, "1", &[]), [Permission::View].into());
        assert_eq!(permissions(&grants, "1", &roles(&["50"])), [Permission::View, Permission::Submit].into());
        assert_eq!(permissions(&grants, "2", &[]).len(), 5);
        assert!(permissions(&grants, "3", &roles(&["51"])).is_empty(), "unknown user, unknown role");
        assert!(permissions(&grants, "50", &[]).is_empty(), "a role id is not a user id");
    }
}
