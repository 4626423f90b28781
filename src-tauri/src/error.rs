//! The one error every command returns: what went wrong, and what to do about
//! it when there is something to do. The window shows it as it shows every
//! error (`message()` in `ui/src/lib/state.svelte.ts`).

use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Serialize, TS)]
pub struct CommandError {
    pub message: String,
    /// The next step for the owner, when there is one.
    pub hint: Option<String>,
}

impl CommandError {
    pub fn new(message: impl Into<String>) -> Self {
        CommandError { message: message.into(), hint: None }
    }

    pub fn with_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        CommandError { message: message.into(), hint: Some(hint.into()) }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.hint {
            Some(hint) => write!(f, "{}; {hint}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        CommandError::new(message)
    }
}

impl From<&str> for CommandError {
    fn from(message: &str) -> Self {
        CommandError::new(message)
    }
}

/// The libraries' own errors already say what went wrong in one sentence.
macro_rules! from_errors {
    ($($error:ty),* $(,)?) => {$(
        impl From<$error> for CommandError {
            fn from(error: $error) -> Self {
                CommandError::new(error.to_string())
            }
        }
    )*};
}

from_errors!(
    heiwa_hub::HubError,
    heiwa_memory::MemoryError,
    heiwa_inference::InferenceError,
    heiwa_inference::models::ModelError,
    limb_core::governor::PolicyError,
    limb_core::agent::local::RetrieveError,
    crate::settings::SettingsError,
    crate::settings::UpdateUrlError,
    tauri::Error,
    tauri_plugin_autostart::Error,
);

pub type CommandResult<T> = Result<T, CommandError>;

/// An error from a crate whose error type says enough in its message.
pub fn said(error: impl std::fmt::Display) -> CommandError {
    CommandError::new(error.to_string())
}
