//! The fake's GCP metadata server: `GET /computeMetadata/v1/instance/service-accounts/default/token`
//! hands out the configured access token to requests that carry `Metadata-Flavor: Google` (as
//! Google's server does, so a stray browser or SSRF cannot read it), and counts the fetches.
//! Every answer under `/computeMetadata/` carries `Metadata-Flavor: Google` (added by the
//! server), as Google's does.

use serde_json::json;

use super::{Answer, FakeBackend, Store};

/// The token the metadata server hands out, if it is enabled.
#[derive(Default)]
pub(crate) struct Metadata {
    token: Option<(String, u64)>,
    fetches: u64,
}

const TOKEN_PATH: &str = "instance/service-accounts/default/token";

/// Answers `GET /computeMetadata/v1/{rest}`.
pub(super) fn answer(store: &mut Store, method: &str, rest: &str, header: impl Fn(&str) -> Option<String>) -> Answer {
    if rest != TOKEN_PATH {
        return Answer::json(404, json!({"error": "not found"}));
    }
    store.metadata.fetches += 1;
    if method != "GET" {
        return Answer::json(405, json!({"error": "method not allowed"}));
    }
    if header("metadata-flavor").as_deref() != Some("Google") {
        return Answer::json(403, json!({"error": "Missing Metadata-Flavor:Google header"}));
    }
    match &store.metadata.token {
        Some((token, expires_in)) => {
            Answer::json(200, json!({"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}))
        }
        None => Answer::json(404, json!({"error": "no service account"})),
    }
}

impl FakeBackend {
    /// Serves `token` from the metadata endpoint, valid for `expires_in` seconds (as reported;
    /// the fake's GCP side checks tokens with [`FakeBackend::expect_gcp_token`]).
    pub fn enable_metadata(&self, token: &str, expires_in: u64) {
        self.shared.state().store.metadata.token = Some((token.to_string(), expires_in));
    }

    /// How many token requests the metadata endpoint received.
    pub fn metadata_fetches(&self) -> u64 {
        self.shared.state().store.metadata.fetches
    }
}
