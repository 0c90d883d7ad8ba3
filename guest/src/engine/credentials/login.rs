//! Talking to a tier's auth endpoint: obtaining a new token (a login, a
//! metadata or STS exchange, IMDSv2's three requests, a signature), renewing
//! a Vault token, and the one-request exchange they share with reads in
//! flight (whose answers are stashed for the fetch loop).

use crate::prelude::*;
use super::super::{Io, Outbound, Provider};
use super::{Held, JWT_LIFETIME_S};
use crate::auth::{approle, aws_issued, azure, metadata, service_account, vault_jwt, AuthSpec, Credential, IssuedToken};
use crate::backend::Failure;
use crate::error::Error;
use crate::http::{HttpRequest, HttpResponse};
use crate::secret::SecretBytes;

impl Provider {
    /// A new token: a login, a metadata-server fetch, or a signature.
    pub(super) fn obtain(&mut self, env: usize, tier: usize, deadline_ms: u64, io: &mut Io<'_>) -> Result<IssuedToken, Failure> {
        let spec = &self.envs[env].env.spec.tiers[tier];
        let Some(credential) = self.envs[env].env.credential(tier) else {
            return Err(Failure::permanent(Error::backend(None, "internal: the tier's credential was not read")));
        };
        let request = match (&spec.auth, credential, &spec.backend) {
            (AuthSpec::AppRole { mount, .. }, Credential::AppRole { role_id, secret_id }, crate::config::BackendSpec::Vault { namespace, .. }) => {
                approle::login_request(&spec.url, mount, namespace.as_deref(), role_id, secret_id)
            }
            (AuthSpec::VaultJwt { role, mount, .. }, Credential::VaultJwt { jwt }, crate::config::BackendSpec::Vault { namespace, .. }) => {
                vault_jwt::login_request(&spec.url, mount, namespace.as_deref(), role, jwt)
            }
            (AuthSpec::Metadata { url }, Credential::Metadata, _) => metadata::request(url),
            (AuthSpec::AwsWebIdentity { role_arn, session_name, sts_url, .. }, Credential::AwsWebIdentity { token }, crate::config::BackendSpec::Aws { region }) => {
                let regional = crate::http::BaseUrl::parse(&format!("https://sts.{region}.amazonaws.com"));
                let Some(sts) = sts_url.clone().or(regional.ok()) else {
                    return Err(Failure::permanent(Error::Config(format!("no STS endpoint for region `{region}`"))));
                };
                aws_issued::web_identity_request(&sts, role_arn, session_name, token)
            }
            (AuthSpec::AwsContainer { .. }, Credential::AwsContainer { uri, token }, _) => aws_issued::container_request(uri, token.as_ref()),
            (AuthSpec::AwsInstance { url }, Credential::AwsInstance, _) => {
                // IMDSv2 only: a session token first, then the role, with it.
                let url = url.clone();
                let wall = io.clock.wall_ms();
                let answer = self.exchange(env, aws_issued::imds_token_request(&url), deadline_ms, io)?;
                let session = SecretBytes::new(aws_issued::imds_text(&answer, answer.retry_after_ms_at(wall), "session token")?.into_bytes());
                let answer = self.exchange(env, aws_issued::imds_request(&url, &session, None), deadline_ms, io)?;
                let role = aws_issued::imds_text(&answer, answer.retry_after_ms_at(wall), "instance role")?;
                aws_issued::imds_request(&url, &session, Some(&role))
            }
            (AuthSpec::AzureClientSecret { tenant, client_id, authority, .. }, Credential::AzureClientSecret(secret), _) => {
                azure::client_credentials_request(authority, tenant, client_id, secret)
            }
            (AuthSpec::AzureManagedIdentity { url, client_id }, Credential::AzureManagedIdentity, _) => {
                azure::managed_identity_request(url, client_id.as_deref())
            }
            (AuthSpec::ServiceAccount { .. }, Credential::ServiceAccount(key), _) => {
                let now_s = io.clock.wall_ms() / 1_000;
                let random = &mut *io.random;
                return service_account::self_signed_jwt(key, service_account::AUDIENCE, now_s, JWT_LIFETIME_S, &mut || random.next_u64())
                    .map_err(|why| Failure::permanent(Error::backend(None, format!("the service-account token could not be signed: {why}"))));
            }
            _ => return Err(Failure::permanent(Error::backend(None, "internal: credential does not match its method"))),
        };
        let response = self.exchange(env, request, deadline_ms, io)?;
        let wall = io.clock.wall_ms();
        match &self.envs[env].env.spec.tiers[tier].auth {
            AuthSpec::Metadata { .. } => metadata::response(&response),
            auth @ AuthSpec::VaultJwt { .. } => vault_jwt::response(&response, response.retry_after_ms_at(wall), auth.method()),
            AuthSpec::AwsWebIdentity { .. } => aws_issued::web_identity_response(&response, response.retry_after_ms_at(wall), wall),
            AuthSpec::AwsContainer { .. } | AuthSpec::AwsInstance { .. } => aws_issued::container_response(&response, response.retry_after_ms_at(wall), wall),
            AuthSpec::AzureClientSecret { .. } => azure::token_response(azure::Issuer::Entra, &response, response.retry_after_ms_at(wall)),
            AuthSpec::AzureManagedIdentity { .. } => azure::token_response(azure::Issuer::Imds, &response, response.retry_after_ms_at(wall)),
            _ => approle::response(&response, response.retry_after_ms_at(wall)),
        }
    }

    /// Renews the held Vault token (`renew-self`). A renewal that gives less
    /// lifetime than the token had (Vault caps it at the token's max TTL) marks
    /// it not renewable, so the next refresh logs in instead of renewing ever
    /// shorter leases down to the cap.
    pub(super) fn renew(&mut self, env: usize, tier: usize, deadline_ms: u64, io: &mut Io<'_>) -> Result<(), Failure> {
        let spec = &self.envs[env].env.spec.tiers[tier];
        let namespace = match &spec.backend {
            crate::config::BackendSpec::Vault { namespace, .. } => namespace.clone(),
            _ => None,
        };
        let Some(held) = &self.envs[env].tiers[tier].auth.held else { return Ok(()) };
        let lifetime = held.expires_at_ms.saturating_sub(held.issued_at_ms);
        let request = approle::renew_request(&spec.url, namespace.as_deref(), &held.token);
        let response = self.exchange(env, request, deadline_ms, io)?;
        let wall = io.clock.wall_ms();
        let issued = approle::response(&response, response.retry_after_ms_at(wall));
        let method = "approle_renew";
        match issued {
            Ok(issued) => {
                let capped = issued.ttl_ms < lifetime;
                let mut held = Held::from_issued(issued, wall);
                held.renewable &= !capped;
                self.publish_token(env, tier, &held, io);
                self.envs[env].tiers[tier].auth.held = Some(held);
                self.log_login(env, tier, method, None);
                Ok(())
            }
            Err(failure) => {
                self.log_login(env, tier, method, Some(&failure.error));
                Err(failure)
            }
        }
    }

    /// One request to the tier's auth endpoint, waited for; answers of other
    /// requests that finish meanwhile are kept for the fetch loop.
    fn exchange(&mut self, env: usize, request: HttpRequest, deadline_ms: u64, io: &mut Io<'_>) -> Result<HttpResponse, Failure> {
        let policy = self.envs[env].env.spec.policy;
        let now = io.clock.now_ms();
        if now >= deadline_ms {
            return Err(Failure::transient(Error::Timeout { deadline_ms: policy.deadline_ms }, None));
        }
        let outbound = Outbound {
            request,
            timeout_ms: policy.attempt_timeout_ms.min(deadline_ms - now),
            max_body_bytes: policy.max_body_bytes,
        };
        let ticket = io.transport.start(outbound);
        loop {
            let answers = io.transport.wait(None);
            let at = io.clock.now_ms();
            if answers.is_empty() {
                return Err(Failure::transient(Error::backend(None, "transport lost the login request"), None));
            }
            let mut mine = None;
            for (t, answer) in answers {
                if t == ticket {
                    mine = Some(answer);
                } else {
                    self.stash.push((t, answer, at));
                }
            }
            if let Some(answer) = mine {
                return answer.map_err(|error| Failure {
                    transient: error.is_transient(),
                    error: error.into_error(policy.deadline_ms),
                    retry_after_ms: None,
                });
            }
        }
    }
}
