//! Tier credentials at run time: the tokens that logins issue (Vault
//! AppRole, a GCP metadata server) or the component signs (a GCP
//! service-account JWT), held until shortly before they expire, renewed when
//! they can be, and shared through shared state so that one instance's login
//! serves every other instance (under Spin, every request is a new instance).
//!
//! Logins are exchanged on the same transport as reads, while other reads may
//! be in flight: their answers are kept aside ([`Provider::stash`]) for the
//! fetch loop. A login takes at most one attempt timeout, and happens about
//! once per token lifetime per deployment.

use crate::prelude::*;
use super::{Io, Provider};
use crate::auth::{aws_issued, Credential, IssuedToken, Presented};
use crate::backend::Failure;
use crate::digest::sha256;
use crate::error::Error;
use crate::secret::SecretBytes;
use crate::shared::record::TokenRecord;
use crate::shared::seal;
use super::shared::lease::{Held as LeaseHeld, Lease};
use super::shared::LEASE_POLL_MS;

mod login;
mod settings;

/// A token is replaced (or renewed) this long before it expires: a third of
/// its lifetime, at most five minutes. A read never goes out with a token
/// about to lapse, and one failed renewal still leaves time for another.
pub const MAX_GRACE_MS: u64 = 300_000;

/// At most one re-login per tier in this long after a 403 (per instance): a
/// 403 on a secret the role may not read must not cost a login per read.
pub const RELOGIN_INTERVAL_MS: u64 = 5_000;

/// The lifetime of the JWTs the component signs (Google accepts up to an hour).
pub const JWT_LIFETIME_S: u64 = 3_600;

/// A token this instance holds for a tier.
pub(super) struct Held {
    pub(super) token: SecretBytes,
    /// Temporary AWS credentials carried in `token` (web identity, container), parsed once
    /// for signing.
    aws: Option<crate::sigv4::Credentials>,
    issued_at_ms: u64,
    expires_at_ms: u64,
    renewable: bool,
}

impl Held {
    fn from_issued(issued: IssuedToken, wall: u64) -> Held {
        Held::new(issued.token, wall, wall.saturating_add(issued.ttl_ms), issued.renewable)
    }

    fn new(token: SecretBytes, issued_at_ms: u64, expires_at_ms: u64, renewable: bool) -> Held {
        Held { aws: aws_issued::decode(&token), token, issued_at_ms, expires_at_ms, renewable }
    }

    /// From then on, renew or replace it.
    fn refresh_at(&self) -> u64 {
        let lifetime = self.expires_at_ms.saturating_sub(self.issued_at_ms);
        self.expires_at_ms.saturating_sub((lifetime / 3).min(MAX_GRACE_MS))
    }
}

/// Why a tier has no credential for an attempt.
pub(super) enum CredentialError {
    /// Its login (or signature) just failed.
    Sent(Failure),
    /// A login that failed moments ago is the answer: nothing was sent.
    Reused(Failure),
}

/// How [`Provider::login_lease`] went.
enum LoginLease {
    /// This instance logs in (`None`: without a lease; shared state is off, failing, or
    /// the holder took too long).
    Mine(Option<LeaseHeld>),
    /// Another instance logged in meanwhile: its token.
    Shared(Held),
}

/// The credential state of one tier.
#[derive(Default)]
pub(super) struct TierAuth {
    pub(super) held: Option<Held>,
    /// When a 403 last made this tier log in again (monotonic ms).
    last_relogin_ms: Option<u64>,
    /// The digest of the token a 403 rejected: a shared copy of it is not taken up again.
    rejected: Option<[u8; 32]>,
    /// A login the backend refused (monotonic ms, its error): not sent again for
    /// [`RELOGIN_INTERVAL_MS`], so the n misses of a `get-many` do not send n logins
    /// that will be refused as the first was.
    refused: Option<(u64, Error)>,
    /// A login that failed transiently (monotonic ms, its failure): attempts that fell
    /// due before it take it as their answer instead of sending their own.
    failed: Option<(u64, Failure)>,
}

impl Provider {
    /// What tier `tier` of environment `env` presents on its next attempt;
    /// `None` when it holds no token (see [`Provider::ensure_credential`]).
    pub(super) fn presented(&self, env: usize, tier: usize) -> Option<Presented<'_>> {
        let state = &self.envs[env];
        match state.env.credential(tier)? {
            Credential::Token(token) => Some(Presented::Token(token)),
            Credential::Aws(keys) => Some(Presented::Aws(keys)),
            Credential::AppRole { .. }
            | Credential::VaultJwt { .. }
            | Credential::ServiceAccount(_)
            | Credential::Metadata
            | Credential::AzureClientSecret(_)
            | Credential::AzureManagedIdentity => {
                state.tiers[tier].auth.held.as_ref().map(|held| Presented::Token(&held.token))
            }
            Credential::AwsWebIdentity { .. } | Credential::AwsContainer { .. } | Credential::AwsInstance => {
                state.tiers[tier].auth.held.as_ref()?.aws.as_ref().map(Presented::Aws)
            }
        }
    }

    /// Makes sure the tier holds a token good for a while yet: one of its own,
    /// renewed; one another instance shared; or a new one. Fails as an attempt
    /// on that tier would (a refused login is a permission denial).
    pub(super) fn ensure_credential(&mut self, env: usize, tier: usize, ready_at_ms: u64, deadline_ms: u64, io: &mut Io<'_>) -> Result<(), CredentialError> {
        if !self.envs[env].env.spec.tiers[tier].auth.issues_tokens() || self.keep_held(env, tier, deadline_ms, io) {
            return Ok(());
        }
        if self.adopt_shared_token(env, tier, io) {
            return Ok(());
        }
        if let Some(failure) = self.earlier_failure(env, tier, ready_at_ms, io) {
            return Err(CredentialError::Reused(failure));
        }
        // One instance logs in while the others wait for its token (a cold start of many
        // instances must not cost one login each: a secret id may allow only so many uses).
        let lease = match self.login_lease(env, tier, deadline_ms, io) {
            LoginLease::Shared(held) => {
                self.envs[env].tiers[tier].auth.held = Some(held);
                return Ok(());
            }
            LoginLease::Mine(lease) => lease,
        };
        if let Some(lease) = &lease {
            // Another instance may have logged in, or been refused, and let go between our
            // look and our lease (the holder shares its answer before letting go).
            let answer = if self.adopt_shared_token(env, tier, io) {
                Some(Ok(()))
            } else {
                self.shared_refusal_answer(env, tier, io).map(|failure| Err(CredentialError::Reused(failure)))
            };
            if let Some(answer) = answer {
                self.release(lease, io);
                return answer;
            }
        }
        let outcome = self.log_in(env, tier, deadline_ms, io);
        if let Some(lease) = &lease {
            self.release(lease, io);
        }
        outcome.map_err(CredentialError::Sent)
    }

    /// Whether the held token serves as it is, or renewed. A renewal that
    /// fails transiently keeps a token that is still valid (try again next
    /// time); a refused one (403) leaves it to a new login.
    fn keep_held(&mut self, env: usize, tier: usize, deadline_ms: u64, io: &mut Io<'_>) -> bool {
        let wall = io.clock.wall_ms();
        let Some(held) = &self.envs[env].tiers[tier].auth.held else { return false };
        if wall < held.refresh_at() {
            return true;
        }
        if !held.renewable || wall >= held.expires_at_ms {
            return false;
        }
        match self.renew(env, tier, deadline_ms, io) {
            Ok(()) => true,
            Err(failure) => failure.transient,
        }
    }

    /// Takes up a token another instance shared, if there is a good one.
    fn adopt_shared_token(&mut self, env: usize, tier: usize, io: &mut Io<'_>) -> bool {
        let wall = io.clock.wall_ms();
        let Some(shared) = self.shared_token(env, tier, wall, io) else { return false };
        self.envs[env].tiers[tier].auth.held = Some(shared);
        true
    }

    /// A login failure that is already this attempt's answer, so none is sent:
    /// a refusal less than [`RELOGIN_INTERVAL_MS`] old (this instance's or a
    /// shared one), or a transient failure of a login made after the attempt
    /// fell due (it was waiting for that same login: n misses of one round must
    /// not send n logins to an auth endpoint that is down, nor count n failures
    /// on the breaker).
    fn earlier_failure(&mut self, env: usize, tier: usize, ready_at_ms: u64, io: &mut Io<'_>) -> Option<Failure> {
        let now = io.clock.now_ms();
        let auth = &self.envs[env].tiers[tier].auth;
        if let Some((at, error)) = &auth.refused {
            if now.saturating_sub(*at) < RELOGIN_INTERVAL_MS {
                return Some(Failure::permanent(error.clone()));
            }
        }
        if let Some((at, failure)) = &auth.failed {
            if ready_at_ms <= *at {
                return Some(failure.clone());
            }
        }
        self.shared_refusal_answer(env, tier, io)
    }

    /// Another instance's recent refusal of this login, remembered here too.
    fn shared_refusal_answer(&mut self, env: usize, tier: usize, io: &mut Io<'_>) -> Option<Failure> {
        let refusal = self.shared_refusal(env, tier, io)?;
        self.envs[env].tiers[tier].auth.refused = Some((io.clock.now_ms(), refusal.clone()));
        Some(Failure::permanent(refusal))
    }

    /// Logs in (or signs) and keeps, shares and logs what came of it. A
    /// refusal is remembered, and shared free of the ids an upstream may echo;
    /// a transient failure answers the attempts already waiting for it.
    fn log_in(&mut self, env: usize, tier: usize, deadline_ms: u64, io: &mut Io<'_>) -> Result<(), Failure> {
        let issued = self.obtain(env, tier, deadline_ms, io);
        let (now, wall) = (io.clock.now_ms(), io.clock.wall_ms());
        let method = self.envs[env].env.spec.tiers[tier].auth.method();
        match issued {
            Ok(issued) => {
                let held = Held::from_issued(issued, wall);
                // Published before the lease ends, so a waiter that sees it end finds the token.
                self.publish_token(env, tier, &held, io);
                let auth = &mut self.envs[env].tiers[tier].auth;
                (auth.held, auth.refused, auth.failed) = (Some(held), None, None);
                self.log_login(env, tier, method, None);
                Ok(())
            }
            Err(failure) => {
                let auth = &mut self.envs[env].tiers[tier].auth;
                auth.held = None;
                if failure.transient {
                    auth.failed = Some((now, failure.clone()));
                } else {
                    auth.refused = Some((now, failure.error.clone()));
                    if let Error::PermissionDenied(message) = self.redact_for_tier(env, tier, failure.error.clone()) {
                        self.publish_refusal(env, tier, &message, io);
                    }
                }
                self.log_login(env, tier, method, Some(&failure.error));
                Err(failure)
            }
        }
    }

    /// Takes the tier's login lease, or waits (polling shared state) while
    /// another instance holds it: up to its expiry, and never past half of
    /// what is left of the deadline, so a slow holder leaves time for our own
    /// login. Without shared state every instance logs in for itself.
    fn login_lease(&mut self, env: usize, tier: usize, deadline_ms: u64, io: &mut Io<'_>) -> LoginLease {
        let Some((id, identity)) = self.token_ids(env, tier) else { return LoginLease::Mine(None) };
        let (lease_id, lease_identity) = (format!("{id}-login"), [&identity[..], b"|login"].concat());
        let start = io.clock.now_ms();
        let give_up = start.saturating_add(deadline_ms.saturating_sub(start) / 2);
        loop {
            match self.lease_at(env, lease_id.clone(), lease_identity.clone(), io) {
                Lease::Fetch(held) => return LoginLease::Mine(held),
                Lease::HeldUntil(until_wall) => {
                    let now = io.clock.now_ms();
                    if now >= give_up || io.clock.wall_ms() >= until_wall {
                        return LoginLease::Mine(None);
                    }
                    io.clock.sleep_ms(LEASE_POLL_MS.min(give_up - now));
                    let wall = io.clock.wall_ms();
                    if let Some(held) = self.shared_token(env, tier, wall, io) {
                        return LoginLease::Shared(held);
                    }
                }
            }
        }
    }

    /// After a 403 on tier `tier` to an attempt that presented the issued token
    /// whose digest is `sent`: whether the read should be retried once (the
    /// token may have been revoked or have lapsed early). The retry logs in
    /// first, unless another read's 403 already had the token replaced.
    pub(super) fn relogin_after_denial(&mut self, env: usize, tier: usize, sent: Option<[u8; 32]>, now_ms: u64, wall_ms: u64) -> bool {
        if !self.envs[env].env.spec.tiers[tier].auth.issues_tokens() {
            return false;
        }
        let Some(sent) = sent else { return false };
        let auth = &mut self.envs[env].tiers[tier].auth;
        // Reads in flight together all present the revoked token: every one of
        // them is retried, and the first one's login serves the rest.
        if auth.rejected == Some(sent) {
            return true;
        }
        let Some(held) = &auth.held else { return false };
        if sha256(&[held.token.expose()]) != sent {
            return true; // already replaced by a newer token
        }
        // A token issued moments ago (by this instance or, through shared state, by
        // another) was not revoked: the 403 is about the secret. Under Spin every
        // request is a fresh instance, so this, not `last_relogin_ms`, is what keeps
        // a secret the role may not read from costing logins on every read.
        let fresh = wall_ms.saturating_sub(held.issued_at_ms) < RELOGIN_INTERVAL_MS;
        let recently = auth.last_relogin_ms.is_some_and(|at| now_ms.saturating_sub(at) < RELOGIN_INTERVAL_MS);
        if fresh || recently {
            return false;
        }
        auth.held = None;
        auth.rejected = Some(sent);
        auth.last_relogin_ms = Some(now_ms);
        true
    }

    /// The digest of the issued token tier `tier` presents now (what a 403 is
    /// later matched against), if it holds one.
    pub(super) fn presented_digest(&self, env: usize, tier: usize) -> Option<[u8; 32]> {
        let held = self.envs[env].tiers[tier].auth.held.as_ref()?;
        self.envs[env].env.spec.tiers[tier].auth.issues_tokens().then(|| sha256(&[held.token.expose()]))
    }

    /// The shared-state id and identity of a tier's token: bound to the
    /// environment, the tier, its backend and URL, the method, and who logs in
    /// (a digest of the role id, the key id, …), so a changed credential never
    /// picks up the token of the old one.
    pub(super) fn token_ids(&self, env: usize, tier: usize) -> Option<(String, Vec<u8>)> {
        let ready = self.shared.usable()?;
        let state = &self.envs[env];
        let spec = &state.env.spec.tiers[tier];
        let who = match state.env.credential(tier)? {
            Credential::AppRole { role_id, secret_id } => sha256(&[role_id.expose(), b"\0", secret_id.expose()]),
            // The role (in `place`, through the spec) and the JWT: a rotated JWT logs in anew.
            Credential::VaultJwt { jwt } => sha256(&[jwt.expose()]),
            Credential::AwsWebIdentity { token } => sha256(&[token.expose()]),
            Credential::AwsContainer { uri, token } => sha256(&[format!("{uri:?}").as_bytes(), b"\0", token.as_ref().map_or(&[][..], |t| t.expose())]),
            Credential::AwsInstance => sha256(&[format!("{:?}", spec.auth).as_bytes()]),
            Credential::ServiceAccount(key) => sha256(&[key.client_email.as_bytes(), b"\0", key.private_key_id.as_bytes()]),
            Credential::Metadata | Credential::AzureManagedIdentity => sha256(&[format!("{:?}", spec.auth).as_bytes()]),
            // `spec.auth` names the tenant, client id and authority.
            Credential::AzureClientSecret(secret) => sha256(&[format!("{:?}", spec.auth).as_bytes(), b"\0", secret.expose()]),
            Credential::Token(_) | Credential::Aws(_) => return None,
        };
        let place = format!("{:?}|{:?}|{}", spec.backend, spec.url, spec.auth.method());
        let tier_byte = [u8::try_from(tier).unwrap_or(u8::MAX)];
        let parts: [&[u8]; 4] = [state.env.spec.name.as_bytes(), &tier_byte, place.as_bytes(), &who];
        Some((ready.key.entry_id("token", &parts), seal::identity("token", &parts)))
    }

    /// A token another instance shared, if it is good for a while yet and is
    /// not the one a 403 just rejected.
    fn shared_token(&mut self, env: usize, tier: usize, wall: u64, io: &mut Io<'_>) -> Option<Held> {
        let (id, identity) = self.token_ids(env, tier)?;
        let sealed = self.store_read(io, |store| store.get(&id))??;
        let record = self.open_record(env, &identity, &sealed, TokenRecord::decode)?;
        let held = Held::new(SecretBytes::new(record.token), record.issued_at_ms, record.expires_at_ms, record.renewable);
        let rejected = self.envs[env].tiers[tier].auth.rejected;
        let usable = wall < held.refresh_at() && rejected != Some(sha256(&[held.token.expose()]));
        usable.then_some(held)
    }

    /// Shares a token this instance obtained (best effort: a store failure
    /// only means the next instance logs in too).
    fn publish_token(&mut self, env: usize, tier: usize, held: &Held, io: &mut Io<'_>) {
        let Some((id, identity)) = self.token_ids(env, tier) else { return };
        let record = TokenRecord {
            issued_at_ms: held.issued_at_ms,
            expires_at_ms: held.expires_at_ms,
            renewable: held.renewable,
            token: held.token.expose().to_vec(),
        };
        let mut plain = record.encode();
        let nonce = super::shared::nonce(io);
        let Some(ready) = self.shared.usable() else { return };
        let sealed = ready.key.seal(&identity, &plain, nonce);
        plain.iter_mut().for_each(|b| *b = 0);
        let _ = self.store_write(io, |store| store.set(&id, &sealed));
    }

    /// `error` with every credential of the tier taken out of its text (an
    /// upstream message must never carry one back, even from a proxy that
    /// echoes request headers or bodies into its error page).
    pub(super) fn redact_for_tier(&self, env: usize, tier: usize, error: Error) -> Error {
        let state = &self.envs[env];
        // Errors to redact come from attempts, which `fetch_since` lets start only once the
        // credentials are read; were one not, nothing was sent with it to echo.
        debug_assert!(state.env.credential(tier).is_some(), "redacting before the credentials were read");
        let mut error = match state.env.credential(tier) {
            Some(credential) => redact_credential(credential, error),
            None => error,
        };
        if let Some(held) = &state.tiers[tier].auth.held {
            error = error.redact(held.token.expose());
        }
        error
    }
}

/// `error` with `credential`'s material taken out of its text.
fn redact_credential(credential: &Credential, error: Error) -> Error {
    match credential {
        Credential::Token(token) => error.redact(token.expose()),
        Credential::AppRole { role_id, secret_id } => error.redact(role_id.expose()).redact(secret_id.expose()),
        Credential::VaultJwt { jwt } | Credential::AwsWebIdentity { token: jwt } => error.redact(jwt.expose()),
        Credential::AwsContainer { token: Some(token), .. } => error.redact(token.expose()),
        Credential::AwsContainer { token: None, .. } | Credential::AwsInstance => error,
        Credential::Aws(keys) => {
            let error = error.redact(keys.secret_access_key.as_bytes());
            match &keys.session_token {
                Some(token) => error.redact(token.as_bytes()),
                None => error,
            }
        }
        Credential::AzureClientSecret(secret) => error.redact(secret.expose()),
        Credential::ServiceAccount(_) | Credential::Metadata | Credential::AzureManagedIdentity => error,
    }
}
