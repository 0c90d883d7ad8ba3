//! The fake's Vault AppRole auth: `POST /v1/auth/{mount}/login` and
//! `POST /v1/auth/token/renew-self`, and the issued tokens KV reads then accept.
//!
//! A small model of Vault's: a login with the right ids issues a fresh token (`hvs.fake-<n>`)
//! valid for the role's TTL of real time; a renewal of a live renewable token extends it by the
//! TTL from now; an expired, revoked or unknown token gets 403 `permission denied`. A token
//! issued to a login that carried `X-Vault-Namespace` is only valid with that same namespace
//! (Vault's namespaced tokens). Login bodies are never recorded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::vault::error;
use super::{Answer, FakeBackend, Store};

/// One mount's role: what a login must present and what its tokens get.
struct Role {
    presents: Presents,
    ttl: Duration,
    renewable: bool,
}

/// What a login at a mount presents: AppRole's ids, or (Kubernetes and JWT auth) a role name
/// and a JWT.
enum Presents {
    AppRole { role_id: String, secret_id: String },
    Jwt { role: String, jwt: String },
}

/// A token the fake issued. The TTL is copied from the role, so re-enabling a mount does not
/// change tokens already out.
struct Issued {
    namespace: Option<String>,
    ttl: Duration,
    renewable: bool,
    /// `None`: a zero TTL, a token that never expires (`lease_duration: 0`).
    expires: Option<Instant>,
}

impl Issued {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now < at)
    }

    /// Whether a request with namespace header `namespace` may use it.
    fn usable_in(&self, namespace: Option<&str>) -> bool {
        self.namespace.is_none() || self.namespace.as_deref() == namespace
    }
}

/// AppRole state, kept in the fake's [`Store`].
#[derive(Default)]
pub(crate) struct AppRole {
    /// Mount → role.
    roles: BTreeMap<String, Role>,
    /// Token → what it was issued with. Revoking removes it: unknown and revoked are alike.
    tokens: BTreeMap<String, Issued>,
    issued: u64,
    logins: u64,
    renews: u64,
}

impl AppRole {
    /// Whether reads must present an issued (or the static expected) token.
    pub(crate) fn enabled(&self) -> bool {
        !self.roles.is_empty()
    }

    /// Whether `token` is a live issued token usable with namespace header `namespace`.
    pub(crate) fn accepts(&self, token: Option<&str>, namespace: Option<&str>) -> bool {
        token
            .and_then(|t| self.tokens.get(t))
            .is_some_and(|t| t.live(Instant::now()) && t.usable_in(namespace))
    }

    /// Counts a received request (faulted ones included, like the request count).
    pub(crate) fn count(&mut self, path_and_query: &str) {
        let path = path_and_query.split('?').next().unwrap_or("");
        match route(path.strip_prefix("/v1/auth/").unwrap_or("")) {
            Route::Login(_) => self.logins += 1,
            Route::Renew => self.renews += 1,
            Route::Other => {}
        }
    }

    pub(crate) fn reset_counts(&mut self) {
        (self.logins, self.renews) = (0, 0);
    }

    /// Back to no AppRole: no roles, no tokens (the counts stay).
    pub(crate) fn disable(&mut self) {
        self.roles.clear();
        self.tokens.clear();
    }
}

enum Route<'a> {
    Login(&'a str),
    Renew,
    Other,
}

/// `rest` is the path after `/v1/auth/`. Mounts may nest (`approle/team-a`).
fn route(rest: &str) -> Route<'_> {
    if rest == "token/renew-self" {
        return Route::Renew;
    }
    match rest.strip_suffix("/login") {
        Some(mount) if !mount.is_empty() => Route::Login(mount),
        _ => Route::Other,
    }
}

/// `rest` is the path after `/v1/auth/`; `body` the request body (never recorded).
pub(crate) fn answer(
    store: &mut Store,
    method: &str,
    rest: &str,
    body: &[u8],
    header: impl Fn(&str) -> Option<String>,
) -> Answer {
    let namespace = header("x-vault-namespace");
    // As for reads: a namespace the fake expects must be on every Vault request.
    let namespace_ok = store
        .vault_namespace
        .as_ref()
        .is_none_or(|n| namespace.as_ref() == Some(n));
    match route(rest) {
        Route::Other => error(
            404,
            &[&format!(
                "no handler for route \"auth/{rest}\". route entry not found."
            )],
        ),
        _ if method != "POST" => error(405, &["unsupported operation"]),
        _ if !namespace_ok => error(403, &["permission denied"]),
        Route::Login(mount) => login(&mut store.approle, mount, body, namespace),
        Route::Renew => renew(&mut store.approle, header("x-vault-token"), namespace),
    }
}

fn login(state: &mut AppRole, mount: &str, body: &[u8], namespace: Option<String>) -> Answer {
    let Some(role) = state.roles.get(mount) else {
        return error(
            404,
            &[&format!(
                "no handler for route \"auth/{mount}/login\". route entry not found."
            )],
        );
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(400, &["failed to parse JSON input"]);
    };
    match &role.presents {
        Presents::AppRole { role_id, secret_id } => {
            let (Some(given_id), Some(given_secret)) =
                (body["role_id"].as_str(), body["secret_id"].as_str())
            else {
                return error(400, &["missing role_id or secret_id"]);
            };
            if given_id != role_id || given_secret != secret_id {
                return error(400, &["invalid role or secret ID"]);
            }
        }
        // As Vault's Kubernetes auth: an unknown role is a 400, a token that does not
        // validate a 403.
        Presents::Jwt { role: name, jwt } => {
            let (Some(given_role), Some(given_jwt)) = (body["role"].as_str(), body["jwt"].as_str())
            else {
                return error(400, &["missing role or jwt"]);
            };
            if given_role != name {
                return error(400, &[&format!("invalid role name \"{given_role}\"")]);
            }
            if given_jwt != jwt {
                return error(403, &["permission denied"]);
            }
        }
    }
    let (ttl, renewable) = (role.ttl, role.renewable);
    state.issued += 1;
    let token = format!("hvs.fake-{}", state.issued);
    let issued = Issued {
        namespace,
        ttl,
        renewable,
        expires: expiry(ttl),
    };
    let answer = Answer::json(200, auth(&token, &issued));
    state.tokens.insert(token, issued);
    answer
}

fn renew(state: &mut AppRole, token: Option<String>, namespace: Option<String>) -> Answer {
    let now = Instant::now();
    let found = token
        .as_ref()
        .and_then(|t| Some((t, state.tokens.get_mut(t)?)));
    let Some((token, issued)) =
        found.filter(|(_, i)| i.live(now) && i.usable_in(namespace.as_deref()))
    else {
        return error(403, &["permission denied"]);
    };
    if !issued.renewable {
        return error(400, &["lease is not renewable"]);
    }
    issued.expires = expiry(issued.ttl);
    Answer::json(200, auth(token, issued))
}

fn expiry(ttl: Duration) -> Option<Instant> {
    (!ttl.is_zero()).then(|| Instant::now() + ttl)
}

/// What Vault answers a login or renewal with (the fields a client may read, fixed values
/// for the rest).
fn auth(token: &str, issued: &Issued) -> Value {
    json!({
        "request_id": "00000000-0000-4000-8000-000000000001",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": null,
        "auth": {
            "client_token": token,
            "accessor": "fake-accessor",
            "policies": ["default"],
            "token_policies": ["default"],
            "metadata": { "role_name": "fake" },
            "lease_duration": issued.ttl.as_secs(),
            "renewable": issued.renewable,
            "entity_id": "",
            "token_type": "service",
            "orphan": true,
        },
    })
}

impl FakeBackend {
    /// Enables AppRole at auth mount `mount` (e.g. `approle`; calling again replaces the role).
    /// A login presenting `role_id` and `secret_id` gets a fresh token valid for `ttl` of real
    /// time (zero: never expires, `lease_duration: 0`); `renewable` says whether `renew-self`
    /// extends it. From then on Vault reads accept a live issued token, or the token of
    /// [`FakeBackend::expect_vault_token`] if set, and nothing else.
    ///
    /// Panics if `ttl` is not whole seconds: Vault's `lease_duration` is in seconds, and a
    /// rounded one would tell the component a lifetime the fake does not keep.
    pub fn enable_approle(
        &self,
        mount: &str,
        role_id: &str,
        secret_id: &str,
        ttl: Duration,
        renewable: bool,
    ) {
        let presents = Presents::AppRole {
            role_id: role_id.to_owned(),
            secret_id: secret_id.to_owned(),
        };
        self.enable_login(mount, presents, ttl, renewable);
    }

    /// Enables Kubernetes or JWT auth at `mount` (e.g. `kubernetes`): a login presenting role
    /// `role` and exactly `jwt` gets a token as for [`FakeBackend::enable_approle`].
    pub fn enable_jwt_auth(&self, mount: &str, role: &str, jwt: &str, ttl: Duration, renewable: bool) {
        let presents = Presents::Jwt {
            role: role.to_owned(),
            jwt: jwt.to_owned(),
        };
        self.enable_login(mount, presents, ttl, renewable);
    }

    fn enable_login(&self, mount: &str, presents: Presents, ttl: Duration, renewable: bool) {
        assert!(
            ttl.subsec_nanos() == 0,
            "enable_approle: ttl must be whole seconds"
        );
        assert!(
            !mount.is_empty() && mount != "token",
            "enable_approle: mount {mount:?} is not usable"
        );
        let role = Role {
            presents,
            ttl,
            renewable,
        };
        self.state()
            .store
            .approle
            .roles
            .insert(mount.to_owned(), role);
    }

    /// Revokes every token issued so far: reads and renewals with them get 403, and only a new
    /// login helps.
    pub fn revoke_tokens(&self) {
        self.state().store.approle.tokens.clear();
    }

    /// `POST /v1/auth/{mount}/login` requests received (faulted ones included) since start or
    /// [`FakeBackend::reset_counts`].
    pub fn login_count(&self) -> u64 {
        self.state().store.approle.logins
    }

    /// `POST /v1/auth/token/renew-self` requests received (faulted ones included) since start
    /// or [`FakeBackend::reset_counts`].
    pub fn renew_count(&self) -> u64 {
        self.state().store.approle.renews
    }
}

#[cfg(test)]
mod tests;
