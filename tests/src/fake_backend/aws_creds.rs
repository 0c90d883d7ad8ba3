//! The fake's AWS credential endpoints, as AWS documents them: STS
//! `AssumeRoleWithWebIdentity` (`POST /`, form-encoded, answered in XML; unsigned), the
//! ECS / EKS Pod Identity container endpoint (`GET /v1/credentials` with `Authorization`,
//! answered in JSON), and EC2's IMDSv2 (`PUT /latest/api/token` with a TTL header, then
//! `GET /latest/meta-data/iam/security-credentials/[role]` presenting the token; a request
//! without one gets 401, as on an instance that requires IMDSv2). Both hand out the credentials a test configured (in the tests, real
//! temporary credentials moto issued, so the reads that follow are checked by moto), valid for
//! an hour from the request. Request bodies and tokens are never recorded.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::json;

use super::{form, Answer, FakeBackend, Store};

/// What the endpoints accept and hand out.
#[derive(Default)]
pub(crate) struct AwsCreds {
    /// (role ARN, accepted web identity token).
    sts: Option<(String, String)>,
    /// The container endpoint's accepted authorization token.
    container_token: Option<String>,
    /// Access key id, secret, session token.
    credentials: Option<(String, String, String)>,
    /// The instance role IMDS reports, when enabled.
    imds_role: Option<String>,
    imds_sessions: Vec<String>,
    pub(crate) sts_calls: u64,
    pub(crate) container_calls: u64,
    pub(crate) imds_calls: u64,
}

/// Whether a request is STS's (`POST /` with an `Action`).
pub(super) fn is_sts(method: &str, path: &str, body: &[u8]) -> bool {
    method == "POST" && path == "/" && body.starts_with(b"Action=")
}

/// `AssumeRoleWithWebIdentity`.
pub(super) fn sts(store: &mut Store, body: &[u8]) -> Answer {
    store.aws_creds.sts_calls += 1;
    let form = form::parse(&String::from_utf8_lossy(body));
    let param = |name: &str| form.get(name).cloned();
    if param("Action").as_deref() != Some("AssumeRoleWithWebIdentity") || param("Version").as_deref() != Some("2011-06-15") {
        return xml_error(400, "InvalidAction", "Could not find operation");
    }
    let state = &store.aws_creds;
    let (Some((role, token)), Some(credentials)) = (&state.sts, &state.credentials) else {
        return xml_error(400, "InvalidIdentityToken", "No OpenIDConnect provider found in your account");
    };
    if param("RoleArn").as_deref() != Some(role) || param("RoleSessionName").is_none() {
        return xml_error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
    }
    if param("WebIdentityToken").as_deref() != Some(token) {
        return xml_error(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider");
    }
    let (id, secret, session) = credentials;
    let xml = format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>\
         <Credentials><SessionToken>{}</SessionToken><SecretAccessKey>{}</SecretAccessKey><Expiration>{}</Expiration>\
         <AccessKeyId>{id}</AccessKeyId></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
        escape(session),
        escape(secret),
        in_an_hour()
    );
    Answer { status: 200, body: Bytes::from(xml), retry_after: None }
}

/// `GET /v1/credentials`.
pub(super) fn container(store: &mut Store, authorization: Option<String>) -> Answer {
    store.aws_creds.container_calls += 1;
    let state = &store.aws_creds;
    match (&state.container_token, &state.credentials) {
        (Some(expected), Some((id, secret, session))) if authorization.as_ref() == Some(expected) => Answer::json(
            200,
            json!({"AccessKeyId": id, "SecretAccessKey": secret, "Token": session, "Expiration": in_an_hour(), "RoleArn": "arn:aws:iam::123456789012:role/pod"}),
        ),
        _ => Answer::json(403, json!({"Message": "Unauthorized"})),
    }
}

/// IMDSv2: `rest` is the path after `/latest/`.
pub(super) fn imds(store: &mut Store, method: &str, rest: &str, header: impl Fn(&str) -> Option<String>) -> Answer {
    let state = &mut store.aws_creds;
    state.imds_calls += 1;
    let Some(role) = state.imds_role.clone() else { return Answer::json(404, json!({"error": "not found"})) };
    if rest == "api/token" {
        if method != "PUT" || header("x-aws-ec2-metadata-token-ttl-seconds").and_then(|t| t.parse::<u64>().ok()).is_none_or(|t| t == 0 || t > 21_600) {
            return Answer::json(400, json!({"error": "bad token request"}));
        }
        let session = format!("imds-session-{}", state.imds_calls);
        state.imds_sessions.push(session.clone());
        return Answer { status: 200, body: Bytes::from(session), retry_after: None };
    }
    if !header("x-aws-ec2-metadata-token").is_some_and(|t| state.imds_sessions.contains(&t)) {
        return Answer::json(401, json!({"error": "IMDSv2 token required"}));
    }
    match rest.strip_prefix("meta-data/iam/security-credentials/") {
        Some("") => Answer { status: 200, body: Bytes::from(role), retry_after: None },
        Some(asked) if asked == role => match &state.credentials {
            Some((id, secret, session)) => Answer::json(
                200,
                json!({"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": id, "SecretAccessKey": secret, "Token": session, "Expiration": in_an_hour()}),
            ),
            None => Answer::json(404, json!({"error": "no credentials"})),
        },
        _ => Answer::json(404, json!({"error": "not found"})),
    }
}

fn xml_error(status: u16, code: &str, message: &str) -> Answer {
    let xml = format!("<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>");
    Answer { status, body: Bytes::from(xml), retry_after: None }
}

/// An hour from now, as AWS writes expiries (`2026-12-05T11:35:41Z`).
fn in_an_hour() -> String {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let compact = edge_secrets_guest::sigv4::amz_date(now_ms + 3_600_000); // YYYYMMDDTHHMMSSZ
    format!("{}-{}-{}T{}:{}:{}Z", &compact[0..4], &compact[4..6], &compact[6..8], &compact[9..11], &compact[11..13], &compact[13..15])
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

impl FakeBackend {
    /// STS accepts `token` for `role_arn` and hands out `credentials` (id, secret, session).
    pub fn enable_sts_web_identity(&self, role_arn: &str, token: &str, credentials: (&str, &str, &str)) {
        let mut state = self.shared.state();
        state.store.aws_creds.sts = Some((role_arn.to_string(), token.to_string()));
        state.store.aws_creds.credentials = Some((credentials.0.to_string(), credentials.1.to_string(), credentials.2.to_string()));
    }

    /// The container endpoint accepts `Authorization: token` and hands out `credentials`.
    pub fn enable_container_credentials(&self, token: &str, credentials: (&str, &str, &str)) {
        let mut state = self.shared.state();
        state.store.aws_creds.container_token = Some(token.to_string());
        state.store.aws_creds.credentials = Some((credentials.0.to_string(), credentials.1.to_string(), credentials.2.to_string()));
    }

    /// IMDSv2 reports instance role `role` with `credentials`.
    pub fn enable_ec2_imds(&self, role: &str, credentials: (&str, &str, &str)) {
        let mut state = self.shared.state();
        state.store.aws_creds.imds_role = Some(role.to_string());
        state.store.aws_creds.credentials = Some((credentials.0.to_string(), credentials.1.to_string(), credentials.2.to_string()));
    }

    /// Requests IMDS received.
    pub fn ec2_imds_calls(&self) -> u64 {
        self.shared.state().store.aws_creds.imds_calls
    }

    /// `AssumeRoleWithWebIdentity` calls and container endpoint fetches received.
    pub fn aws_credential_fetches(&self) -> (u64, u64) {
        let state = self.shared.state();
        (state.store.aws_creds.sts_calls, state.store.aws_creds.container_calls)
    }
}
