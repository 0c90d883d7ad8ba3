//! TEMPORARY STUB (replaced by the approle branch before merge).
use crate::prelude::*;
use super::IssuedToken;
use crate::backend::Failure;
use crate::error::Error;
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
use crate::secret::SecretBytes;
pub fn login_request(url: &BaseUrl, mount: &str, _namespace: Option<&str>, _role_id: &SecretBytes, _secret_id: &SecretBytes) -> HttpRequest {
    HttpRequest::post(url, format!("/v1/auth/{mount}/login"), vec![], vec![])
}
pub fn renew_request(url: &BaseUrl, _namespace: Option<&str>, _token: &SecretBytes) -> HttpRequest {
    HttpRequest::post(url, "/v1/auth/token/renew-self".into(), vec![], vec![])
}
pub fn response(_response: &HttpResponse, _retry_after: Option<u64>) -> Result<IssuedToken, Failure> {
    Err(Failure::permanent(Error::backend(None, "stub")))
}
