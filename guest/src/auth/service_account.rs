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
