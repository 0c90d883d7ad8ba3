//! Refused logins in shared state. A wrong role or secret id is refused the
//! same way by every instance; under Spin every request is a fresh instance,
//! so an instance's own memory of the refusal would not stop the next request
//! from logging in (and being refused) again. The first refusal is shared for
//! [`RELOGIN_INTERVAL_MS`] of wall time, bound to who logs in: a corrected
//! secret id has another identity and logs in at once.

use crate::prelude::*;
use crate::engine::credentials::RELOGIN_INTERVAL_MS;
use super::nonce;
use crate::engine::{Io, Provider};
use crate::error::Error;
use crate::shared::record::RefusalRecord;

impl Provider {
    fn refusal_ids(&self, env: usize, tier: usize) -> Option<(String, Vec<u8>)> {
        let (id, identity) = self.token_ids(env, tier)?;
        Some((format!("{id}-refused"), [&identity[..], b"|refused"].concat()))
    }

    /// The permission denial another instance got for this tier's login less
    /// than [`RELOGIN_INTERVAL_MS`] ago, if any.
    pub(in crate::engine) fn shared_refusal(&mut self, env: usize, tier: usize, io: &mut Io<'_>) -> Option<Error> {
        let (id, identity) = self.refusal_ids(env, tier)?;
        let sealed = self.store_read(io, |store| store.get(&id))??;
        let record = self.open_record(env, &identity, &sealed, RefusalRecord::decode)?;
        let wall = io.clock.wall_ms();
        // A record from a clock far ahead must not block logins for long: only a
        // refusal within the interval either side of now counts.
        (wall.abs_diff(record.refused_at_ms) < RELOGIN_INTERVAL_MS).then_some(Error::PermissionDenied(record.message))
    }

    /// Shares a refusal (`message` already free of credentials).
    pub(in crate::engine) fn publish_refusal(&mut self, env: usize, tier: usize, message: &str, io: &mut Io<'_>) {
        let Some((id, identity)) = self.refusal_ids(env, tier) else { return };
        let record = RefusalRecord { refused_at_ms: io.clock.wall_ms(), message: message.to_string() };
        let nonce = nonce(io);
        let Some(ready) = self.shared.usable() else { return };
        let sealed = ready.key.seal(&identity, &record.encode(), nonce);
        let _ = self.store_write(io, |store| store.set(&id, &sealed));
    }
}
