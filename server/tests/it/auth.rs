use crate::common::*;
use hallway_shared::protocol::{
    AuthResponse, ErrorCode, LoginRequest, RegisterRequest, UpgradeRequest, UserInfo,
};
use reqwest::StatusCode;
use serde_json::json;

fn register(username: &str, password: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        password: password.into(),
        display_name: format!("{username} display"),
    }
}

#[tokio::test]
async fn guest_gets_a_token_that_works() {
    let s = TestServer::start().await;
    let auth = s.guest("  Ada ").await;
    assert!(auth.user.guest);
    assert_eq!(auth.user.display_name, "Ada");
    assert_eq!(auth.user.username, None);
    let (status, _, me) = s.get::<UserInfo>(&auth.token, "/api/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me.unwrap(), auth.user);
}

#[tokio::test]
async fn register_login_and_wrong_password() {
    let s = TestServer::start().await;
    let (status, body, reg) = s
        .post::<AuthResponse>(None, "/api/auth/register", &register("grace", "hopper1906"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reg = reg.unwrap();
    assert!(!reg.user.guest);

    let (status, _, again) = s
        .post::<serde_json::Value>(
            None,
            "/api/auth/register",
            &register("Grace", "whatever123"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "usernames are case-insensitive"
    );
    assert_eq!(again.unwrap()["error"]["code"], "conflict");

    let login = |u: &str, p: &str| LoginRequest {
        username: u.into(),
        password: p.into(),
    };
    let (status, _, ok) = s
        .post::<AuthResponse>(None, "/api/auth/login", &login("grace", "hopper1906"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ok = ok.unwrap();
    assert_eq!(ok.user.id, reg.user.id);
    assert_ne!(ok.token, reg.token, "each login is a new session");

    let (wrong_status, wrong, _) = s
        .post::<()>(None, "/api/auth/login", &login("grace", "hopper1907"))
        .await;
    let (unknown_status, unknown, _) = s
        .post::<()>(None, "/api/auth/login", &login("nobody", "hopper1906"))
        .await;
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong, unknown,
        "unknown user and wrong password look the same"
    );
    assert_eq!(wrong["error"]["code"], "unauthorized");

    // Logout ends the session.
    let r = s
        .http
        .post(s.url("/api/auth/logout"))
        .bearer_auth(&ok.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _, _) = s.get::<()>(&ok.token, "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let s = TestServer::start().await;
    s.post::<()>(None, "/api/auth/register", &register("linus", "penguins!"))
        .await;
    let attempt = LoginRequest {
        username: "linus".into(),
        password: "wrong-password".into(),
    };
    let mut statuses = vec![];
    for _ in 0..12 {
        statuses.push(s.post::<()>(None, "/api/auth/login", &attempt).await.0);
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(*statuses.last().unwrap(), StatusCode::TOO_MANY_REQUESTS);
    // Even the right password is refused while limited.
    let right = LoginRequest {
        username: "linus".into(),
        password: "penguins!".into(),
    };
    let (status, body, _) = s.post::<()>(None, "/api/auth/login", &right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "rate_limited");
    let r = s
        .http
        .post(s.url("/api/auth/login"))
        .json(&right)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "60");
}

#[tokio::test]
async fn guest_upgrades_keeping_its_id() {
    let s = TestServer::start().await;
    let guest = s.guest("Margaret").await;
    let (status, body, up) = s
        .post::<AuthResponse>(
            Some(&guest.token),
            "/api/auth/upgrade",
            &UpgradeRequest {
                username: "margaret".into(),
                password: "apollo-11".into(),
            },
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let up = up.unwrap();
    assert_eq!(up.user.id, guest.user.id);
    assert!(!up.user.guest);
    assert_eq!(up.user.display_name, "Margaret");
    // The new credentials log into the same account.
    let (_, _, login) = s
        .post::<AuthResponse>(
            None,
            "/api/auth/login",
            &LoginRequest {
                username: "margaret".into(),
                password: "apollo-11".into(),
            },
        )
        .await;
    assert_eq!(login.unwrap().user.id, guest.user.id);
    // A registered account cannot upgrade again.
    let (status, _, _) = s
        .post::<()>(
            Some(&up.token),
            "/api/auth/upgrade",
            &UpgradeRequest {
                username: "other".into(),
                password: "apollo-11".into(),
            },
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let s = TestServer::start().await;
    // Missing and wrong tokens.
    let (status, body, _) = s.get::<()>("", "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _, _) = s.get::<()>("not-a-token", "/api/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Malformed JSON and invalid fields.
    let r = s
        .http
        .post(s.url("/api/auth/guest"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    let (status, body, _) = s
        .post::<()>(None, "/api/auth/guest", &json!({"display_name": ""}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("display name")
    );
    let (status, _, _) = s
        .post::<()>(None, "/api/auth/register", &register("ok_name", "short"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Oversized bodies.
    let big = json!({"display_name": "x".repeat(100_000)});
    let (status, body, _) = s.post::<()>(None, "/api/auth/guest", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(
        body["error"]["code"],
        serde_json::to_value(ErrorCode::TooLarge).unwrap()
    );
    // Unknown routes.
    let (status, body, _) = s.get::<()>("", "/api/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    // Wrong methods get the JSON error too.
    let r = s.http.delete(s.url("/api/spaces")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    // Health names the protocol version.
    let r = s.http.get(s.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["protocol"], 1);
}
