//! NATS v2 JWTs: `{"typ":"JWT","alg":"ed25519-nkey"}`, base64url without padding, an
//! ed25519 signature by an nkey over `header.payload`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use nkeys::KeyPair;
use serde_json::{Map, Value};
use sha2::{Digest, Sha512_256};

/// The JWT header of every NATS v2 JWT.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// Encodes `claims` as a NATS v2 JWT signed by `key`: `iss` and `iat` are set, and `jti`
/// as NATS's own libraries compute it (base32 of SHA-512/256 over the standard claims).
pub fn encode(key: &KeyPair, claims: Value, now: i64) -> Result<String, CalloutError> {
    let Value::Object(mut claims) = claims else {
        return Err(CalloutError::Issuer("claims must be an object".into()));
    };
    claims.insert("iss".into(), Value::String(key.public_key()));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("jti".into(), Value::String(jti(&claims)));
    let payload = serde_json::to_vec(&Value::Object(claims))
        .map_err(|e| CalloutError::Issuer(e.to_string()))?;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = key
        .sign(signed.as_bytes())
        .map_err(|e| CalloutError::Issuer(e.to_string()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// The claims of a JWT, without checking its signature (tests, and reading what was
/// answered).
pub fn claims(jwt: &str) -> Result<Value, CalloutError> {
    split(jwt).map(|(claims, _, _)| claims)
}

/// Checks a JWT's signature against `public_key` and returns its claims.
pub fn verified_claims(jwt: &str, public_key: &str) -> Result<Value, CalloutError> {
    let (claims, signed, signature) = split(jwt)?;
    let key = KeyPair::from_public_key(public_key).map_err(|_| invalid("no nkey"))?;
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| CalloutError::Signature)?;
    Ok(claims)
}

/// The claims, the signed part and the signature of a JWT.
pub(super) fn split(jwt: &str) -> Result<(Value, &str, Vec<u8>), CalloutError> {
    let mut parts = jwt.trim().splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("not three parts"));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| malformed(&format!("its {what} is not base64url")))
    };
    let header: Value = serde_json::from_slice(&decode(header, "header")?)
        .map_err(|_| malformed("its header is not JSON"))?;
    if !header["alg"]
        .as_str()
        .is_some_and(|a| a.eq_ignore_ascii_case("ed25519-nkey"))
    {
        return Err(malformed("not an ed25519-nkey JWT"));
    }
    let claims: Value = serde_json::from_slice(&decode(payload, "payload")?)
        .map_err(|_| malformed("its payload is not JSON"))?;
    if !claims.is_object() {
        return Err(malformed("its payload is not an object"));
    }
    let signature = decode(signature, "signature")?;
    let signed = &jwt.trim()[..header_len(jwt.trim())];
    Ok((claims, signed, signature))
}

/// Length of `header.payload` in a JWT.
fn header_len(jwt: &str) -> usize {
    jwt.rfind('.').unwrap_or(jwt.len())
}

/// NATS's `jti`: base32 (no padding) of SHA-512/256 over the standard claims in Go's
/// order (`aud, exp, iat, iss, name, nbf, sub`), empty ones left out.
pub(super) fn jti(claims: &Map<String, Value>) -> String {
    let mut standard = Map::new();
    for name in ["aud", "exp", "iat", "iss", "name", "nbf", "sub"] {
        match claims.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
            Some(value) => {
                standard.insert(name.into(), value.clone());
            }
        }
    }
    // In Go's field order, which is also the alphabetical order a map without
    // `preserve_order` keeps (and, with it, the order inserted above).
    let text = Value::Object(standard).to_string();
    let digest = Sha512_256::digest(text.as_bytes());
    data_encoding::BASE32_NOPAD.encode(&digest)
}

/// Why a request could not be read or an answer not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CalloutError {
    /// Not a JWT of three base64url parts with JSON inside, or too large.
    #[error("malformed authorization request: {0}")]
    Malformed(String),
    /// The signature does not verify against the server key it names.
    #[error("the authorization request's signature does not verify")]
    Signature,
    /// Signed, but not an authorization request from this server, or expired.
    #[error("not a valid authorization request: {0}")]
    Invalid(String),
    /// The issuer key cannot sign (a public key, not a seed).
    #[error("the callout's issuer key cannot sign: {0}")]
    Issuer(String),
}

pub(super) fn malformed(what: &str) -> CalloutError {
    CalloutError::Malformed(what.into())
}

pub(super) fn invalid(what: &str) -> CalloutError {
    CalloutError::Invalid(what.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_jti_is_the_one_nats_computes() {
        // From nats-io/jwt's algorithm: the standard claims in Go's field order.
        let mut claims = Map::new();
        claims.insert("sub".into(), json!("UABC"));
        claims.insert("iss".into(), json!("AXYZ"));
        claims.insert("iat".into(), json!(1));
        claims.insert("aud".into(), json!("USERS"));
        let text = r#"{"aud":"USERS","iat":1,"iss":"AXYZ","sub":"UABC"}"#;
        let expected = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(text.as_bytes()));
        assert_eq!(jti(&claims), expected);
    }
}
