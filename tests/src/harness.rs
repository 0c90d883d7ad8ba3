//! One-line setup for integration tests: a fake backend, the real component in the wasmtime
//! host, and a manual clock that moves the component's monotonic time forward without sleeping.

use std::time::Duration;

use edge_secrets_host::{Client, ManualClock, Request, Runtime, RuntimeOptions};

use crate::{FakeBackend, PolicyBuilder};

/// Host options for tests: compiled artifacts shared through a cache folder in the system temp
/// dir (compiling the component with a debug-built Cranelift takes seconds; loading ~1 ms).
pub fn test_options() -> RuntimeOptions {
    RuntimeOptions::default()
        .cache_dir(Some(std::env::temp_dir().join("edge-secrets-test-artifacts")))
        .call_timeout(Duration::from_secs(30))
}

/// Fast retries so failure tests finish quickly; tests override what they are about.
pub fn quick_defaults() -> PolicyBuilder {
    PolicyBuilder::new()
        .set_default("retry.base_delay_ms", 1)
        .set_default("retry.max_delay_ms", 5)
        .set_default("timeouts.attempt_ms", 2_000)
        .set_default("timeouts.deadline_ms", 5_000)
}

/// A running component wired to a fake backend.
pub struct Harness {
    pub backend: FakeBackend,
    pub clock: ManualClock,
    pub runtime: Runtime,
    pub client: Client,
}

impl Harness {
    /// Starts the fake backend, lets `configure` build the policy against its URL, then
    /// starts the component with that configuration.
    pub fn start(configure: impl FnOnce(PolicyBuilder, &str) -> PolicyBuilder) -> Harness {
        let backend = FakeBackend::start();
        let policy = configure(quick_defaults(), &backend.url());
        let clock = ManualClock::new();
        let options = test_options().clock(clock.clone());
        let runtime = Runtime::new(policy.config(), options).expect("start the component");
        let client = runtime.client().expect("instantiate the component");
        Harness { backend, clock, runtime, client }
    }

    /// A Vault environment `prod` with token `t-prod` and one secret `app/db`.
    pub fn vault() -> Harness {
        let h = Harness::start(|p, url| p.vault("prod", url, "t-prod"));
        h.backend.expect_vault_token("t-prod");
        h.backend.put_vault("app/db", 1, &[("value", "pw-one"), ("user", "admin")]);
        h
    }

    /// Reads `name` from `env`.
    pub fn get(&mut self, env: &str, name: &str) -> Result<edge_secrets_host::Secret, edge_secrets_host::Error> {
        self.client.get(&Request::new(env, name))
    }
}

/// The component's error from a read that must have failed; panics (naming only the version,
/// never the value) if it succeeded or failed in the host.
pub fn secret_error(
    result: Result<edge_secrets_host::Secret, edge_secrets_host::Error>,
) -> edge_secrets_host::SecretError {
    match result {
        Err(edge_secrets_host::Error::Secret(e)) => e,
        Err(other) => panic!("expected a component error, got host error {other}"),
        Ok(secret) => panic!("expected an error, got a secret (version {})", secret.version),
    }
}
