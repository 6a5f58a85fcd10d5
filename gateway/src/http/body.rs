//! Request bodies and JSON replies shared by every route: bounded bodies, JSON parsed in
//! two steps so that "not JSON" (400) and "wrong shape" (422) are told apart.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::context::RequestContext;
use super::problem::Problem;

/// The body, at most `limit` bytes, with the headers that describe it.
pub fn json_body(limit: u64) -> impl Filter<Extract = (JsonBody,), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and(bounded_body(limit))
        .map(|headers, bytes| JsonBody { headers, bytes })
}

/// A request body with the headers that describe it.
#[derive(Debug)]
pub struct JsonBody {
    headers: HeaderMap,
    bytes: Bytes,
}

/// The body was larger than the configured limit.
#[derive(Debug)]
pub struct BodyTooLarge {
    /// The limit in bytes.
    pub limit: u64,
}

impl warp::reject::Reject for BodyTooLarge {}

/// The request body, at most `limit` bytes (declared or chunked).
fn bounded_body(limit: u64) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared, stream| read_bounded(declared, stream, limit))
}

/// Bodies up to this size are read to the end even when refused, so that the client,
/// still sending, gets to read the 413 instead of a reset connection.
const DRAIN_CAP: u64 = 1024 * 1024;

async fn read_bounded<S, B>(
    declared: Option<u64>,
    stream: S,
    limit: u64,
) -> Result<Bytes, Rejection>
where
    S: futures::Stream<Item = Result<B, warp::Error>>,
    B: bytes::Buf,
{
    use bytes::BufMut;
    use futures::StreamExt;
    let too_large = || warp::reject::custom(BodyTooLarge { limit });
    if declared.is_some_and(|n| n > limit.max(DRAIN_CAP)) {
        return Err(too_large());
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = bytes::BytesMut::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| warp::reject::reject())?;
        received += chunk.remaining() as u64;
        if received > limit.max(DRAIN_CAP) {
            return Err(too_large());
        }
        if received <= limit {
            body.put(chunk);
        }
    }
    if received > limit {
        return Err(too_large());
    }
    Ok(body.freeze())
}

impl JsonBody {
    /// The request's headers.
    pub fn headers_map(&self) -> &HeaderMap {
        &self.headers
    }

    /// The raw bytes, as received (signatures are over these).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parses the body as `T` (an empty body is `empty`, if given), or says precisely why not.
    pub fn parse<T: DeserializeOwned>(&self, empty: Option<T>) -> Result<T, Problem> {
        if let Some(content_type) = self.headers.get(http::header::CONTENT_TYPE) {
            let media = content_type.to_str().unwrap_or_default();
            let essence = media.split(';').next().unwrap_or_default().trim();
            if !(essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")) {
                return Err(Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "Unsupported media type",
                    format!("send the body as application/json, not {media:?}"),
                ));
            }
        }
        if self.bytes.iter().all(u8::is_ascii_whitespace) {
            return empty.ok_or_else(|| {
                Problem::bad_request(
                    "empty-body",
                    "the request body is empty; send a JSON object",
                )
            });
        }
        // Two steps, so that "not JSON" (400) and "JSON of the wrong shape" (422) are told
        // apart reliably. A key given twice is refused: parsers disagree on which one wins
        // (serde keeps the last, others the first), and a body must mean one thing.
        let value = strict_json(&self.bytes).map_err(|e| {
            if e.to_string().contains(DUPLICATE) {
                Problem::unprocessable("duplicate-key", format!("invalid request body: {e}"))
            } else {
                Problem::bad_request("malformed-json", format!("the body is not valid JSON: {e}"))
            }
        })?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let at = e.path().to_string();
            let pointer = pointer(e.path());
            let e = e.into_inner();
            let detail = if at.is_empty() || at == "." {
                format!("invalid request body: {e}")
            } else {
                format!("invalid request body at {at}: {e}")
            };
            Problem::unprocessable("invalid-body", detail).at(pointer, e.to_string())
        })
    }
}

/// The JSON pointer (RFC 6901) of a path serde reports: `steps[1].format` is
/// `/steps/1/format`; the body itself is the empty pointer.
fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("/{index}")),
            // An externally tagged enum's variant is a key of the JSON too.
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                out.push('/');
                out.push_str(&name.replace('~', "~0").replace('/', "~1"));
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// A JSON reply carrying the request id.
pub fn json(status: StatusCode, body: &impl Serialize, ctx: &RequestContext) -> Response {
    with_request_id(
        warp::reply::with_status(warp::reply::json(body), status).into_response(),
        ctx,
    )
}

/// `204 No Content`, carrying the request id.
pub fn no_content(ctx: &RequestContext) -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    with_request_id(response, ctx)
}

pub(crate) fn with_request_id(mut response: Response, ctx: &RequestContext) -> Response {
    if let Ok(id) = http::HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert("x-request-id", id);
    }
    response
}

/// What a duplicate key's error says.
const DUPLICATE: &str = "appears twice";

/// Parses JSON text into a value, refusing any object that names a key twice (a data
/// error; syntax errors stay syntax errors). Nesting is bounded by serde_json's own
/// recursion limit.
pub fn strict_json(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::de::{self, MapAccess, SeqAccess, Visitor};

    struct Strict;

    impl<'de> de::DeserializeSeed<'de> for Strict {
        type Value = serde_json::Value;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Strict {
        type Value = serde_json::Value;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(v.into())
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(serde_json::Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(Strict)? {
                items.push(item);
            }
            Ok(items.into())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut object = serde_json::Map::new();
            while let Some(key) = map.next_key::<String>()? {
                if object.contains_key(&key) {
                    return Err(de::Error::custom(format!("the key {key:?} {DUPLICATE}")));
                }
                let value = map.next_value_seed(Strict)?;
                object.insert(key, value);
            }
            Ok(object.into())
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = de::DeserializeSeed::deserialize(Strict, &mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Any bytes: a downloaded file or an upload, of the media type the headers give.
pub struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        binary_schema()
    }
}

impl utoipa::ToSchema for Binary {
    fn name() -> std::borrow::Cow<'static, str> {
        "Binary".into()
    }
}

/// `{"type": "string", "contentMediaType": "application/octet-stream"}`: bytes.
fn binary_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .content_media_type("application/octet-stream")
        .into()
}

#[cfg(test)]
mod tests {
    use super::strict_json;

    #[test]
    fn a_key_given_twice_is_a_data_error_and_bad_syntax_a_syntax_error() {
        let twice = strict_json(br#"{"steps":[],"input":{"url":"a","url":"b"}}"#).unwrap_err();
        assert!(twice.is_data(), "{twice}");
        assert!(
            twice.to_string().contains("\"url\" appears twice"),
            "{twice}"
        );
        for bad in [&b"{"[..], b"[1,]", b"{\"a\":1} x", b"nul"] {
            let error = strict_json(bad).unwrap_err();
            assert!(error.is_syntax() || error.is_eof(), "{error}");
        }
        let fine = br#"{"a":[{"b":1},{"b":2.5}],"c":null,"d":"\u00e9","e":-3,"f":true}"#;
        assert_eq!(
            strict_json(fine).unwrap(),
            serde_json::from_slice::<serde_json::Value>(fine).unwrap()
        );
        // Deep nesting stops at serde_json's recursion limit, it does not overflow the stack.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(strict_json(deep.as_bytes()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::strict_json;

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(crate::properties())]

        #[test]
        fn json_without_repeated_keys_reads_as_serde_reads_it(value in json()) {
            let text = serde_json::to_string(&value).unwrap();
            prop_assert_eq!(strict_json(text.as_bytes()).unwrap(), value);
        }

        #[test]
        fn an_object_that_repeats_a_key_is_refused_at_any_depth(
            value in json(),
            key in "[a-z]{1,4}",
            depth in 0usize..4,
        ) {
            let mut text = format!(r#"{{"{key}":1,"{key}":{}}}"#, serde_json::to_string(&value).unwrap());
            for _ in 0..depth {
                text = format!(r#"{{"outer":[{text}]}}"#);
            }
            let error = strict_json(text.as_bytes()).unwrap_err();
            prop_assert!(error.to_string().contains("appears twice"), "{}", error);
        }

        #[test]
        fn any_bytes_are_json_or_an_error_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = strict_json(&bytes);
        }
    }
}
