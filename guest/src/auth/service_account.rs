//! GCP service-account keys. Placeholder type: parsing and signing come next.

use crate::prelude::*;
use core::fmt;

/// A parsed service-account key. `Debug` shows the account and key id only.
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: String,
}

impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

/// Parses a service-account key file. Not built yet: every key is refused.
pub fn parse(_json: &str) -> Result<ServiceAccountKey, String> {
    Err("service-account keys are not supported yet".into())
}

/// TEMPORARY STUB.
pub const AUDIENCE: &str = "https://secretmanager.googleapis.com/";

/// TEMPORARY STUB.
pub fn self_signed_jwt(_key: &ServiceAccountKey, _audience: &str, _now_unix_s: u64, _lifetime_s: u64, _random: &mut dyn FnMut() -> u64) -> Result<super::IssuedToken, String> {
    Err("stub".into())
}
