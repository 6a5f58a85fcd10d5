//! Biscuit tokens: minting, verifying, authorizing.
//!
//! (Long mostly by its tests: one authorizer, tried from every side. Minting, verifying and
//! authorizing stay together: they share the key ring, the verified-token cache and the
//! remembered decisions, and the tests try them as one.)
//!
//! A token's authority block states who holds it — `user`, `role`, `tier`, `token_id`,
//! `token_kind` — and `check if time($t), $t < <expiry>`. Blocks appended later (by anyone
//! holding the token, offline) can only add checks: their facts are not trusted by the
//! authorizer, so narrowing is possible and widening is not.
//!
//! For each request the gateway states `time(now)`, `operation("runs:create")`, the
//! `resource(kind, id)` if there is one, and `owner(username)`: whose resource it is (the
//! caller, for their own collections). The policies, in order:
//! admins may do anything; users anything on what they own; viewers read what they own;
//! everything else is denied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aurora_domain::user::{Role, Tier, TokenKind};
use biscuit_auth::builder::{self, Policy, Rule, Term};
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit};

use sha2::{Digest, Sha256};

use super::keys::KeyRing;
use super::revocations::Revocations;

/// Largest token accepted, in bytes of its base64 form; anything larger is refused unread.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Most blocks a token may carry (authority + attenuations).
pub const MAX_BLOCKS: usize = 16;

/// Operations only an unattenuated token may perform.
pub const CREDENTIAL_OPERATIONS: &[&str] = &["auth:logout", "tokens:create", "tokens:revoke"];

const POLICIES: &[&str] = &[
    r#"allow if role("admin")"#,
    // Anyone manages their own credentials: list, create and revoke their tokens, log out.
    r#"allow if user($u), owner($u), operation($op),
        ["auth:logout", "tokens:read", "tokens:create", "tokens:revoke"].contains($op)"#,
    r#"allow if role("user"), user($u), owner($u)"#,
    r#"allow if role("viewer"), user($u), owner($u), operation($op),
        $op.ends_with(":read") || ["runs:subscribe"].contains($op)"#,
    "deny if true",
];

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// The username (the principal).
    pub username: String,
    /// Role at minting.
    pub role: Role,
    /// Tier at minting.
    pub tier: Tier,
    /// The token's id.
    pub token_id: String,
}

/// A token minted for a user.
#[derive(Debug, Clone)]
pub struct Minted {
    /// The serialized token (URL-safe base64).
    pub token: String,
    /// Its id.
    pub token_id: String,
    /// When it stops being accepted.
    pub expires_at: SystemTime,
    /// Revocation id of its authority block, hex: every token attenuated from it shares it.
    pub revocation_id: String,
}

/// A token whose signatures checked out, with its blocks' revocation ids.
#[derive(Debug)]
pub struct VerifiedToken {
    biscuit: Biscuit,
    revocation_ids: Vec<Vec<u8>>,
    /// Who the authority block says holds it (read once, at verification).
    claims: Claims,
    /// Accesses allowed within the current second (see [`Tokens::authorize`]).
    allowed: Mutex<Allowed>,
}

/// Accesses a token was allowed during one second of Biscuit time.
#[derive(Debug, Default)]
struct Allowed {
    second: u64,
    accesses: Vec<OwnedAccess>,
}

/// Most accesses remembered per token and second.
const ALLOWED_PER_SECOND: usize = 16;

#[derive(Debug, PartialEq, Eq)]
struct OwnedAccess {
    operation: String,
    resource: Option<(String, String)>,
    owner: Option<String>,
}

impl OwnedAccess {
    fn is(&self, access: &Access<'_>) -> bool {
        self.operation == access.operation
            && self.owner.as_deref() == access.owner
            && self
                .resource
                .as_ref()
                .map(|(k, i)| (k.as_str(), i.as_str()))
                == access.resource
    }
}

impl From<Access<'_>> for OwnedAccess {
    fn from(access: Access<'_>) -> Self {
        Self {
            operation: access.operation.to_string(),
            resource: access
                .resource
                .map(|(kind, id)| (kind.to_string(), id.to_string())),
            owner: access.owner.map(str::to_string),
        }
    }
}

impl VerifiedToken {
    /// Who the authority block says holds it. Not an authorization: use
    /// [`Tokens::authorize`] for that.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
}

impl std::ops::Deref for VerifiedToken {
    type Target = Biscuit;

    fn deref(&self) -> &Biscuit {
        &self.biscuit
    }
}

/// What an authorization asks.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// e.g. `runs:create`.
    pub operation: &'a str,
    /// `(kind, id)` of the resource, if the operation is on one.
    pub resource: Option<(&'a str, &'a str)>,
    /// Whose resource it is; `None` for the caller's own (their collection, their
    /// profile): the authorizer then derives `owner` from the token's `user`.
    pub owner: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// `operation` on the caller's own collection or profile.
    pub fn own(operation: &'a str) -> Self {
        Self {
            operation,
            resource: None,
            owner: None,
        }
    }

    /// `operation` on something no user owns (all users, another user's account): only
    /// admins may.
    pub fn admin(operation: &'a str, resource: Option<(&'a str, &'a str)>) -> Self {
        Self {
            operation,
            resource,
            // No username is empty, so no owner() policy can match.
            owner: Some(""),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not parseable, bad signature, unknown root key, too large, too many blocks.
    #[error("the token is malformed, tampered with, or signed by a key Aurora does not hold")]
    Invalid,
    /// Revoked: logged out, revoked by its holder, or its user disabled.
    #[error("the token has been revoked")]
    Revoked,
    /// Past the expiry its authority block states: log in again.
    #[error("the token has expired")]
    Expired,
    /// A check failed: expired, or a block forbids this request.
    #[error("the token does not allow this request")]
    Forbidden,
    /// The authorizer ran out of time again and again: the replica is too busy to check
    /// the token now (a denial it is not). Answered 503, never recorded as a refusal.
    #[error("the token could not be checked in time: the server is busy; retry")]
    Busy,
}

/// Times the authorizer is run when it runs out of time: its limit is wall-clock time,
/// and a thread preempted on a saturated machine can spend it without evaluating anything.
const AUTHORIZE_ATTEMPTS: usize = 3;

/// Labels of the verified-token cache's lookups.
#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub outcome: &'static str,
}

/// Most verified tokens kept; when full, the cache starts over (bounded memory, and a
/// burst of distinct tokens costs only a re-verification each).
pub const VERIFIED_CACHE_ENTRIES: usize = 10_000;

/// Mints, verifies and authorizes tokens with one key ring.
///
/// Verified tokens are cached by SHA-256 of their text, so a token used again skips the
/// parse and signature check (~90 µs). The revocation check and authorization — expiry
/// included — still run on every request, so the cache never serves a revoked or expired
/// token.
pub struct Tokens {
    verified: Mutex<HashMap<[u8; 32], Arc<VerifiedToken>>>,
    /// Verifications the cache answered (`hit`) or not (`miss`).
    cache_lookups: prometheus_client::metrics::family::Family<
        CacheLabels,
        prometheus_client::metrics::counter::Counter,
    >,
    capacity: usize,
    keys: KeyRing,
    revocations: Arc<Revocations>,
    /// Limits and policies, built once: cloned per request, never re-parsed.
    base: AuthorizerBuilder,
    /// `base` plus the rule `owner($u) <- user($u)`, for the caller's own collections.
    base_own: AuthorizerBuilder,
    claims: Rule,
}

impl Tokens {
    /// Tokens over `keys`, refusing those in `revocations`.
    pub fn new(keys: KeyRing, revocations: Arc<Revocations>) -> Self {
        // Set deliberately: biscuit-auth's default 1 ms makes valid tokens fail under
        // load (a preempted thread). Our policies need a handful of facts and one
        // iteration; 64 blocks' worth of checks still fit. The time limit only stops a
        // pathological token: generous enough for a preempted thread, short enough that
        // a token built to be slow holds a worker for no more than 3 × 20 ms (it is
        // tried AUTHORIZE_ATTEMPTS times, then answered "busy", never "forbidden").
        Self::with_time_limit(keys, revocations, Duration::from_millis(20))
    }

    fn with_time_limit(keys: KeyRing, revocations: Arc<Revocations>, max_time: Duration) -> Self {
        let limits = AuthorizerLimits {
            max_facts: 1000,
            max_iterations: 100,
            max_time,
        };
        let base = POLICIES.iter().fold(
            AuthorizerBuilder::new().set_limits(limits),
            |builder, policy| {
                builder
                    .policy(Policy::try_from(*policy).expect("built-in policies parse"))
                    .expect("built-in policies are valid")
            },
        );
        let own = Rule::try_from("owner($u) <- user($u)").expect("built-in rule parses");
        let base_own = base.clone().rule(own).expect("built-in rule is valid");
        Self {
            verified: Mutex::new(HashMap::new()),
            cache_lookups: Default::default(),
            capacity: VERIFIED_CACHE_ENTRIES,
            keys,
            revocations,
            base,
            base_own,
            claims: Rule::try_from(
                "claims($u, $r, $t, $i) <- user($u), role($r), tier($t), token_id($i)",
            )
            .expect("built-in rule parses"),
        }
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The revocation set.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// Mints a token for `username` valid for `ttl` from `now`.
    pub fn mint(
        &self,
        kind: TokenKind,
        username: &str,
        role: Role,
        tier: Tier,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<Minted, biscuit_auth::error::Token> {
        let (key_id, key) = self.keys.signing();
        let token_id = uuid::Uuid::now_v7().to_string();
        let expires_at = now + ttl;
        let mut params: HashMap<String, Term> = HashMap::new();
        params.insert("user".into(), builder::string(username));
        params.insert("role".into(), builder::string(role.as_str()));
        params.insert("tier".into(), builder::string(tier.as_str()));
        params.insert("id".into(), builder::string(&token_id));
        params.insert("kind".into(), builder::string(kind.as_str()));
        params.insert("expiry".into(), builder::date(&expires_at));
        let biscuit = Biscuit::builder()
            .code_with_params(
                r#"user({user}); role({role}); tier({tier}); token_id({id}); token_kind({kind});
                   check if time($t), $t < {expiry};"#,
                params,
                HashMap::new(),
            )?
            .root_key_id(key_id)
            .build(key)?;
        let revocation_id = biscuit
            .revocation_identifiers()
            .first()
            .map(hex::encode)
            .unwrap_or_default();
        Ok(Minted {
            token: biscuit.to_base64()?,
            token_id,
            expires_at,
            revocation_id,
        })
    }

    /// Parses `token` and checks its signatures against the key ring (or finds it
    /// verified before), then that it is not revoked.
    pub fn verify(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        let verified = self.verify_signatures(token)?;
        if self.revocations.is_revoked(&verified.revocation_ids) {
            return Err(TokenError::Revoked);
        }
        Ok(verified)
    }

    /// Has a token verified earlier been revoked since — it, a token it was narrowed from,
    /// or every token of its user (disabled)? Cheap: nothing is parsed again.
    pub fn is_revoked(&self, token: &VerifiedToken) -> bool {
        self.revocations.is_revoked(&token.revocation_ids)
    }

    /// Who a genuine token names — signatures checked, revocation and expiry not: for
    /// saying who tried when a revoked or expired token was refused. Not an authorization.
    pub fn holder(&self, token: &str) -> Option<Claims> {
        self.verify_signatures(token)
            .ok()
            .map(|verified| verified.claims.clone())
    }

    fn verify_signatures(&self, token: &str) -> Result<Arc<VerifiedToken>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verified) = self.cached().get(&key) {
            self.count_lookup("hit");
            return Ok(verified.clone());
        }
        self.count_lookup("miss");
        let biscuit = self.parse(token)?;
        let verified = Arc::new(VerifiedToken {
            revocation_ids: biscuit.revocation_identifiers(),
            claims: self.claims_of(&biscuit)?,
            allowed: Mutex::new(Allowed::default()),
            biscuit,
        });
        let mut cache = self.cached();
        if cache.len() >= self.capacity {
            cache.clear();
        }
        cache.insert(key, verified.clone());
        Ok(verified)
    }

    /// Counts cache lookups in `lookups` (a registry's family).
    pub fn counting(
        mut self,
        lookups: prometheus_client::metrics::family::Family<
            CacheLabels,
            prometheus_client::metrics::counter::Counter,
        >,
    ) -> Self {
        self.cache_lookups = lookups;
        self
    }

    fn count_lookup(&self, outcome: &'static str) {
        self.cache_lookups
            .get_or_create(&CacheLabels { outcome })
            .inc();
    }

    /// How many verified tokens are cached.
    pub fn cached_tokens(&self) -> usize {
        self.cached().len()
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<VerifiedToken>>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn parse(&self, token: &str) -> Result<Biscuit, TokenError> {
        let biscuit = Biscuit::from_base64(token, |id: Option<u32>| {
            id.and_then(|id| self.keys.public(id))
                .ok_or(biscuit_auth::error::Format::UnknownPublicKey)
        })
        .map_err(|_| TokenError::Invalid)?;
        if biscuit.block_count() > MAX_BLOCKS {
            return Err(TokenError::Invalid);
        }
        Ok(biscuit)
    }

    /// The claims of the authority block: the only block whose facts a query trusts.
    fn claims_of(&self, biscuit: &Biscuit) -> Result<Claims, TokenError> {
        let mut authorizer = AuthorizerBuilder::new()
            .set_limits(self.base.limits().clone())
            .build(biscuit)
            .map_err(|_| TokenError::Invalid)?;
        // Over the limits here means the attenuation blocks are too heavy to evaluate:
        // forbidden, like at authorization.
        let claims: Vec<(String, String, String, String)> =
            authorizer.query(self.claims.clone()).map_err(refusal)?;
        let [(username, role, tier, token_id)] =
            <[_; 1]>::try_from(claims).map_err(|_| TokenError::Invalid)?;
        Ok(Claims {
            username,
            role: role.parse().map_err(|_| TokenError::Invalid)?,
            tier: tier.parse().map_err(|_| TokenError::Invalid)?,
            token_id,
        })
    }

    /// Authorizes `access` at `now` for a verified token; on success, who it speaks for.
    /// Operations on credentials ([`CREDENTIAL_OPERATIONS`]) need the token as minted: a
    /// narrowed token must not mint a wider one, nor revoke the token it came from.
    ///
    /// The decision is a pure function of the token, the access and `time`, which Biscuit
    /// states in whole seconds; so an access allowed once is allowed again without running
    /// Datalog for the rest of that second (up to [`ALLOWED_PER_SECOND`] accesses per
    /// token). Refusals are always recomputed. Revocation is checked by `verify`, on
    /// every request.
    pub fn authorize(
        &self,
        token: &VerifiedToken,
        access: Access<'_>,
        now: SystemTime,
    ) -> Result<Claims, TokenError> {
        if token.block_count() > 1 && CREDENTIAL_OPERATIONS.contains(&access.operation) {
            return Err(TokenError::Forbidden);
        }
        let second = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        {
            let allowed = token.allowed.lock().unwrap_or_else(|e| e.into_inner());
            if allowed.second == second && allowed.accesses.iter().any(|a| a.is(&access)) {
                return Ok(self.current(&token.claims));
            }
        }
        self.run_authorizer(token, access, now)?;
        let mut allowed = token.allowed.lock().unwrap_or_else(|e| e.into_inner());
        if allowed.second != second {
            allowed.second = second;
            allowed.accesses.clear();
        }
        if allowed.accesses.len() < ALLOWED_PER_SECOND {
            allowed.accesses.push(access.into());
        }
        Ok(self.current(&token.claims))
    }

    /// The token's claims with its user's tier as it is now (limits follow a downgrade at
    /// once, not when the token expires).
    fn current(&self, claims: &Claims) -> Claims {
        let mut claims = claims.clone();
        if let Some(tier) = self.revocations.current_tier(&claims.username) {
            claims.tier = tier;
        }
        claims
    }

    fn run_authorizer(
        &self,
        token: &VerifiedToken,
        access: Access<'_>,
        now: SystemTime,
    ) -> Result<(), TokenError> {
        // Out of time (wall-clock: maybe only preempted), it is run again on a fresh
        // authorizer; the first run clones nothing more than the base.
        for _ in 0..AUTHORIZE_ATTEMPTS {
            let outcome = self
                .authorizer(access, now)?
                .build(&token.biscuit)
                .and_then(|mut authorizer| authorizer.authorize().map(drop));
            match outcome.map_err(refusal) {
                Err(TokenError::Busy) => continue,
                other => return other,
            }
        }
        Err(TokenError::Busy)
    }

    /// The base policies with the facts of `access` at `now`.
    fn authorizer(
        &self,
        access: Access<'_>,
        now: SystemTime,
    ) -> Result<AuthorizerBuilder, TokenError> {
        let base = if access.owner.is_none() {
            &self.base_own
        } else {
            &self.base
        };
        let mut authorizer = base
            .clone()
            .fact(builder::fact("time", &[builder::date(&now)]))
            .and_then(|b| {
                b.fact(builder::fact(
                    "operation",
                    &[builder::string(access.operation)],
                ))
            })
            .map_err(|_| TokenError::Invalid)?;
        if let Some(owner) = access.owner {
            authorizer = authorizer
                .fact(builder::fact("owner", &[builder::string(owner)]))
                .map_err(|_| TokenError::Invalid)?;
        }
        if let Some((kind, id)) = access.resource {
            authorizer = authorizer
                .fact(builder::fact(
                    "resource",
                    &[builder::string(kind), builder::string(id)],
                ))
                .map_err(|_| TokenError::Invalid)?;
        }
        Ok(authorizer)
    }
}

fn refusal(error: biscuit_auth::error::Token) -> TokenError {
    use biscuit_auth::error::{FailedCheck, Logic, RunLimit, Token};
    match error {
        // The authority block's only check is the expiry (see `mint`).
        Token::FailedLogic(
            Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks },
        ) if checks.iter().any(
            |check| matches!(check, FailedCheck::Block(b) if b.block_id == 0 && b.check_id == 0),
        ) =>
        {
            TokenError::Expired
        }
        Token::FailedLogic(_) => TokenError::Forbidden,
        // Out of (wall-clock) time: maybe only preempted; tried again, then "busy".
        Token::RunLimit(RunLimit::Timeout) => TokenError::Busy,
        // Over the other limits: the token's Datalog is too heavy to honour.
        Token::RunLimit(_) => TokenError::Forbidden,
        _ => TokenError::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use biscuit_auth::builder::BlockBuilder;

    fn tokens() -> (Tokens, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("aurora-tokens-{}", uuid::Uuid::new_v4()));
        let keys = KeyRing::load(&dir, true).unwrap();
        (Tokens::new(keys, Revocations::new()), dir)
    }

    fn mint(tokens: &Tokens, user: &str, role: Role) -> String {
        tokens
            .mint(
                TokenKind::Session,
                user,
                role,
                Tier::Free,
                SystemTime::now(),
                Duration::from_secs(3600),
            )
            .unwrap()
            .token
    }

    fn decide(
        tokens: &Tokens,
        token: &str,
        operation: &str,
        owner: &str,
    ) -> Result<Claims, TokenError> {
        let biscuit = tokens.verify(token)?;
        let access = Access {
            operation,
            resource: Some(("run", "r1")),
            owner: Some(owner),
        };
        tokens.authorize(&biscuit, access, SystemTime::now())
    }

    #[test]
    fn roles_decide_over_owners() {
        let (t, _) = tokens();
        let table = [
            (Role::Admin, "runs:create", "bob", true),
            (Role::Admin, "runs:read", "bob", true),
            (Role::User, "runs:create", "alice", true),
            (Role::User, "runs:cancel", "alice", true),
            (Role::User, "runs:read", "bob", false),
            (Role::User, "runs:cancel", "bob", false),
            (Role::Viewer, "runs:read", "alice", true),
            (Role::Viewer, "runs:create", "alice", false),
            (Role::Viewer, "runs:read", "bob", false),
            // Following runs on NATS is reading: a viewer follows their own, no one else's.
            (Role::Viewer, "runs:subscribe", "alice", true),
            (Role::Viewer, "runs:subscribe", "bob", false),
            (Role::Viewer, "runs:cancel", "alice", false),
            (Role::User, "runs:subscribe", "bob", false),
        ];
        for (role, operation, owner, allowed) in table {
            let token = mint(&t, "alice", role);
            let outcome = decide(&t, &token, operation, owner);
            assert_eq!(
                outcome.is_ok(),
                allowed,
                "{role} {operation} on {owner}'s: {outcome:?}"
            );
            if let Ok(claims) = outcome {
                assert_eq!((claims.username.as_str(), claims.role), ("alice", role));
            } else {
                assert_eq!(outcome.unwrap_err(), TokenError::Forbidden);
            }
        }
    }

    /// The authorizer's time limit is wall-clock time: on a saturated machine a preempted
    /// thread can spend it evaluating nothing. Out of time is "busy" (503, retry), never
    /// "forbidden" (403, recorded as a refusal): under load valid tokens were refused.
    #[test]
    fn an_authorizer_out_of_time_is_busy_not_a_denial() {
        let dir = std::env::temp_dir().join(format!("aurora-tokens-{}", uuid::Uuid::new_v4()));
        let keys = KeyRing::load(&dir, true).unwrap();
        let starved = Tokens::with_time_limit(keys, Revocations::new(), Duration::ZERO);
        let token = mint(&starved, "alice", Role::User);
        assert_eq!(
            decide(&starved, &token, "runs:create", "alice").unwrap_err(),
            TokenError::Busy
        );
        // With time to run, the same token and access are allowed.
        let (t, _) = tokens();
        let token = mint(&t, "alice", Role::User);
        assert!(decide(&t, &token, "runs:create", "alice").is_ok());
    }

    #[test]
    fn the_callers_own_collection_is_theirs_whatever_their_role_allows_there() {
        let (t, _) = tokens();
        for (role, operation, allowed) in [
            (Role::User, "runs:create", true),
            (Role::Viewer, "runs:create", false),
            (Role::Viewer, "users:read", true),
        ] {
            let biscuit = t.verify(&mint(&t, "alice", role)).unwrap();
            let access = Access {
                operation,
                resource: None,
                owner: None,
            };
            let outcome = t.authorize(&biscuit, access, SystemTime::now());
            assert_eq!(outcome.is_ok(), allowed, "{role} {operation}: {outcome:?}");
        }
    }

    #[test]
    fn an_attenuated_token_can_do_only_what_every_block_allows() {
        let (t, _) = tokens();
        let token = t.verify(&mint(&t, "alice", Role::User)).unwrap();
        let narrowed = token
            .append(
                BlockBuilder::new()
                    .code(r#"check if operation("runs:read")"#)
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        assert!(decide(&t, &narrowed, "runs:read", "alice").is_ok());
        assert_eq!(
            decide(&t, &narrowed, "runs:create", "alice"),
            Err(TokenError::Forbidden)
        );
        // A block cannot widen: its facts are not trusted by the authorizer.
        let widened = token
            .append(BlockBuilder::new().code(r#"role("admin");"#).unwrap())
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(
            decide(&t, &widened, "runs:read", "bob"),
            Err(TokenError::Forbidden)
        );
    }

    #[test]
    fn expired_tampered_foreign_and_huge_tokens_are_refused() {
        let (t, _) = tokens();
        let past = SystemTime::now() - Duration::from_secs(7200);
        let expired = t
            .mint(
                TokenKind::Session,
                "alice",
                Role::User,
                Tier::Free,
                past,
                Duration::from_secs(3600),
            )
            .unwrap()
            .token;
        assert_eq!(
            decide(&t, &expired, "runs:read", "alice"),
            Err(TokenError::Expired)
        );

        let good = mint(&t, "alice", Role::User);
        let mut tampered = good.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            decide(&t, &tampered, "runs:read", "alice"),
            Err(TokenError::Invalid)
        );

        let (other, _) = tokens();
        let foreign = mint(&other, "alice", Role::Admin);
        assert_eq!(
            decide(&t, &foreign, "runs:read", "alice"),
            Err(TokenError::Invalid)
        );

        assert_eq!(
            decide(&t, "not a token", "runs:read", "alice"),
            Err(TokenError::Invalid)
        );
        let huge = "A".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(
            decide(&t, &huge, "runs:read", "alice"),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn tokens_signed_by_an_older_root_key_verify_until_it_is_retired() {
        let (mut t, dir) = tokens();
        let old = mint(&t, "alice", Role::User);
        t.keys.rotate(&dir).unwrap();
        let new = mint(&t, "alice", Role::User);
        assert_eq!(t.verify(&new).unwrap().root_key_id(), Some(2));
        assert!(decide(&t, &old, "runs:read", "alice").is_ok());
        std::fs::remove_file(dir.join("root-1.pem")).unwrap();
        let retired = Tokens::new(KeyRing::load(&dir, false).unwrap(), Revocations::new());
        assert_eq!(
            decide(&retired, &old, "runs:read", "alice"),
            Err(TokenError::Invalid)
        );
        assert!(decide(&retired, &new, "runs:read", "alice").is_ok());
    }

    #[test]
    fn a_verified_token_is_cached_boundedly_and_still_authorized_every_time() {
        let (t, _) = tokens();
        let token = mint(&t, "alice", Role::User);
        let first = t.verify(&token).unwrap();
        let second = t.verify(&token).unwrap();
        assert!(
            Arc::ptr_eq(&first, &second),
            "the second use is a cache hit"
        );
        assert_eq!(t.cached_tokens(), 1);
        // A cached token that has expired is refused: expiry is checked on every request.
        let later = SystemTime::now() + Duration::from_secs(7200);
        let access = Access {
            operation: "runs:read",
            resource: None,
            owner: None,
        };
        assert_eq!(
            t.authorize(&second, access, later),
            Err(TokenError::Expired)
        );
        assert_eq!(t.verify("garbage").err(), Some(TokenError::Invalid));
        assert_eq!(t.cached_tokens(), 1, "refused tokens are not cached");
        let (mut small, _) = tokens();
        small.capacity = 3;
        for _ in 0..10 {
            small.verify(&mint(&small, "alice", Role::User)).unwrap();
            assert!(small.cached_tokens() <= 3);
        }
    }

    #[test]
    fn a_revoked_token_is_refused_even_from_the_cache_and_so_are_its_attenuations() {
        let (t, _) = tokens();
        let minted = t
            .mint(
                TokenKind::ApiKey,
                "alice",
                Role::User,
                Tier::Free,
                SystemTime::now(),
                Duration::from_secs(3600),
            )
            .unwrap();
        let narrowed = t
            .verify(&minted.token)
            .unwrap()
            .append(
                BlockBuilder::new()
                    .code(r#"check if operation("runs:read")"#)
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        assert!(
            decide(&t, &narrowed, "runs:read", "alice").is_ok(),
            "cached now"
        );
        t.revocations()
            .revoke(&minted.revocation_id, minted.expires_at);
        assert_eq!(t.verify(&minted.token).err(), Some(TokenError::Revoked));
        assert_eq!(t.verify(&narrowed).err(), Some(TokenError::Revoked));
        let other = mint(&t, "alice", Role::User);
        assert!(t.verify(&other).is_ok(), "other tokens are unaffected");
    }

    #[test]
    fn an_access_allowed_once_is_remembered_only_within_its_second_and_for_itself() {
        let (t, _) = tokens();
        let minted = t
            .mint(
                TokenKind::Session,
                "alice",
                Role::User,
                Tier::Free,
                SystemTime::now(),
                Duration::from_secs(60),
            )
            .unwrap();
        let token = t.verify(&minted.token).unwrap();
        let read = Access::own("runs:read");
        // The last second the token is valid in, then the first it is not.
        let last = minted.expires_at - Duration::from_secs(1);
        assert!(t.authorize(&token, read, last).is_ok());
        assert!(t.authorize(&token, read, last).is_ok(), "remembered");
        assert_eq!(
            t.authorize(&token, read, minted.expires_at + Duration::from_secs(1)),
            Err(TokenError::Expired),
            "a new second runs Datalog again"
        );
        // Another access in the same second is decided on its own.
        let bobs = Access {
            operation: "runs:read",
            resource: None,
            owner: Some("bob"),
        };
        assert_eq!(t.authorize(&token, bobs, last), Err(TokenError::Forbidden));
    }

    #[test]
    fn a_narrowed_token_cannot_mint_or_revoke_credentials_even_if_its_block_allows_it() {
        let (t, _) = tokens();
        let token = t.verify(&mint(&t, "alice", Role::User)).unwrap();
        let narrowed = token
            .append(
                BlockBuilder::new()
                    .code("check if time($t), $t < 2100-01-01T00:00:00Z")
                    .unwrap(),
            )
            .unwrap()
            .to_base64()
            .unwrap();
        let narrowed = t.verify(&narrowed).unwrap();
        for operation in CREDENTIAL_OPERATIONS {
            let outcome = t.authorize(&narrowed, Access::own(operation), SystemTime::now());
            assert_eq!(outcome, Err(TokenError::Forbidden), "{operation}");
            assert!(t
                .authorize(&token, Access::own(operation), SystemTime::now())
                .is_ok());
        }
        let read = t.authorize(&narrowed, Access::own("runs:read"), SystemTime::now());
        assert!(read.is_ok(), "everything else the block allows still works");
    }

    #[test]
    fn anyone_manages_their_own_tokens_but_nobody_elses() {
        let (t, _) = tokens();
        for role in [Role::User, Role::Viewer] {
            let token = mint(&t, "alice", role);
            for operation in [
                "auth:logout",
                "tokens:read",
                "tokens:create",
                "tokens:revoke",
            ] {
                let biscuit = t.verify(&token).unwrap();
                let own = t.authorize(&biscuit, Access::own(operation), SystemTime::now());
                assert!(own.is_ok(), "{role} {operation}: {own:?}");
                assert_eq!(
                    decide(&t, &token, operation, "bob"),
                    Err(TokenError::Forbidden),
                    "{role} {operation} on bob's"
                );
            }
        }
    }

    #[test]
    fn a_token_whose_datalog_exceeds_the_limits_is_forbidden_not_an_error() {
        let (t, _) = tokens();
        let token = t.verify(&mint(&t, "alice", Role::User)).unwrap();
        // A block that derives far more facts than the limit allows.
        let mut code = String::new();
        for i in 0..40 {
            code.push_str(&format!("n({i});\n"));
        }
        code.push_str("pair($a, $b) <- n($a), n($b);\ncheck if pair(1, 2);\n");
        let heavy = token
            .append(BlockBuilder::new().code(code).unwrap())
            .unwrap()
            .to_base64()
            .unwrap();
        assert_eq!(
            decide(&t, &heavy, "runs:read", "alice"),
            Err(TokenError::Forbidden)
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A block of Datalog a token holder might append: checks that narrow, facts and
        /// rules that try to widen (a block's facts are not trusted), and nonsense.
        fn block() -> impl Strategy<Value = String> {
            let operation = prop_oneof![
                Just("runs:read"),
                Just("runs:create"),
                Just("users:update"),
                Just("audit:read"),
                Just("tokens:create"),
            ];
            let statement = prop_oneof![
                operation
                    .clone()
                    .prop_map(|op| format!(r#"check if operation("{op}");"#)),
                "[a-z0-9]{1,8}".prop_map(|id| format!(r#"check if resource("run", "{id}");"#)),
                (2000u32..2100)
                    .prop_map(|y| format!("check if time($t), $t < {y}-01-01T00:00:00Z;")),
                operation.prop_map(|op| format!(r#"operation("{op}");"#)),
                Just(r#"role("admin");"#.to_string()),
                Just(r#"user("bob");"#.to_string()),
                Just(r#"right("runs:create");"#.to_string()),
                Just(r#"allow if true;"#.to_string()),
                Just(r#"check if true;"#.to_string()),
                ".{0,30}",
            ];
            proptest::collection::vec(statement, 1..4).prop_map(|s| s.join("\n"))
        }

        proptest! {
            #![proptest_config(crate::properties())]

            #[test]
            fn an_appended_block_never_allows_more_than_the_token_did(
                code in block(),
                operation in prop_oneof![Just("runs:read"), Just("runs:create"), Just("users:update"), Just("audit:read")],
                owner in prop_oneof![Just("alice"), Just("bob")],
                garbage in ".{0,200}",
            ) {
                let (t, _) = tokens();
                let original = mint(&t, "alice", Role::User);
                // Anything presented as a token: refused, never a panic.
                prop_assert!(t.verify(&garbage).is_err());
                let Ok(block) = BlockBuilder::new().code(code.as_str()) else {
                    return Ok(());
                };
                let Ok(narrowed) = t.verify(&original).unwrap().append(block) else {
                    return Ok(());
                };
                let narrowed = narrowed.to_base64().unwrap();
                if decide(&t, &narrowed, operation, owner).is_ok() {
                    prop_assert!(
                        decide(&t, &original, operation, owner).is_ok(),
                        "{:?} on {}'s run allowed only after appending {:?}", operation, owner, code
                    );
                }
            }
        }
    }
}
