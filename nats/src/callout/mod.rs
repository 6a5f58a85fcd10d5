//! The NATS auth callout protocol (nats-server ≥ 2.10): the server asks, on
//! `$SYS.REQ.USER.AUTH`, whether a connecting client may in, and the answer is a user JWT
//! naming the account it lands in and exactly what it may publish and subscribe to — or an
//! error, which refuses it.
//!
//! Both are JWTs of NATS's own kind: `{"typ":"JWT","alg":"ed25519-nkey"}`, base64url without
//! padding, an ed25519 signature over `header.payload` by an nkey. The request is signed by
//! the server (its key is its id, new on every start); the answer and the user JWT inside it
//! by the issuer account key the server is configured with (`auth_callout.issuer`). This
//! module is the protocol only: checking a request, encoding an answer. Who may do what is
//! decided by its caller.

use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod jwt;

pub use jwt::{claims, encode, verified_claims, CalloutError};
use jwt::{invalid, malformed, split};

/// Where the server asks.
pub const AUTH_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

/// The audience of every request.
const REQUEST_AUDIENCE: &str = "nats-authorization-request";

/// How far this replica's clock may run ahead of the server's: a request's expiry is that
/// much in the past before it is refused.
const CLOCK_SKEW: i64 = 30;

/// Larger requests are refused unread (a real one is a few kilobytes; the server caps a
/// client's CONNECT line, token included, at `max_control_line`).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// The server that asks.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ServerId {
    /// Its configured name.
    pub name: String,
    /// Where it listens.
    pub host: String,
    /// Its public nkey (`N…`), new on every start.
    pub id: String,
    /// Its version.
    pub version: String,
}

/// The connecting client, as the server sees it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClientInfo {
    /// Its address.
    pub host: String,
    /// The connection's id on the server (`cid`).
    pub id: u64,
    /// The user name it gave (`[REDACTED]` when it gave a token).
    pub user: String,
    /// The connection name it gave.
    pub name: String,
    /// `Client`, `Leafnode` …
    pub kind: String,
    /// `nats`, `websocket`, `mqtt` …
    #[serde(rename = "type")]
    pub connection_type: String,
}

/// What the client sent in its CONNECT.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectOpts {
    /// A token (`auth_token`).
    pub auth_token: Option<String>,
    /// A user name.
    pub user: Option<String>,
    /// A password.
    pub pass: Option<String>,
    /// The connection name.
    pub name: Option<String>,
    /// The client library's language.
    pub lang: Option<String>,
    /// The client library's version.
    pub version: Option<String>,
}

impl std::fmt::Debug for ConnectOpts {
    /// Never prints the token or the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOpts")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("user", &self.user)
            .field("pass", &self.pass.as_ref().map(|_| "<redacted>"))
            .field("name", &self.name)
            .field("lang", &self.lang)
            .field("version", &self.version)
            .finish()
    }
}

/// A checked authorization request.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Request {
    /// The server asking.
    pub server_id: ServerId,
    /// The key the server made for this connection: the answer is about it alone.
    pub user_nkey: String,
    /// The client.
    pub client_info: ClientInfo,
    /// Its credentials.
    pub connect_opts: ConnectOpts,
}

impl Request {
    /// The credential the client presented: its token, else its password (a client may
    /// give a token as the password, with a user name saying what it wants).
    pub fn credential(&self) -> Option<&str> {
        let opts = &self.connect_opts;
        opts.auth_token
            .as_deref()
            .or(opts.pass.as_deref())
            .filter(|c| !c.is_empty())
    }
}

/// Subjects allowed and denied in one direction.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Subjects {
    /// Allowed (NATS wildcards).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Denied, over what is allowed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// What a client is let in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The connection's user name on the server (shown in its monitoring).
    pub name: String,
    /// The account it lands in (by name: the server's configuration defines it).
    pub account: String,
    /// When the server ends the connection (unix seconds).
    pub expires: i64,
    /// What it may publish. Never empty in both lists: an empty list means "anything".
    pub publish: Subjects,
    /// What it may subscribe to. Likewise.
    pub subscribe: Subjects,
}

/// Checks and reads a request the server sent: its signature by the server key it names,
/// that it is an authorization request from that server, and not expired at `now` (unix
/// seconds).
pub fn decode_request(jwt: &[u8], now: i64) -> Result<Request, CalloutError> {
    if jwt.len() > MAX_REQUEST_BYTES {
        return Err(CalloutError::Malformed(format!(
            "{} bytes, over {MAX_REQUEST_BYTES}",
            jwt.len()
        )));
    }
    let text = std::str::from_utf8(jwt).map_err(|_| malformed("not UTF-8"))?;
    let (claims, signed, signature) = split(text)?;
    let issuer = claims["iss"]
        .as_str()
        .ok_or_else(|| malformed("no issuer"))?;
    let key = KeyPair::from_public_key(issuer).map_err(|_| invalid("the issuer is no nkey"))?;
    if key.key_pair_type() != KeyPairType::Server {
        return Err(invalid("the issuer is not a server key"));
    }
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| CalloutError::Signature)?;
    if claims["aud"].as_str() != Some(REQUEST_AUDIENCE) {
        return Err(invalid("not addressed to the authorization service"));
    }
    let nats = &claims["nats"];
    if nats["type"].as_str() != Some("authorization_request") {
        return Err(invalid("not an authorization request"));
    }
    if let Some(expires) = claims["exp"].as_i64() {
        if expires < now - CLOCK_SKEW {
            return Err(invalid("expired"));
        }
    }
    let request: Request =
        serde_json::from_value(nats.clone()).map_err(|e| malformed(&format!("its claims: {e}")))?;
    if request.server_id.id != issuer {
        return Err(invalid("signed by another server than it names"));
    }
    if KeyPair::from_public_key(&request.user_nkey)
        .map(|k| k.key_pair_type() != KeyPairType::User)
        .unwrap_or(true)
    {
        return Err(invalid("no user key to answer for"));
    }
    Ok(request)
}

/// The issuer account key that signs answers and user JWTs.
pub struct Issuer {
    key: KeyPair,
}

impl std::fmt::Debug for Issuer {
    /// Only the public key: the seed never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("public_key", &self.key.public_key())
            .finish()
    }
}

impl Issuer {
    /// From an account seed (`SA…`).
    pub fn from_seed(seed: &str) -> Result<Self, CalloutError> {
        let key = KeyPair::from_seed(seed.trim())
            .map_err(|_| CalloutError::Issuer("not an nkey seed".into()))?;
        if key.key_pair_type() != KeyPairType::Account {
            return Err(CalloutError::Issuer("not an account seed".into()));
        }
        Ok(Self { key })
    }

    /// A new one (tests, and `aurora nats keys`).
    pub fn generate() -> Self {
        Self {
            key: KeyPair::new_account(),
        }
    }

    /// The public key (`A…`): the server's `auth_callout.issuer`.
    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// The seed, to keep in a secret.
    pub fn seed(&self) -> String {
        self.key.seed().unwrap_or_default()
    }

    /// The answer to `request`: a user JWT for `decision`'s grant, or its refusal (the
    /// reason goes to the server's log; the client is told only that it is refused).
    pub fn answer(
        &self,
        request: &Request,
        decision: Result<&Grant, &str>,
        now: i64,
    ) -> Result<String, CalloutError> {
        let nats = match decision {
            Ok(grant) => {
                // An empty list means "anything" to the server: a grant names both.
                for (direction, subjects) in
                    [("publish", &grant.publish), ("subscribe", &grant.subscribe)]
                {
                    if subjects.allow.is_empty() && subjects.deny.is_empty() {
                        return Err(CalloutError::Issuer(format!(
                            "a grant without {direction} permissions would allow everything"
                        )));
                    }
                }
                let user = self.encode(
                    json!({
                        "sub": request.user_nkey,
                        "aud": grant.account,
                        "name": grant.name,
                        "exp": grant.expires,
                        "nats": {
                            "pub": grant.publish,
                            "sub": grant.subscribe,
                            // Plain and WebSocket clients; no MQTT, no leaf nodes.
                            "allowed_connection_types": ["STANDARD", "WEBSOCKET"],
                            "type": "user",
                            "version": 2,
                        },
                    }),
                    now,
                )?;
                json!({"jwt": user, "type": "authorization_response", "version": 2})
            }
            Err(reason) => {
                json!({"error": reason, "type": "authorization_response", "version": 2})
            }
        };
        self.encode(
            json!({
                "sub": request.user_nkey,
                "aud": request.server_id.id,
                "nats": nats,
            }),
            now,
        )
    }

    /// Signs `claims` (an object) as issued by this key at `now`.
    fn encode(&self, claims: Value, now: i64) -> Result<String, CalloutError> {
        encode(&self.key, claims, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    /// A request as nats-server sends it, signed by `server`.
    fn request(server: &KeyPair, token: &str) -> (String, String) {
        let user = KeyPair::new_user().public_key();
        let jwt = encode(
            server,
            json!({
                "aud": REQUEST_AUDIENCE,
                "sub": Issuer::generate().public_key(),
                "exp": NOW + 2,
                "nats": {
                    "server_id": {"name": "n1", "host": "127.0.0.1", "id": server.public_key(), "version": "2.15.1"},
                    "user_nkey": user,
                    "client_info": {"host": "127.0.0.1", "id": 7, "user": "[REDACTED]", "kind": "Client", "type": "nats"},
                    "connect_opts": {"auth_token": token, "lang": "rust", "version": "0.51.0", "protocol": 1},
                    "type": "authorization_request",
                    "version": 2,
                },
            }),
            NOW,
        )
        .unwrap();
        (jwt, user)
    }

    #[test]
    fn a_servers_request_is_read_with_the_token_and_the_connection() {
        let server = KeyPair::new_server();
        let (jwt, user) = request(&server, "secret-token");
        let request = decode_request(jwt.as_bytes(), NOW).unwrap();
        assert_eq!(request.user_nkey, user);
        assert_eq!(request.credential(), Some("secret-token"));
        assert_eq!(request.client_info.id, 7);
        assert_eq!(request.server_id.id, server.public_key());
        assert!(!format!("{request:?}").contains("secret-token"), "redacted");
    }

    #[test]
    fn forged_tampered_expired_and_foreign_requests_are_refused() {
        let server = KeyPair::new_server();
        let (jwt, _) = request(&server, "t");
        // Another payload under the same signature.
        let parts: Vec<&str> = jwt.split('.').collect();
        let (other, _) = request(&server, "other");
        let other_payload = other.split('.').nth(1).unwrap();
        let tampered = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
        assert_eq!(
            decode_request(tampered.as_bytes(), NOW),
            Err(CalloutError::Signature)
        );
        // Signed by an account key claiming to be a server.
        let account = KeyPair::new_account();
        let forged = encode(&account, claims(&jwt).unwrap(), NOW).unwrap();
        assert!(matches!(
            decode_request(forged.as_bytes(), NOW),
            Err(CalloutError::Invalid(_))
        ));
        // Signed by another server than the one it names.
        let (elsewhere, _) = request(&KeyPair::new_server(), "t");
        let mut claims_elsewhere = claims(&elsewhere).unwrap();
        claims_elsewhere["nats"]["server_id"]["id"] = json!(server.public_key());
        let other_server = KeyPair::new_server();
        let mixed = encode(&other_server, claims_elsewhere, NOW).unwrap();
        assert!(matches!(
            decode_request(mixed.as_bytes(), NOW),
            Err(CalloutError::Invalid(_))
        ));
        assert!(
            decode_request(jwt.as_bytes(), NOW + 20).is_ok(),
            "within the skew"
        );
        assert!(matches!(
            decode_request(jwt.as_bytes(), NOW + 60),
            Err(CalloutError::Invalid(_))
        ));
        for garbage in [
            &b""[..],
            b"a.b",
            b"a.b.c",
            b"\xff\xfe.x.y",
            &vec![b'a'; MAX_REQUEST_BYTES + 1],
        ] {
            assert!(
                matches!(
                    decode_request(garbage, NOW),
                    Err(CalloutError::Malformed(_))
                ),
                "{:?}",
                String::from_utf8_lossy(&garbage[..garbage.len().min(20)])
            );
        }
    }

    #[test]
    fn a_grant_is_a_user_jwt_for_that_connection_signed_by_the_issuer() {
        let server = KeyPair::new_server();
        let (jwt, user) = request(&server, "t");
        let request = decode_request(jwt.as_bytes(), NOW).unwrap();
        let issuer = Issuer::generate();
        let grant = Grant {
            name: "alice".into(),
            account: "USERS".into(),
            expires: NOW + 300,
            publish: Subjects {
                allow: vec![],
                deny: vec![">".into()],
            },
            subscribe: Subjects {
                allow: vec!["aurora.runs.alice.>".into()],
                deny: vec![],
            },
        };
        let answer = issuer.answer(&request, Ok(&grant), NOW).unwrap();
        let response = verified_claims(&answer, &issuer.public_key()).unwrap();
        assert_eq!(response["sub"], user.as_str());
        assert_eq!(response["aud"], server.public_key().as_str());
        assert_eq!(response["nats"]["type"], "authorization_response");
        assert_eq!(response["nats"]["version"], 2);
        assert!(response["nats"].get("error").is_none());
        let user_jwt = response["nats"]["jwt"].as_str().unwrap();
        let claims = verified_claims(user_jwt, &issuer.public_key()).unwrap();
        assert_eq!(claims["sub"], user.as_str());
        assert_eq!(claims["aud"], "USERS");
        assert_eq!(claims["iss"], issuer.public_key().as_str());
        assert_eq!(claims["exp"], NOW + 300);
        assert_eq!(claims["nats"]["pub"], json!({"deny": [">"]}));
        assert_eq!(
            claims["nats"]["sub"],
            json!({"allow": ["aurora.runs.alice.>"]})
        );
        assert_eq!(claims["nats"]["type"], "user");
        assert!(verified_claims(user_jwt, &Issuer::generate().public_key()).is_err());
    }

    #[test]
    fn a_grant_that_would_allow_everything_is_not_signed() {
        let server = KeyPair::new_server();
        let (jwt, _) = request(&server, "t");
        let request = decode_request(jwt.as_bytes(), NOW).unwrap();
        let open = Grant {
            name: "x".into(),
            account: "USERS".into(),
            expires: NOW + 60,
            publish: Subjects::default(),
            subscribe: Subjects {
                allow: vec!["a.>".into()],
                deny: vec![],
            },
        };
        assert!(Issuer::generate().answer(&request, Ok(&open), NOW).is_err());
    }

    #[test]
    fn a_refusal_carries_its_reason_and_no_jwt() {
        let server = KeyPair::new_server();
        let (jwt, _) = request(&server, "t");
        let request = decode_request(jwt.as_bytes(), NOW).unwrap();
        let issuer = Issuer::generate();
        let answer = issuer.answer(&request, Err("token revoked"), NOW).unwrap();
        let response = verified_claims(&answer, &issuer.public_key()).unwrap();
        assert_eq!(response["nats"]["error"], "token revoked");
        assert!(response["nats"].get("jwt").is_none());
    }

    #[test]
    fn issuer_seeds_round_trip_and_other_keys_are_refused() {
        let issuer = Issuer::generate();
        let again = Issuer::from_seed(&issuer.seed()).unwrap();
        assert_eq!(again.public_key(), issuer.public_key());
        assert!(!format!("{again:?}").contains(&issuer.seed()));
        let user_seed = KeyPair::new_user().seed().unwrap();
        assert!(Issuer::from_seed(&user_seed).is_err());
        assert!(Issuer::from_seed("nonsense").is_err());
    }
}
