//! Tokens: generation, hashing and the checks of admin and device calls. Tokens are 32 random bytes; only their
//! SHA-256 is stored (a fast hash is right for high-entropy secrets) and compared in constant time.

use crate::error::KernelError;
use crate::store::{self, Store};
use base64::Engine as _;
use hookwire_actors::ids::{DeviceId, GroupId};
use hookwire_actors::request::DeviceProfile;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Makes a new token with a prefix naming its kind (`hwd_` device, `hwr_` root).
pub fn generate_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Makes a new Standard Webhooks signing secret: `whsec_` and the base64 of 32 random bytes. Unlike tokens it is
/// stored as it is, since signing needs it.
pub fn generate_signing_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    hookwire_actors::signing::format_secret(&key)
}

/// The stored form of a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads the bearer token of a call.
pub fn bearer(metadata: &tonic::metadata::MetadataMap) -> Result<&str, KernelError> {
    let value = metadata.get("authorization").ok_or_else(|| {
        KernelError::Unauthenticated("authorization: missing (send `authorization: Bearer <token>`)".into())
    })?;
    let value = value.to_str().map_err(|_| KernelError::Unauthenticated("authorization: not text".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| KernelError::Unauthenticated("authorization: expected `Bearer <token>`".into()))?;
    Ok(token.trim())
}

/// Who an admin call acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The root token: everything.
    Root,
}

/// Checks admin calls.
#[derive(Debug)]
pub struct AdminAuth {
    root_token_hash: String,
}

impl AdminAuth {
    /// Checks against a root token.
    pub fn new(root_token: &str) -> Self {
        AdminAuth { root_token_hash: hash_token(root_token) }
    }

    /// Authenticates an admin call.
    pub fn authenticate(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Principal, KernelError> {
        let token = bearer(metadata)?;
        if constant_time_eq(hash_token(token).as_bytes(), self.root_token_hash.as_bytes()) {
            Ok(Principal::Root)
        } else {
            Err(KernelError::Unauthenticated("authorization: unknown token".into()))
        }
    }
}

/// A device that presented a valid token.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice {
    /// The device.
    pub device_id: DeviceId,
    /// Its group.
    pub group_id: GroupId,
    /// Its template variables.
    pub profile: Arc<DeviceProfile>,
}

/// Device tokens, cached by hash in front of the store so that connecting costs no query once seen.
#[derive(Debug, Default)]
pub struct DeviceDirectory {
    by_token_hash: RwLock<HashMap<String, AuthenticatedDevice>>,
}

impl DeviceDirectory {
    /// Authenticates a device call.
    pub async fn authenticate(
        &self,
        store: &Store,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<AuthenticatedDevice, KernelError> {
        let token_hash = hash_token(bearer(metadata)?);
        if let Some(device) = self.by_token_hash.read().unwrap_or_else(|poison| poison.into_inner()).get(&token_hash) {
            return Ok(device.clone());
        }
        let row = store::devices::find_by_token_hash(store.pool(), &token_hash)
            .await?
            .ok_or_else(|| KernelError::Unauthenticated("authorization: unknown device token".into()))?;
        let device = AuthenticatedDevice {
            device_id: row.id.clone(),
            group_id: row.group_id.clone(),
            profile: Arc::new(DeviceProfile {
                id: Some(row.id),
                product_id: row.product_id,
                firmware_version: row.firmware_version,
                owner: row.owner,
            }),
        };
        self.by_token_hash.write().unwrap_or_else(|poison| poison.into_inner()).insert(token_hash, device.clone());
        Ok(device)
    }

    /// Forgets the cached tokens of devices (deleted, or their group deleted).
    pub fn forget(&self, matches: impl Fn(&AuthenticatedDevice) -> bool) {
        self.by_token_hash.write().unwrap_or_else(|poison| poison.into_inner()).retain(|_, device| !matches(device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hash_stably() {
        let (a, b) = (generate_token("hwd_"), generate_token("hwd_"));
        assert!(a.starts_with("hwd_") && a.len() > 40);
        assert_ne!(a, b);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn the_root_token_is_checked_from_the_bearer_header() {
        let auth = AdminAuth::new("secret");
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(matches!(auth.authenticate(&metadata), Err(KernelError::Unauthenticated(_))));
        metadata.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(auth.authenticate(&metadata).is_err());
        metadata.insert("authorization", "Bearer secret".parse().unwrap());
        assert_eq!(auth.authenticate(&metadata).unwrap(), Principal::Root);
    }
}
