//! Tokens: generation, hashing and the checks of admin and device calls. Tokens are 32 random bytes; only their
//! SHA-256 is stored (a fast hash is right for high-entropy secrets) and compared in constant time.

use crate::error::KernelError;
use crate::store::{self, Store};
use base64::Engine as _;
use hookwire_actors::domain::ids::{DeviceId, GroupId, IdError};
use hookwire_actors::domain::request::DeviceProfile;
use hookwire_actors::domain::time;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Makes a new token with a prefix naming its kind (`hwd_` device, `hwa_` group admin, `hwr_` root).
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
    hookwire_actors::domain::signing::format_secret(&key)
}

/// The stored form of a token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Compares two byte strings in time independent of where they differ (`subtle`, as rustls does).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
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

/// The prefix of group tokens.
pub const GROUP_TOKEN_PREFIX: &str = "hwa_";
/// The prefix of device tokens.
pub const DEVICE_TOKEN_PREFIX: &str = "hwd_";
/// How often, at most, a token's `last_used_at` is written: once a minute.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;
/// How long a device or group token stays cached before it is read from the store again (`token_cache_secs`).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30);

/// The id of a group token: `tok_` and 32 hex digits of a UUIDv7, as the ids of `hookwire_actors::domain::ids`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(Arc<str>);

impl TokenId {
    /// The prefix every token id starts with.
    pub const PREFIX: &'static str = "tok_";

    /// Makes a new, time-ordered id.
    pub fn generate() -> Self {
        Self(format!("{}{}", Self::PREFIX, uuid::Uuid::now_v7().simple()).into())
    }

    /// Parses an id, refusing any string that is not `tok_` followed by 32 hex digits.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let valid = value
            .strip_prefix(Self::PREFIX)
            .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
        if valid {
            return Ok(Self(value.into()));
        }
        let shown = value.char_indices().take_while(|(index, _)| *index < 80).map(|(_, c)| c).collect();
        Err(IdError { value: shown, kind: "token", prefix: Self::PREFIX })
    }

    /// Wraps a string read back from storage, where it was validated when written.
    pub fn from_trusted(value: &str) -> Self {
        Self(value.into())
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a group token may do in its group. Ordered: an editor may do all a viewer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: gets, lists, the attempt log, history, the live event stream.
    Viewer,
    /// Reads and changes, replay and resend included, and the group's tokens.
    Editor,
}

impl Role {
    /// The role's name, as stored and shown: `viewer`, `editor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
        }
    }

    /// Reads a role's name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            _ => None,
        }
    }
}

/// Who an admin call acts as. Handlers state what they need in one line after authenticating: a call naming a
/// group [`require`](Principal::require)s it with a role; a call naming an object (device, webhook, attempt,
/// token) goes through [`Kernel::require_object`](crate::Kernel::require_object), which resolves the object's
/// group and hides other groups' objects as absent; root-only calls [`require_root`](Principal::require_root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The root token: everything.
    Root,
    /// A group token: its group only, as its role allows.
    Group {
        /// The token.
        token_id: TokenId,
        /// The one group it acts on.
        group_id: GroupId,
        /// What it may do there.
        role: Role,
    },
}

impl Principal {
    /// Checks a call on the group `group_id`, named by the request's field `field`, that needs `role`. A token of
    /// another group gets `PERMISSION_DENIED` whether or not that group exists, so the answer reveals nothing.
    pub fn require(&self, field: &str, group_id: &GroupId, role: Role) -> Result<(), KernelError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Group { group_id: own, .. } if own != group_id => {
                Err(KernelError::PermissionDenied(format!("{field}: this token acts on group {own} only")))
            }
            Principal::Group { .. } => self.require_role(role),
        }
    }

    /// Checks that the caller's role is at least `role` (in its own group, already checked).
    pub fn require_role(&self, role: Role) -> Result<(), KernelError> {
        match self {
            Principal::Group { role: own, .. } if *own < role => Err(KernelError::PermissionDenied(format!(
                "authorization: a {} token may not do this; it needs an {} token",
                own.as_str(),
                role.as_str()
            ))),
            _ => Ok(()),
        }
    }

    /// Checks a call only the root token may make; `what` says what it does (`create groups`).
    pub fn require_root(&self, what: &str) -> Result<(), KernelError> {
        match self {
            Principal::Root => Ok(()),
            Principal::Group { .. } => {
                Err(KernelError::PermissionDenied(format!("authorization: only the root token may {what}")))
            }
        }
    }

    /// The group a group token is limited to; `None` for root.
    pub fn group(&self) -> Option<&GroupId> {
        match self {
            Principal::Root => None,
            Principal::Group { group_id, .. } => Some(group_id),
        }
    }
}

/// A group token as cached: who it is, and when its use was last written.
#[derive(Debug)]
struct CachedToken {
    principal: Principal,
    last_used_written_ms: AtomicI64,
    /// When it was read from the store; past the time to live it is read again.
    cached_at: Instant,
}

/// Checks admin calls: the root token, then group tokens, cached by hash in front of the store so that a call
/// costs no query once its token was seen.
///
/// Revoking a token or deleting its group forgets it here at once, so revocation takes effect immediately on
/// this node. Other kernels on the same database hold their own caches: an entry is read from the store again
/// once it is older than the time to live (`token_cache_secs`), so there a revoked token is refused within it.
#[derive(Debug)]
pub struct AdminAuth {
    root_token_hash: String,
    by_token_hash: RwLock<HashMap<String, Arc<CachedToken>>>,
    cache_ttl: Duration,
}

impl AdminAuth {
    /// Checks against a root token and the group tokens of the store, read again from the store once cached for
    /// `cache_ttl`.
    pub fn with_cache_ttl(root_token: &str, cache_ttl: Duration) -> Self {
        AdminAuth { root_token_hash: hash_token(root_token), by_token_hash: RwLock::default(), cache_ttl }
    }

    /// Authenticates an admin call: the root token, or a group token that has not been revoked.
    pub async fn authenticate(
        &self,
        store: &Store,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, KernelError> {
        let token = bearer(metadata)?;
        let token_hash = hash_token(token);
        let is_root = constant_time_eq(token_hash.as_bytes(), self.root_token_hash.as_bytes());
        if !is_root && token.starts_with(DEVICE_TOKEN_PREFIX) {
            return Err(KernelError::Unauthenticated(
                "authorization: a device token cannot call the admin services; use an admin token".into(),
            ));
        }
        if !is_root && !token.starts_with(GROUP_TOKEN_PREFIX) {
            return Err(KernelError::Unauthenticated("authorization: unknown token".into()));
        }
        self.authenticate_hash(store, &token_hash).await
    }

    /// Authenticates an admin token known only by its hash ([`hash_token`]), as the console's sessions keep it:
    /// the root token, or a group token that has not been revoked.
    pub async fn authenticate_hash(&self, store: &Store, token_hash: &str) -> Result<Principal, KernelError> {
        if constant_time_eq(token_hash.as_bytes(), self.root_token_hash.as_bytes()) {
            return Ok(Principal::Root);
        }
        let cached = self
            .by_token_hash
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(token_hash)
            .filter(|cached| cached.cached_at.elapsed() < self.cache_ttl)
            .cloned();
        let cached = match cached {
            Some(cached) => cached,
            None => {
                let row = store::tokens::find_by_token_hash(store.pool(), token_hash)
                    .await?
                    .ok_or_else(|| KernelError::Unauthenticated("authorization: unknown or revoked token".into()))?;
                let cached = Arc::new(CachedToken {
                    principal: Principal::Group { token_id: row.id, group_id: row.group_id, role: row.role },
                    last_used_written_ms: AtomicI64::new(row.last_used_at.unwrap_or(i64::MIN)),
                    cached_at: Instant::now(),
                });
                // A revocation that ran between the query and here removed nothing from the cache: the entry is
                // only kept when the row is still there after it is in place.
                self.by_token_hash
                    .write()
                    .unwrap_or_else(|poison| poison.into_inner())
                    .insert(token_hash.to_owned(), cached.clone());
                if let Principal::Group { token_id, .. } = &cached.principal
                    && store::tokens::get_token(store.pool(), token_id).await?.is_none()
                {
                    self.forget(|principal| principal == &cached.principal);
                    return Err(KernelError::Unauthenticated("authorization: unknown or revoked token".into()));
                }
                cached
            }
        };
        touch(store, &cached).await;
        Ok(cached.principal.clone())
    }

    /// Forgets the cached group tokens that match (revoked, or their group deleted): they are refused from the
    /// next call on.
    pub fn forget(&self, matches: impl Fn(&Principal) -> bool) {
        self.by_token_hash
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, cached| !matches(&cached.principal));
    }
}

/// Writes a token's `last_used_at` when the last write is a minute old: one write per token and minute, on the
/// call that crosses the minute. A failed write only loses the time of use, never the call.
async fn touch(store: &Store, cached: &CachedToken) {
    let Principal::Group { token_id, .. } = &cached.principal else {
        return;
    };
    let now = time::now_ms();
    let last = cached.last_used_written_ms.load(Ordering::Relaxed);
    if now.saturating_sub(last) < LAST_USED_RESOLUTION_MS
        || cached.last_used_written_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
    {
        return;
    }
    if let Err(error) = store::tokens::touch_token(store.pool(), token_id, now).await {
        tracing::debug!(%token_id, %error, "could not record the token's last use");
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

/// Device tokens, cached by hash in front of the store so that connecting costs no query once seen. An entry is
/// read again once older than its time to live, so that a device deleted, updated or given a new token through
/// another kernel on the same database is seen here within it (this kernel's own changes forget it at once).
#[derive(Debug)]
pub struct DeviceDirectory {
    by_token_hash: RwLock<HashMap<String, (AuthenticatedDevice, Instant)>>,
    cache_ttl: Duration,
}

impl DeviceDirectory {
    /// A directory whose entries are read again from the store once cached for `cache_ttl`.
    pub fn with_cache_ttl(cache_ttl: Duration) -> Self {
        DeviceDirectory { by_token_hash: RwLock::default(), cache_ttl }
    }

    /// Authenticates a device call.
    pub async fn authenticate(
        &self,
        store: &Store,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<AuthenticatedDevice, KernelError> {
        let token_hash = hash_token(bearer(metadata)?);
        if let Some((device, cached_at)) =
            self.by_token_hash.read().unwrap_or_else(|poison| poison.into_inner()).get(&token_hash)
            && cached_at.elapsed() < self.cache_ttl
        {
            return Ok(device.clone());
        }
        let Some(row) = store::devices::find_by_token_hash(store.pool(), &token_hash).await? else {
            // Gone from the store (deleted or rotated through another kernel): gone from the cache too.
            self.by_token_hash.write().unwrap_or_else(|poison| poison.into_inner()).remove(&token_hash);
            return Err(KernelError::Unauthenticated("authorization: unknown device token".into()));
        };
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
        let entry = (device.clone(), Instant::now());
        self.by_token_hash.write().unwrap_or_else(|poison| poison.into_inner()).insert(token_hash, entry);
        Ok(device)
    }

    /// Forgets the cached tokens of devices (deleted, or their group deleted).
    pub fn forget(&self, matches: impl Fn(&AuthenticatedDevice) -> bool) {
        self.by_token_hash
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .retain(|_, (device, _)| !matches(device));
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

    #[tokio::test]
    async fn the_root_token_is_checked_from_the_bearer_header() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", directory.path().join("t.db").display())).await.unwrap();
        let auth = AdminAuth::with_cache_ttl("secret", DEFAULT_CACHE_TTL);
        let mut metadata = tonic::metadata::MetadataMap::new();
        assert!(matches!(auth.authenticate(&store, &metadata).await, Err(KernelError::Unauthenticated(_))));
        metadata.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(auth.authenticate(&store, &metadata).await.is_err());
        metadata.insert("authorization", "Bearer hwa_unknown".parse().unwrap());
        let error = auth.authenticate(&store, &metadata).await.unwrap_err();
        assert!(error.to_string().contains("unknown or revoked"), "{error}");
        metadata.insert("authorization", "Bearer hwd_device".parse().unwrap());
        let error = auth.authenticate(&store, &metadata).await.unwrap_err();
        assert!(error.to_string().contains("device token"), "{error}");
        metadata.insert("authorization", "Bearer secret".parse().unwrap());
        assert_eq!(auth.authenticate(&store, &metadata).await.unwrap(), Principal::Root);
        store.close().await;
    }

    #[test]
    fn a_group_token_acts_on_its_group_as_its_role_allows() {
        let (own, other) = (GroupId::generate(), GroupId::generate());
        let viewer = Principal::Group { token_id: TokenId::generate(), group_id: own.clone(), role: Role::Viewer };
        let editor = Principal::Group { token_id: TokenId::generate(), group_id: own.clone(), role: Role::Editor };
        assert!(viewer.require("group_id", &own, Role::Viewer).is_ok());
        let error = viewer.require("group_id", &own, Role::Editor).unwrap_err();
        assert!(matches!(error, KernelError::PermissionDenied(_)) && error.to_string().contains("editor"), "{error}");
        assert!(editor.require("group_id", &own, Role::Editor).is_ok());
        let error = editor.require("group_id", &other, Role::Viewer).unwrap_err();
        assert!(matches!(error, KernelError::PermissionDenied(_)), "{error}");
        assert!(error.to_string().starts_with("group_id:"), "{error}");
        assert!(editor.require_root("create groups").is_err());
        assert!(Principal::Root.require("id", &other, Role::Editor).is_ok());
        assert!(Principal::Root.require_root("create groups").is_ok());
    }

    #[test]
    fn token_ids_parse_back_and_refuse_other_kinds() {
        let id = TokenId::generate();
        assert_eq!(TokenId::parse(id.as_str()).unwrap(), id);
        let error = TokenId::parse(GroupId::generate().as_str()).unwrap_err();
        assert!(error.to_string().contains("is not a token id"), "{error}");
    }
}
