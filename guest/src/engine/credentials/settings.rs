//! Reading an environment's credentials from the config store, with its
//! first read that goes to a backend. A cached read never needs them, and
//! under Spin each config read is a thread hand-off in the host that a fresh
//! instance per request would pay on every request.

use crate::prelude::*;
use super::super::{Io, Provider};
use crate::error::Error;
use crate::log::{Event, Level};

impl Provider {
    /// Reads environment `env`'s credentials unless they are read already. A
    /// failure is the read's `config` error (naming the key, never a value),
    /// logged once per instance and environment (a wrong value is kept, a config
    /// store failure is read again by the next call: neither logs again).
    pub(in crate::engine) fn read_credentials(&mut self, env: usize, io: &mut Io<'_>) -> Result<(), Error> {
        let state = &mut self.envs[env];
        state.env.read_credentials(io.config).map_err(|error| {
            if !core::mem::replace(&mut state.credential_error_logged, true) {
                self.log.push(Event::new(Level::Error, "config_error").env(&state.env.spec.name).message(error.message.clone()));
            }
            Error::Config(error.message)
        })
    }

    /// Reads every environment's credentials (the health report's check):
    /// the first failure's message.
    pub fn read_all_credentials(&mut self, io: &mut Io<'_>) -> Option<String> {
        let mut first = None;
        for env in 0..self.envs.len() {
            if let Err(Error::Config(message)) = self.read_credentials(env, io) {
                first.get_or_insert(message);
            }
        }
        first
    }
}
