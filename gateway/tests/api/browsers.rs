//! What browsers rely on: security headers on every answer, CORS for allowed origins.

use rstest::rstest;
use rstest_reuse::apply;

use super::both_modes;

use super::*;

#[apply(both_modes)]
async fn every_response_carries_the_security_headers(mode: Mode) {
    let app = spawn_app(mode).await;
    let plain = reqwest::Client::new();
    let responses = vec![
        (
            "health",
            plain.get(app.url("/health")).send().await.unwrap(),
        ),
        (
            "metrics",
            plain.get(app.url("/metrics")).send().await.unwrap(),
        ),
        (
            "a read",
            app.client
                .get(app.url("/api/v1/users/me"))
                .send()
                .await
                .unwrap(),
        ),
        (
            "401",
            plain.get(app.url("/api/v1/runs")).send().await.unwrap(),
        ),
        ("404", plain.get(app.url("/nope")).send().await.unwrap()),
        (
            "400",
            plain
                .post(app.url("/api/v1/auth/login"))
                .header("content-type", "application/json")
                .body("{not json")
                .send()
                .await
                .unwrap(),
        ),
        (
            "405",
            plain
                .delete(app.url("/api/v1/auth/login"))
                .send()
                .await
                .unwrap(),
        ),
    ];
    for (what, response) in responses {
        let headers = response.headers();
        assert_eq!(headers["x-frame-options"], "SAMEORIGIN", "{what}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{what}");
        assert!(
            headers["strict-transport-security"]
                .to_str()
                .unwrap()
                .starts_with("max-age="),
            "{what}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{what}"
        );
    }
    app.stop().await;
}

#[apply(both_modes)]
async fn browsers_on_allowed_origins_may_call_the_api_and_others_may_not(mode: Mode) {
    let app = spawn_app(mode).await;
    let (mut config, dir) = app.stop().await;
    config.cors_origins = "*, https://a.example".into();
    let error = Application::build(config.clone()).await.err().unwrap();
    assert!(error.to_string().contains("AURORA_CORS_ORIGINS"), "{error}");
    config.cors_origins = "https://app.example, http://localhost:3000".into();
    let app = start(config, dir).await;
    let plain = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        plain
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/runs"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example").await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("authorization"));
    assert!(allowed
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    assert_eq!(allowed.headers()["x-frame-options"], "SAMEORIGIN");
    problem(
        preflight("https://evil.example").await.unwrap(),
        403,
        "cors-forbidden",
    )
    .await;

    let get = |origin: Option<&'static str>| {
        let mut request = app.client.get(app.url("/api/v1/runs"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let from_app = get(Some("http://localhost:3000")).await.unwrap();
    assert_eq!(from_app.status(), StatusCode::OK);
    assert_eq!(
        from_app.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert!(from_app.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));
    for origin in [Some("https://evil.example"), None] {
        let response = get(origin).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .headers()
            .get("access-control-allow-origin")
            .is_none());
    }
    app.stop().await;
}
