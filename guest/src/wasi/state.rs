//! The instance's state: the configuration, loaded on the first call and kept
//! for the instance's life with the provider's caches and breakers. A bad
//! configuration is kept as an error that every call returns: the component
//! never traps on it. Shared by both worlds' exports.

use crate::prelude::*;
use core::cell::{Cell, RefCell};

use super::keyvalue::{BucketSlot, WasiStore};
use super::platform::{WasiClock, WasiConfig, WasiRandom};
use super::stderr;
use super::transport::WasiTransport;
use crate::config::{ConfigMapping, LazyLoaded, LoadError, ReservedKeys, Unread};
use crate::engine::Io;
use crate::log::{Event, Level};
use crate::shared::{NoStore, SharedSetup};
use crate::{config, Provider};

// One per instance, moved once (when loaded): boxing the provider would only add code.
#[allow(clippy::large_enum_variant)]
enum State {
    Ready(Ready),
    Broken(String),
}

/// A loaded configuration.
struct Ready {
    provider: Provider,
    /// The shared-state bucket, when one is configured.
    bucket: Option<(String, BucketSlot)>,
    /// The policy's `config` section and the keys never shown (config-provider world).
    config: Vec<ConfigMapping>,
    reserved: ReservedKeys,
    /// Environments no call has named yet (see `config::lazy`).
    unread: Unread,
}

/// The environments an export needs loaded before it runs.
pub(super) enum Needs<'a> {
    /// These; the call fails if one does not load.
    Names(&'a [&'a str]),
    /// Every environment that loads (the admin reports, which say what did not).
    #[cfg_attr(feature = "config-provider", allow(dead_code))]
    Available,
}

impl Ready {
    /// Loads the environments in `needs` that are still unread, and returns
    /// the first failure (a bad one fails every call that needs it). Each
    /// environment's mistake is logged once. (No config read happens here:
    /// the policy is read already, the credentials with the first backend read.)
    fn load_needed(&mut self, needs: &Needs<'_>) -> Result<(), String> {
        if self.unread.is_empty() {
            return Ok(()); // the usual case after an instance's first call
        }
        let (all, every): (Vec<String>, Vec<&str>);
        let names: &[&str] = match needs {
            Needs::Names(names) => names,
            Needs::Available => {
                all = self.unread.names();
                every = all.iter().map(String::as_str).collect();
                &every
            }
        };
        let mut first = Ok(());
        for name in names {
            let known_bad = self.unread.is_invalid(name);
            match self.unread.load(name) {
                None => {}
                Some(Ok(environment)) => self.provider.add_environment(environment),
                Some(Err(message)) => {
                    if !known_bad {
                        write_config_error(&message);
                    }
                    first = first.and(Err(message));
                }
            }
        }
        first
    }
}

/// The instance's state, and whether a configuration failure has been
/// logged. A component instance runs on one thread and is never re-entered
/// while a call is in progress, which is what makes this `Sync` claim true.
struct StateCell(RefCell<Option<State>>, Cell<bool>);

// SAFETY: see above; wasm32 components have no threads.
unsafe impl Sync for StateCell {}

static STATE: StateCell = StateCell(RefCell::new(None), Cell::new(false));

/// Runs `f` on the provider, loading the configuration on first use, then
/// writes out what the call logged. An invalid configuration is remembered
/// (it will not fix itself); a config store outage is not, so the next call
/// tries again.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut slot = STATE.0.borrow_mut();
    if let Some(state) = slot.as_mut() {
        return run(state, f);
    }
    match load() {
        Ok(state) => run(slot.insert(state), f),
        Err(store_failure) => f(&mut State::Broken(store_failure)),
    }
}

/// Reads the configuration. The provider world reads each environment when a
/// call first names it (a fresh instance per request then pays for one, not
/// for all). The config-provider world reads all of them at once: the keys it
/// must never pass through to the app include every environment's credentials.
fn load_config() -> Result<LazyLoaded, LoadError> {
    #[cfg(feature = "config-provider")]
    return config::load_all_with_log(&WasiConfig).map(|loaded| LazyLoaded { loaded, unread: Unread::default() });
    #[cfg(not(feature = "config-provider"))]
    config::load_lazy(&WasiConfig)
}

/// Loads the configuration: the state to keep, or `Err` with a config store
/// failure not to keep. A failure of either kind is logged once per instance.
/// Not generic, and out of line: `with_state` is instantiated once per export.
#[inline(never)]
fn load() -> Result<State, String> {
    match load_config() {
        Ok(LazyLoaded { loaded, unread }) => {
            let bucket = match &loaded.shared {
                SharedSetup::Ready { bucket, .. } => Some((bucket.clone(), BucketSlot::default())),
                SharedSetup::Disabled | SharedSetup::NoKey { .. } => None,
            };
            // Only the config-provider world answers apps' config reads, so only it needs the
            // keys it must never show them.
            #[cfg(feature = "config-provider")]
            let reserved = loaded.reserved_keys();
            #[cfg(not(feature = "config-provider"))]
            let reserved = ReservedKeys::default();
            let mut provider = Provider::with_shared(loaded.environments, loaded.shared);
            provider.set_log_level(loaded.log_level);
            Ok(State::Ready(Ready { provider, bucket, config: loaded.config, reserved, unread }))
        }
        Err(error) => {
            log_config_error(&error.message);
            if error.store_failure {
                Err(error.message)
            } else {
                Ok(State::Broken(error.message))
            }
        }
    }
}

/// Logs a configuration failure, once per instance.
fn log_config_error(message: &str) {
    if !STATE.1.replace(true) {
        write_config_error(message);
    }
}

/// Level `error` whatever the policy says: the level may be in the policy that failed.
#[inline(never)]
fn write_config_error(message: &str) {
    stderr::write(vec![Event::new(Level::Error, "config_error").message(message.to_string())]);
}

/// One place for every export: the call, then its log events.
fn run<R>(state: &mut State, f: impl FnOnce(&mut State) -> R) -> R {
    let result = f(state);
    flush_log(state);
    result
}

#[inline(never)]
fn flush_log(state: &mut State) {
    if let State::Ready(ready) = state {
        stderr::write(ready.provider.take_log());
    }
}

/// Runs `f` on the provider and its I/O (`config`: the `config` section and the
/// reserved keys), or `broken` with the configuration error. With
/// [`Needs::Available`], `f` runs over the environments that loaded and gets
/// the first error of those that did not.
fn with_loaded<R>(
    needs: Needs<'_>,
    f: impl FnOnce(&mut Provider, &mut Io<'_>, (&[ConfigMapping], &ReservedKeys), Option<&str>) -> R,
    broken: impl FnOnce(&str) -> R,
) -> R {
    with_state(|state| match state {
        State::Ready(ready) => {
            let failed = ready.load_needed(&needs).err();
            if let (Some(message), false) = (&failed, matches!(needs, Needs::Available)) {
                return broken(message);
            }
            let Ready { provider, bucket, config, reserved, .. } = ready;
            let mut transport = WasiTransport::default();
            let mut no_store = NoStore;
            let mut wasi_store;
            let store: &mut dyn crate::shared::SharedStore = match bucket {
                Some((name, slot)) => {
                    wasi_store = WasiStore::new(name, slot);
                    &mut wasi_store
                }
                None => &mut no_store,
            };
            let mut io = Io { clock: &mut WasiClock, random: &mut WasiRandom, transport: &mut transport, store, config: &WasiConfig };
            f(provider, &mut io, (config, reserved), failed.as_deref())
        }
        State::Broken(message) => broken(message),
    })
}

/// [`with_loaded`] for exports that fail whole when an environment they need does not load.
pub(super) fn with_ready<R>(
    needs: Needs<'_>,
    f: impl FnOnce(&mut Provider, &mut Io<'_>, (&[ConfigMapping], &ReservedKeys)) -> R,
    broken: impl FnOnce(&str) -> R,
) -> R {
    with_loaded(needs, |provider, io, config, _| f(provider, io, config), broken)
}

/// [`with_loaded`] over every environment that loads (`health`, `stats`).
#[cfg(not(feature = "config-provider"))]
pub(super) fn with_available<R>(f: impl FnOnce(&mut Provider, &mut Io<'_>, Option<&str>) -> R, broken: impl FnOnce(&str) -> R) -> R {
    with_loaded(Needs::Available, |provider, io, _, failed| f(provider, io, failed), broken)
}

/// [`with_ready`] for exports that only need the provider.
#[cfg(not(feature = "config-provider"))]
pub(super) fn with_provider<R>(needs: Needs<'_>, f: impl FnOnce(&mut Provider, &mut Io<'_>) -> R, broken: impl FnOnce(&str) -> R) -> R {
    with_ready(needs, |provider, io, _| f(provider, io), broken)
}
