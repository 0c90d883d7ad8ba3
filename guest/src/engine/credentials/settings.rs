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
    /// logged the first time this instance meets it.
    pub(in crate::engine) fn read_credentials(&mut self, env: usize, io: &mut Io<'_>) -> Result<(), Error> {
        let environment = &mut self.envs[env].env;
        let known_bad = environment.credentials_invalid();
        environment.read_credentials(io.config).map_err(|error| {
            if !known_bad {
                let event = Event::new(Level::Error, "config_error").env(&self.envs[env].env.spec.name).message(error.message.clone());
                self.log.push(event);
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
