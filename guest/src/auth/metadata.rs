//! TEMPORARY STUB (replaced by the gcp-auth branch before merge).
use crate::prelude::*;
use super::IssuedToken;
use crate::backend::Failure;
use crate::error::Error;
use crate::http::{BaseUrl, HttpRequest, HttpResponse};
pub fn request(url: &BaseUrl) -> HttpRequest {
    HttpRequest::get(url, "/".into(), Vec::new())
}
pub fn response(_response: &HttpResponse) -> Result<IssuedToken, Failure> {
    Err(Failure::permanent(Error::backend(None, "stub")))
}
