//! The events the window hears, each typed by its payload: a command module
//! declares `pub const NAME: Event<Payload> = Event::named("name");` and emits
//! through it, and build.rs writes each into `ui/src/lib/generated/commands.ts` with its
//! payload's type, so a renamed event or a changed payload fails svelte-check.

use serde::Serialize;
use std::marker::PhantomData;
use tauri::{Emitter, Runtime};

pub struct Event<T> {
    name: &'static str,
    payload: PhantomData<fn(T)>,
}

impl<T: Serialize + Clone> Event<T> {
    pub const fn named(name: &'static str) -> Self {
        Event { name, payload: PhantomData }
    }

    /// Tell the window (a window that is closed hears nothing, which is fine:
    /// it reads the current state when it opens).
    pub fn emit<R: Runtime>(&self, to: &impl Emitter<R>, payload: T) {
        let _ = to.emit(self.name, payload);
    }
}

/// The window reads its state again (tasks, limb status, donation).
pub const LIMB_CHANGED: Event<()> = Event::named("limb-changed");
