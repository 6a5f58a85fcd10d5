//! Verifying inbound webhooks signed with the Standard Webhooks (Svix) scheme.
//!
//! (Long by its tests: the official vectors, every refusal, and a property test.)
//!
//! See <https://www.standardwebhooks.com/>. A sender shares a secret with the receiver,
//! written `whsec_<base64>`; the HMAC key is the base64-decoded part (a bare base64 string
//! without the prefix is accepted too). Every request carries three headers:
//!
//! - `webhook-id`: the message id, unique per message (the same on every retry);
//! - `webhook-timestamp`: when the message was signed, in Unix seconds;
//! - `webhook-signature`: a space-delimited list of `<version>,<base64>` entries.
//!
//! Svix sends the same headers as `svix-id`, `svix-timestamp` and `svix-signature`. One
//! family is used as a whole, never a mix: `webhook-*` if any of its headers is present,
//! otherwise `svix-*` if any of those is, otherwise `webhook-*` (and the missing header is
//! reported under that name).
//!
//! The signed content is `{id}.{timestamp}.{body}`, with the id and timestamp exactly as
//! they appear in the headers and the body as the raw bytes received, and a `v1` signature
//! is `base64(HMAC-SHA256(key, content))`. A message verifies if any `v1` entry of the
//! header matches under any configured secret: several entries let a sender sign with an
//! old and a new secret while rotating, several secrets let the receiver do the same.
//! Entries of other versions (`v1a,` for asymmetric signatures, …) are ignored.
//!
//! # Replays
//!
//! The timestamp is covered by the signature, and a message signed more than [`TOLERANCE`]
//! before or after `now` is refused, so a captured request can only be replayed within that
//! window; receivers that must be idempotent should also remember the [`Verified::id`]s they
//! have seen for that long.
//!
//! # Why constant time
//!
//! Comparing the expected MAC with the received one byte by byte and stopping at the first
//! difference takes longer the longer the matching prefix is. An attacker who can time the
//! responses could then guess a valid signature for a forged body one byte at a time,
//! without ever knowing the secret. Every comparison here goes through
//! [`Mac::verify_slice`], whose running time does not depend on where (or whether) the
//! bytes differ.

use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far the signed timestamp may be from `now`, in either direction.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// Longest message id accepted, in characters (all ASCII).
pub const MAX_ID_LEN: usize = 256;

/// Prefix of a secret in its usual `whsec_<base64>` form.
pub const SECRET_PREFIX: &str = "whsec_";

/// The Standard Webhooks header names: id, timestamp, signature.
const WEBHOOK_HEADERS: Headers = Headers {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

/// The Svix header names: id, timestamp, signature.
const SVIX_HEADERS: Headers = Headers {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// The signature version this module verifies.
const VERSION: &str = "v1";

/// Base64 (standard alphabet) that accepts input with or without `=` padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook was refused, or a secret could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookError {
    /// A required header is absent; the name is the header's.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// A header is present but malformed (not ASCII, an id too long, a timestamp that is
    /// not a number of seconds, …); the name is the header's.
    #[error("invalid header {0}")]
    InvalidHeader(&'static str),
    /// The signed timestamp is more than [`TOLERANCE`] away from now.
    #[error("webhook timestamp outside the tolerated window")]
    TimestampOutOfTolerance,
    /// No `v1` signature in the header matches under any configured secret.
    #[error("no matching webhook signature")]
    BadSignature,
    /// A configured secret is empty or not base64 (or no secret was configured at all).
    #[error("invalid webhook secret")]
    InvalidSecret,
}

/// The HMAC keys webhooks are verified against: one per configured secret.
///
/// `Debug` shows how many keys there are, never the keys.
#[derive(Clone)]
pub struct WebhookSecrets {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .finish()
    }
}

impl WebhookSecrets {
    /// Parses a list of secrets separated by commas and/or whitespace, each `whsec_<base64>`
    /// or bare base64 (padding optional).
    ///
    /// # Errors
    /// [`WebhookError::InvalidSecret`] if the list is empty, or any secret is not base64 or
    /// decodes to no bytes.
    pub fn parse(list: &str) -> Result<Self, WebhookError> {
        let keys = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(decode_secret)
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(WebhookError::InvalidSecret);
        }
        Ok(Self { keys })
    }

    /// How many secrets are configured (at least one).
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: [`WebhookSecrets::parse`] refuses an empty list.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Decodes one secret, `whsec_<base64>` or bare base64, into its HMAC key.
///
/// Useful to tests that configure a `whsec_` secret and sign with [`sign`].
///
/// # Errors
/// [`WebhookError::InvalidSecret`] if the secret is not base64 or decodes to no bytes.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, WebhookError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    let key = LENIENT_BASE64
        .decode(encoded)
        .map_err(|_| WebhookError::InvalidSecret)?;
    if key.is_empty() {
        return Err(WebhookError::InvalidSecret);
    }
    Ok(key)
}

/// A webhook whose signature and timestamp checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The message id (`webhook-id` / `svix-id`): the key to deduplicate retries by.
    pub id: String,
    /// When the sender signed the message.
    pub timestamp: DateTime<Utc>,
}

/// The names of one header family.
struct Headers {
    id: &'static str,
    timestamp: &'static str,
    signature: &'static str,
}

impl Headers {
    /// `webhook-*` if any of its headers is present, else `svix-*` if any of those is, else
    /// `webhook-*`.
    fn pick(headers: &HeaderMap) -> &'static Headers {
        let present = |family: &Headers| {
            [family.id, family.timestamp, family.signature]
                .iter()
                .any(|name| headers.contains_key(*name))
        };
        if present(&WEBHOOK_HEADERS) {
            &WEBHOOK_HEADERS
        } else if present(&SVIX_HEADERS) {
            &SVIX_HEADERS
        } else {
            &WEBHOOK_HEADERS
        }
    }
}

/// The value of header `name` as a string; the first one if it is repeated.
fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, WebhookError> {
    headers
        .get(name)
        .ok_or(WebhookError::MissingHeader(name))?
        .to_str()
        .map_err(|_| WebhookError::InvalidHeader(name))
}

/// Verifies a webhook: its headers, its timestamp against `now` ± [`TOLERANCE`], and its
/// signature over `body` (the raw bytes received, before any parsing).
///
/// The checks run in that order, so a stale or malformed request costs no HMAC. Each secret
/// is run over the content once, and its MAC compared in constant time with every `v1`
/// entry of the signature header.
///
/// # Errors
/// - [`WebhookError::MissingHeader`] / [`WebhookError::InvalidHeader`]: a header of the
///   chosen family is absent or malformed: not visible ASCII, an id longer than
///   [`MAX_ID_LEN`], a timestamp that is not a plain decimal number of seconds.
/// - [`WebhookError::TimestampOutOfTolerance`]: signed more than [`TOLERANCE`] from `now`.
/// - [`WebhookError::BadSignature`]: no `v1` entry matches under any secret (including a
///   header with no well-formed `v1` entry at all).
pub fn verify(
    secrets: &WebhookSecrets,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, WebhookError> {
    let names = Headers::pick(headers);
    let id = header(headers, names.id)?;
    let timestamp_text = header(headers, names.timestamp)?;
    let signatures = header(headers, names.signature)?;

    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WebhookError::InvalidHeader(names.id));
    }

    let timestamp =
        parse_timestamp(timestamp_text).ok_or(WebhookError::InvalidHeader(names.timestamp))?;
    if now.timestamp().abs_diff(timestamp.timestamp()) > TOLERANCE.as_secs() {
        return Err(WebhookError::TimestampOutOfTolerance);
    }

    let candidates: Vec<Vec<u8>> = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, sig)| LENIENT_BASE64.decode(sig).ok())
        .collect();
    if candidates.is_empty() {
        return Err(WebhookError::BadSignature);
    }

    // Bitwise `|` rather than `any`: every (secret, signature) pair is checked, so how long
    // verification takes does not tell which secret or which entry matched.
    let mut matched = false;
    for key in &secrets.keys {
        let mac = content_mac(key, id, timestamp_text, body);
        for candidate in &candidates {
            matched |= mac.clone().verify_slice(candidate).is_ok();
        }
    }
    if !matched {
        return Err(WebhookError::BadSignature);
    }

    Ok(Verified {
        id: id.to_owned(),
        timestamp,
    })
}

/// Signs a message the way a Standard Webhooks sender does: returns `v1,<base64>`, ready to
/// be a `webhook-signature` header (or one entry of it).
///
/// `secret_key` is the decoded key (see [`decode_secret`]), not the `whsec_` text.
#[must_use]
pub fn sign(secret_key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = content_mac(secret_key, id, &timestamp.to_string(), body);
    format!("{VERSION},{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The HMAC-SHA256 state after `{id}.{timestamp}.{body}`, fed piecewise (no copy of the
/// body).
fn content_mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// A timestamp header: decimal digits only (no sign, no spaces, no fraction), at most 19 of
/// them, within chrono's range.
fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = text.parse().ok()?;
    DateTime::from_timestamp(seconds, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    // The official Standard Webhooks test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const OTHER_SECRET: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24=";

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn secrets(list: &str) -> WebhookSecrets {
        WebhookSecrets::parse(list).unwrap()
    }

    fn key(secret: &str) -> Vec<u8> {
        decode_secret(secret).unwrap()
    }

    fn headers(prefix: &str, id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in [("id", id), ("timestamp", ts), ("signature", sig)] {
            map.insert(
                http::header::HeaderName::from_bytes(format!("{prefix}-{name}").as_bytes())
                    .unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn vector_headers(sig: &str) -> HeaderMap {
        headers("webhook", ID, &TS.to_string(), sig)
    }

    #[test]
    fn the_official_test_vector_signs_and_verifies() {
        assert_eq!(sign(&key(SECRET), ID, TS, BODY), EXPECTED);
        let verified = verify(&secrets(SECRET), &vector_headers(EXPECTED), BODY, at(TS)).unwrap();
        assert_eq!(
            verified,
            Verified {
                id: ID.to_owned(),
                timestamp: at(TS),
            }
        );
    }

    #[test]
    fn a_bare_base64_secret_is_the_same_key_as_its_whsec_form() {
        let bare = SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(key(bare), key(SECRET));
        assert!(verify(&secrets(bare), &vector_headers(EXPECTED), BODY, at(TS)).is_ok());
    }

    #[test]
    fn svix_headers_are_accepted() {
        let map = headers("svix", ID, &TS.to_string(), EXPECTED);
        let verified = verify(&secrets(SECRET), &map, BODY, at(TS)).unwrap();
        assert_eq!(verified.id, ID);
    }

    #[test]
    fn when_both_families_are_present_webhook_headers_win() {
        let mut map = vector_headers(EXPECTED);
        map.extend(headers("svix", "msg_other", "1", "v1,AAAA"));
        assert!(verify(&secrets(SECRET), &map, BODY, at(TS)).is_ok());

        // And the families are not mixed: webhook-* chosen, its missing header is reported.
        let mut map = headers("svix", ID, &TS.to_string(), EXPECTED);
        map.insert("webhook-id", HeaderValue::from_static(ID));
        assert_eq!(
            verify(&secrets(SECRET), &map, BODY, at(TS)),
            Err(WebhookError::MissingHeader("webhook-timestamp"))
        );
    }

    #[test]
    fn a_tampered_body_is_refused() {
        let tampered = br#"{"test": 2432232315}"#;
        assert_eq!(
            verify(
                &secrets(SECRET),
                &vector_headers(EXPECTED),
                tampered,
                at(TS)
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_tampered_id_or_timestamp_is_refused() {
        let map = headers("webhook", "msg_other", &TS.to_string(), EXPECTED);
        assert_eq!(
            verify(&secrets(SECRET), &map, BODY, at(TS)),
            Err(WebhookError::BadSignature)
        );
        let map = headers("webhook", ID, &(TS + 1).to_string(), EXPECTED);
        assert_eq!(
            verify(&secrets(SECRET), &map, BODY, at(TS)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        assert_eq!(
            verify(
                &secrets(OTHER_SECRET),
                &vector_headers(EXPECTED),
                BODY,
                at(TS)
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn each_missing_header_is_refused_by_name() {
        for prefix in ["webhook", "svix"] {
            for name in ["id", "timestamp", "signature"] {
                let mut map = headers(prefix, ID, &TS.to_string(), EXPECTED);
                let header = format!("{prefix}-{name}");
                map.remove(header.as_str());
                let err = verify(&secrets(SECRET), &map, BODY, at(TS)).unwrap_err();
                assert_eq!(err, WebhookError::MissingHeader(leak(&header)), "{header}");
            }
        }
        assert_eq!(
            verify(&secrets(SECRET), &HeaderMap::new(), BODY, at(TS)),
            Err(WebhookError::MissingHeader("webhook-id"))
        );
    }

    /// The `&'static str` among the known header names equal to `name`.
    fn leak(name: &str) -> &'static str {
        [WEBHOOK_HEADERS, SVIX_HEADERS]
            .iter()
            .flat_map(|h| [h.id, h.timestamp, h.signature])
            .find(|n| *n == name)
            .unwrap()
    }

    #[test]
    fn a_timestamp_too_old_or_too_far_ahead_is_refused() {
        let tolerance = i64::try_from(TOLERANCE.as_secs()).unwrap();
        let s = secrets(SECRET);
        let map = vector_headers(EXPECTED);
        // Exactly at the edge of the window, either way: accepted.
        assert!(verify(&s, &map, BODY, at(TS + tolerance)).is_ok());
        assert!(verify(&s, &map, BODY, at(TS - tolerance)).is_ok());
        // One second beyond: signed too long ago, or too far in the future.
        assert_eq!(
            verify(&s, &map, BODY, at(TS + tolerance + 1)),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(&s, &map, BODY, at(TS - tolerance - 1)),
            Err(WebhookError::TimestampOutOfTolerance)
        );
        // Far away, with a validly signed far-future timestamp.
        let future = TS + 86_400;
        let sig = sign(&key(SECRET), ID, future, BODY);
        let map = headers("webhook", ID, &future.to_string(), &sig);
        assert_eq!(
            verify(&s, &map, BODY, at(TS)),
            Err(WebhookError::TimestampOutOfTolerance)
        );
    }

    #[test]
    fn a_malformed_timestamp_is_an_invalid_header() {
        for ts in [
            "",
            "abc",
            "-5",
            "+1614265330",
            "1614265330.5",
            " 1614265330",
            "99999999999999999999",
        ] {
            let map = headers("webhook", ID, ts, EXPECTED);
            assert_eq!(
                verify(&secrets(SECRET), &map, BODY, at(TS)),
                Err(WebhookError::InvalidHeader("webhook-timestamp")),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn a_malformed_id_is_an_invalid_header() {
        let too_long = "m".repeat(MAX_ID_LEN + 1);
        for id in ["", "msg id", "msg\tid", too_long.as_str()] {
            let map = headers("webhook", id, &TS.to_string(), EXPECTED);
            assert_eq!(
                verify(&secrets(SECRET), &map, BODY, at(TS)),
                Err(WebhookError::InvalidHeader("webhook-id")),
                "{id:?}"
            );
        }
        let mut map = vector_headers(EXPECTED);
        map.insert(
            "webhook-id",
            HeaderValue::from_bytes("msg_é".as_bytes()).unwrap(),
        );
        assert_eq!(
            verify(&secrets(SECRET), &map, BODY, at(TS)),
            Err(WebhookError::InvalidHeader("webhook-id"))
        );

        // The longest id allowed verifies.
        let longest = "m".repeat(MAX_ID_LEN);
        let sig = sign(&key(SECRET), &longest, TS, BODY);
        let map = headers("webhook", &longest, &TS.to_string(), &sig);
        assert!(verify(&secrets(SECRET), &map, BODY, at(TS)).is_ok());
    }

    #[test]
    fn one_valid_signature_among_several_is_enough() {
        let wrong = sign(&key(OTHER_SECRET), ID, TS, BODY);
        for header in [
            format!("{wrong} {EXPECTED}"),
            format!("{EXPECTED} {wrong}"),
            format!("v1,AAAA {wrong}  {EXPECTED} v1,not-base64!"),
        ] {
            assert!(
                verify(&secrets(SECRET), &vector_headers(&header), BODY, at(TS)).is_ok(),
                "{header}"
            );
        }
        assert_eq!(
            verify(
                &secrets(SECRET),
                &vector_headers(&format!("{wrong} v1,AAAA")),
                BODY,
                at(TS)
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_second_secret_verifies_during_rotation() {
        let sig = sign(&key(OTHER_SECRET), ID, TS, BODY);
        for list in [
            format!("{SECRET},{OTHER_SECRET}"),
            format!("{SECRET} {OTHER_SECRET}"),
            format!(" {SECRET} ,\n{OTHER_SECRET}, "),
        ] {
            let s = secrets(&list);
            assert_eq!(s.len(), 2);
            assert!(
                verify(&s, &vector_headers(&sig), BODY, at(TS)).is_ok(),
                "{list:?}"
            );
            assert!(
                verify(&s, &vector_headers(EXPECTED), BODY, at(TS)).is_ok(),
                "{list:?}"
            );
        }
    }

    #[test]
    fn entries_of_other_versions_are_ignored() {
        let b64 = EXPECTED.strip_prefix("v1,").unwrap();
        // The right bytes under another version label do not count.
        for header in [
            format!("v1a,{b64}"),
            format!("v2,{b64}"),
            b64.to_owned(),
            format!("V1,{b64}"),
        ] {
            assert_eq!(
                verify(&secrets(SECRET), &vector_headers(&header), BODY, at(TS)),
                Err(WebhookError::BadSignature),
                "{header}"
            );
        }
        // Nor do they get in the way of a v1 entry.
        let header = format!("v1a,c29tZXRoaW5n v2,{b64} {EXPECTED}");
        assert!(verify(&secrets(SECRET), &vector_headers(&header), BODY, at(TS)).is_ok());
    }

    #[test]
    fn an_empty_or_garbage_signature_header_is_a_bad_signature() {
        for header in ["", "   ", "garbage", "v1,", "v1,%%%"] {
            assert_eq!(
                verify(&secrets(SECRET), &vector_headers(header), BODY, at(TS)),
                Err(WebhookError::BadSignature),
                "{header:?}"
            );
        }
    }

    #[test]
    fn parsing_refuses_empty_lists_and_bad_secrets() {
        for list in [
            "",
            " , \n",
            "whsec_",
            "whsec_!!!notbase64",
            "whsec_a",
            &format!("{SECRET},whsec_%%"),
        ] {
            assert_eq!(
                WebhookSecrets::parse(list).map(|_| ()),
                Err(WebhookError::InvalidSecret),
                "{list:?}"
            );
        }
        // Padding is optional.
        assert_eq!(key("whsec_YWJj"), b"abc");
        assert_eq!(key("YWI="), b"ab");
        assert_eq!(key("YWI"), b"ab");
    }

    #[test]
    fn debug_redacts_the_keys() {
        let s = secrets(&format!("{SECRET} {OTHER_SECRET}"));
        let shown = format!("{s:?}");
        assert_eq!(shown, "WebhookSecrets { keys: <2 redacted> }");
        let bare = SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert!(!shown.contains(bare));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(pairs: &[(String, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let (Ok(name), Ok(value)) = (
                http::header::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(value),
            ) {
                map.append(name, value);
            }
        }
        map
    }

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn only_the_secrets_signature_over_these_exact_bytes_verifies(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            id in "[a-zA-Z0-9_]{1,30}",
            skew in -400i64..400,
            flip in any::<prop::sample::Index>(),
            junk in proptest::collection::vec(("(webhook|svix)-(id|timestamp|signature)", ".{0,60}"), 0..4),
        ) {
            let secrets = WebhookSecrets::parse(SECRET).unwrap();
            let key = decode_secret(SECRET).unwrap();
            let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
            let ts = now.timestamp() + skew;
            let signature = sign(&key, &id, ts, &body);
            let good = headers(&[
                ("webhook-id".into(), id.clone()),
                ("webhook-timestamp".into(), ts.to_string()),
                ("webhook-signature".into(), signature.clone()),
            ]);
            let verdict = verify(&secrets, &good, &body, now);
            prop_assert_eq!(verdict.is_ok(), skew.unsigned_abs() <= TOLERANCE.as_secs());
            // One byte changed anywhere in the body: refused.
            if !body.is_empty() {
                let mut tampered = body.clone();
                let at = flip.index(tampered.len());
                tampered[at] ^= 0x01;
                prop_assert!(verify(&secrets, &good, &tampered, now).is_err());
            }
            // Headers of anyone's making: never a panic, never accepted.
            prop_assert!(verify(&secrets, &headers(&junk), &body, now).is_err());
        }
    }
}
