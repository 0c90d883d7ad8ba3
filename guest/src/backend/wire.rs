//! Pieces of the HTTP exchange that several backends share: presenting a
//! bearer token, naming an error from its code and message, and reading a
//! 200's JSON object without ever quoting its content.

use crate::prelude::*;

use crate::secret::SecretBytes;

/// The `Authorization: Bearer` header presenting `token` (GCP, Azure).
pub fn bearer(token: &SecretBytes) -> Vec<(String, Vec<u8>)> {
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(token.expose());
    vec![("authorization".to_string(), value)]
}

/// An error's reason from its (sanitized) code and message, either of which
/// may be empty: `code: message`, one of them, or the bare status.
pub fn reason_of(status: u16, code: &str, message: String) -> String {
    match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (true, false) => message,
        (false, true) => code.to_string(),
        (false, false) => format!("{code}: {message}"),
    }
}

/// A 200's body as a JSON object, or what is wrong with it (positions only:
/// the body holds the secret, and serde's messages can quote it).
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match serde_json::from_slice(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("invalid JSON at line {} column {}", e.line(), e.column())),
    }
}
