//! Bearer JWTs of an identity provider, over HTTP: Supabase-style HS256,
//! RS256/ES256 against a JWKS served on loopback, user mapping and
//! auto-provisioning, and every refusal audited.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use promptvault_server::jwt::JwtSettings;
use promptvault_server::secret::Secret;
use promptvault_testkit::TestDb;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::support::{TestServer, settings};

const SECRET: &str = "e2e-supabase-jwt-secret-of-at-least-32-bytes";
const ISSUER: &str = "https://project.supabase.co/auth/v1";
const AUDIENCE: &str = "authenticated";

struct RsaKey {
    signing: EncodingKey,
    jwk: Value,
    public_pem: String,
}

struct EcKey {
    signing: EncodingKey,
    jwk: Value,
}

/// Made once per run: RSA key generation is slow in debug builds.
static RSA: LazyLock<RsaKey> = LazyLock::new(|| {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
    let public = private.to_public_key();
    RsaKey {
        signing: EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("PKCS#1").as_bytes()),
        jwk: json!({
            "kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        }),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("PEM"),
    }
});

fn ec_key(kid: &str) -> EcKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let point = private.verifying_key().to_encoded_point(false);
    EcKey {
        signing: EncodingKey::from_ec_der(private.to_pkcs8_der().expect("PKCS#8").as_bytes()),
        jwk: json!({
            "kty": "EC", "kid": kid, "crv": "P-256", "use": "sig",
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        }),
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims as Supabase writes them; a fresh `jti` makes every token new, so
/// no request is answered from the authenticator's cache by accident.
fn claims(sub: &str, email: &str) -> Value {
    json!({
        "sub": sub, "email": email, "aud": AUDIENCE, "iss": ISSUER, "role": "authenticated",
        "iat": now(), "exp": now() + 600, "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("token")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, claims, &EncodingKey::from_secret(SECRET.as_bytes()))
}

/// A token with any header, signed by HMAC-SHA256 with `secret`.
fn hmac_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let message = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &EncodingKey::from_secret(secret), Algorithm::HS256)
            .expect("HMAC");
    format!("{message}.{signature}")
}

fn hs_settings() -> JwtSettings {
    JwtSettings {
        enabled: true,
        hs256_secret: Some(Secret::new(SECRET.into())),
        issuer: Some(ISSUER.into()),
        audience: Some(vec![AUDIENCE.into()]),
        ..JwtSettings::default()
    }
}

async fn jwt_server(db: &TestDb, jwt: JwtSettings) -> TestServer {
    let mut s = settings(db);
    s.auth.jwt = jwt;
    TestServer::start_with(s).await
}

/// The admin's client with another token.
fn bearer(s: &TestServer, token: &str) -> TestServer {
    let mut c = s.anonymous();
    c.token = Some(token.to_owned());
    c
}

async fn users(s: &TestServer) -> Vec<Value> {
    s.get("/api/v1/users").await.ok(200)["items"].as_array().expect("items").clone()
}

async fn events(s: &TestServer, query: &str) -> Vec<Value> {
    let r = s.get(&format!("/api/v1/audit/events?limit=1000&{query}")).await;
    r.ok(200)["items"].as_array().expect("items").clone()
}

/// A JWKS endpoint on loopback; it stops with the test's runtime.
async fn serve_jwks(keys: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("address"));
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            let keys = keys.clone();
            async move { axum::Json(keys) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve the JWKS") });
    url
}

pub async fn known_users_sign_in_with_hs256_tokens(db: Arc<TestDb>) {
    let mut s = jwt_server(&db, hs_settings()).await;
    let ada = s
        .post(
            "/api/v1/users",
            &json!({"email": "ada@example.com", "external_user_id": "idp|ada", "roles": ["viewer"]}),
        )
        .await
        .ok(201)
        .clone();
    let supabase_id = "8f2a6c1e-0b7d-4c55-9a3e-2f1d7e6b9c40";
    let bob = s
        .post(
            "/api/v1/users",
            &json!({"email": "bob@example.com", "supabase_user_id": supabase_id, "roles": ["author"]}),
        )
        .await
        .ok(201)
        .clone();
    let before = users(&s).await.len();

    // By external id: the user, with the user's roles.
    let ada_jwt = bearer(&s, &hs256(&claims("idp|ada", "ada@example.com")));
    let me = ada_jwt.get("/api/v1/me").await;
    assert_eq!(me.ok(200)["id"], ada["id"]);
    assert_eq!(me.body["email"], "ada@example.com");
    assert_eq!(me.body["roles"], json!(["viewer"]));
    ada_jwt.get("/api/v1/templates").await.ok(200);
    ada_jwt
        .post("/api/v1/templates", &json!({"name": "jwt/x", "template_text": "x"}))
        .await
        .problem(403, "forbidden");

    // By Supabase user id, when the subject is one.
    let bob_jwt = bearer(&s, &hs256(&claims(supabase_id, "bob@example.com")));
    assert_eq!(bob_jwt.get("/api/v1/me").await.ok(200)["id"], bob["id"]);
    bob_jwt.post("/api/v1/templates", &json!({"name": "jwt/bob", "template_text": "x"})).await.ok(201);

    // Without auto-provisioning an unknown subject is refused, and nothing
    // is created.
    let stranger = bearer(&s, &hs256(&claims("idp|stranger", "eve@example.com")));
    let r = stranger.get("/api/v1/me").await;
    r.problem(401, "unauthorized");
    assert!(r.body["detail"].as_str().unwrap().contains("no user is linked"), "{:#}", r.body);
    assert_eq!(users(&s).await.len(), before);

    // Disabling the user refuses the same (cached) token at once.
    let id = ada["id"].as_str().unwrap();
    s.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": true}), "").await.ok(200);
    let r = ada_jwt.get("/api/v1/me").await;
    r.problem(401, "unauthorized");
    assert!(r.body["detail"].as_str().unwrap().contains("disabled"), "{:#}", r.body);
    s.patch(&format!("/api/v1/users/{id}"), &json!({"disabled": false}), "").await.ok(200);
    ada_jwt.get("/api/v1/me").await.ok(200);

    // The trail names the JWT and its user; the refusals are there too.
    let reads = events(&s, "action=user.read").await;
    assert!(
        reads.iter().any(|e| e["actor"] == "jwt idp|ada (ada@example.com)" && e["actor_id"] == ada["id"])
    );
    let refused = events(&s, "action=auth.authenticate&outcome=denied").await;
    assert_eq!(refused.len(), 2, "{refused:#?}");
    assert!(refused.iter().all(|e| e["details"]["credential"] == "jwt" && e["actor_id"].is_null()));
    s.stop().await;
}

pub async fn auto_provisioning_creates_each_user_once(db: Arc<TestDb>) {
    let jwt = JwtSettings { auto_provision: true, default_role: Some("author".into()), ..hs_settings() };
    let mut s = jwt_server(&db, jwt).await;
    let before = users(&s).await.len();

    // The first request creates the user, with the default role and the
    // token's e-mail; the next ones find it.
    let first = bearer(&s, &hs256(&claims("idp|new", "new@example.com"))).get("/api/v1/me").await;
    let created = first.ok(200).clone();
    assert_eq!(created["external_user_id"], "idp|new");
    assert_eq!(created["email"], "new@example.com");
    assert_eq!(created["roles"], json!(["author"]));
    let again = bearer(&s, &hs256(&claims("idp|new", "new@example.com"))).get("/api/v1/me").await;
    assert_eq!(again.ok(200)["id"], created["id"]);
    assert_eq!(users(&s).await.len(), before + 1);
    let made = events(&s, "action=user.create").await;
    let made: Vec<&Value> = made.iter().filter(|e| e["resource"] == created["id"]).collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0]["actor"], "jwt idp|new");
    assert_eq!(made[0]["outcome"], "success");

    // Eight first requests at once: one user, and all of them get it.
    let racers: Vec<TestServer> =
        (0..8).map(|_| bearer(&s, &hs256(&claims("idp|racer", "racer@example.com")))).collect();
    let answers = futures::future::join_all(racers.iter().map(|r| r.get("/api/v1/me"))).await;
    let ids: HashSet<String> = answers.iter().map(|a| a.ok(200)["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 1, "{answers:#?}");
    let racer = users(&s).await.into_iter().filter(|u| u["external_user_id"] == "idp|racer").count();
    assert_eq!(racer, 1);
    assert_eq!(users(&s).await.len(), before + 2);

    // An e-mail that is already another user's is not taken over.
    s.post("/api/v1/users", &json!({"email": "taken@example.com"})).await.ok(201);
    let r = bearer(&s, &hs256(&claims("idp|thief", "taken@example.com"))).get("/api/v1/me").await;
    r.problem(401, "unauthorized");
    assert!(r.body["detail"].as_str().unwrap().contains("e-mail"), "{:#}", r.body);
    assert!(users(&s).await.iter().all(|u| u["external_user_id"] != "idp|thief"));
    s.stop().await;

    // A default role that does not exist gives no role at all.
    let jwt = JwtSettings { auto_provision: true, default_role: Some("ghost".into()), ..hs_settings() };
    let mut s = jwt_server(&db, jwt).await;
    bearer(&s, &hs256(&claims("idp|roleless", "roleless@example.com"))).get("/api/v1/me").await;
    let roleless = users(&s).await.into_iter().find(|u| u["external_user_id"] == "idp|roleless");
    assert_eq!(roleless.expect("provisioned")["roles"], json!([]));
    s.stop().await;
}

pub async fn refused_tokens_are_audited_and_change_nothing(db: Arc<TestDb>) {
    let jwks = serve_jwks(json!({"keys": [RSA.jwk]})).await;
    // Auto-provisioning as admin: any token that slipped through would show.
    let jwt = JwtSettings {
        jwks_url: Some(jwks),
        algorithms: vec!["HS256".into(), "RS256".into()],
        auto_provision: true,
        default_role: Some("admin".into()),
        ..hs_settings()
    };
    let mut s = jwt_server(&db, jwt).await;
    let before = users(&s).await;
    let c = || claims("idp|mallory", "mallory@example.com");
    let with = |name: &str, value: Value| {
        let mut c = c();
        c[name] = value;
        c
    };
    let pem = RSA.public_pem.as_bytes();
    let attempts: Vec<(&str, Option<String>, &str)> = vec![
        (
            "wrong signature",
            Some(sign(Algorithm::HS256, None, &c(), &EncodingKey::from_secret(&[7u8; 48]))),
            "invalid_signature",
        ),
        (
            "alg none",
            Some(format!(
                "{}.{}.",
                b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
                b64(c().to_string().as_bytes())
            )),
            "token_unsigned",
        ),
        (
            "HS256 keyed with the RSA public key",
            Some(hmac_token(&json!({"alg": "HS256"}), &c(), pem)),
            "invalid_signature",
        ),
        (
            "RS256 header, HMAC signature keyed with the RSA public key",
            Some(hmac_token(&json!({"alg": "RS256", "kid": "rsa-1"}), &c(), pem)),
            "invalid_signature",
        ),
        ("expired", Some(hs256(&with("exp", json!(now() - 3600)))), "token_expired"),
        ("not valid yet", Some(hs256(&with("nbf", json!(now() + 3600)))), "token_not_yet_valid"),
        ("wrong issuer", Some(hs256(&with("iss", json!("https://evil.example.com")))), "wrong_issuer"),
        ("wrong audience", Some(hs256(&with("aud", json!("someone-else")))), "wrong_audience"),
        (
            "ES256, not allowed",
            Some(sign(Algorithm::ES256, Some("ec-1"), &c(), &ec_key("ec-1").signing)),
            "algorithm_not_allowed",
        ),
        ("a made-up API key", Some(format!("pv_0000000000_{}", "0".repeat(48))), "unauthorized"),
        ("no token", None, "unauthorized"),
    ];
    let mut refused = Vec::new();
    for (what, token, code) in &attempts {
        let client = match token {
            Some(t) => bearer(&s, t),
            None => s.anonymous(),
        };
        let r = client.get("/api/v1/me").await;
        r.problem(401, "unauthorized");
        if *code != "unauthorized" {
            assert_eq!(r.body["reason"], *code, "{what}: {:#}", r.body);
        }
        if let Some(t) = token {
            let body = r.body.to_string();
            assert!(
                t.split('.').all(|part| part.len() < 8 || !body.contains(part)),
                "{what} echoes the token"
            );
        }
        let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
        refused.push((what, code, request_id, r));
    }

    // Nothing was created, and every attempt is in the trail, once.
    assert_eq!(users(&s).await, before);
    assert!(events(&s, "action=user.create").await.is_empty());
    let trail = events(&s, "action=auth.authenticate&outcome=denied").await;
    assert_eq!(trail.len(), attempts.len(), "{trail:#?}");
    for (what, code, request_id, r) in &refused {
        let ev = trail.iter().find(|e| e["request_id"] == request_id.as_str());
        let ev = ev.unwrap_or_else(|| panic!("{what} is not audited: {trail:#?}"));
        assert_eq!(ev["reason"], r.body["detail"], "{what}");
        assert_eq!(ev["details"]["code"], **code, "{what}");
        assert_eq!(ev["client_addr"], "127.0.0.1");
        assert_eq!(ev["actor"], "anonymous (127.0.0.1)");
        assert!(ev["actor_id"].is_null());
    }
    // The made-up key is named by its public prefix.
    assert!(trail.iter().any(|e| e["details"]["key_prefix"] == "pv_0000000000"));
    // Ten refusals from one address in five minutes: the default rule fires.
    let alerts = events(&s, "action=audit.alert").await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["details"]["actor"], "anonymous (127.0.0.1)");
    assert_eq!(alerts[0]["details"]["rule"], "repeated-denials");
    s.stop().await;
}

pub async fn asymmetric_tokens_verify_against_a_jwks(db: Arc<TestDb>) {
    let ec = ec_key("ec-1");
    let jwks = serve_jwks(json!({"keys": [RSA.jwk, ec.jwk]})).await;
    let jwt = JwtSettings {
        jwks_url: Some(jwks),
        audience: Some(vec![AUDIENCE.into()]),
        ..JwtSettings { enabled: true, ..JwtSettings::default() }
    };
    let mut s = jwt_server(&db, jwt).await;
    let carol = s
        .post(
            "/api/v1/users",
            &json!({"email": "carol@example.com", "external_user_id": "idp|carol", "roles": ["viewer"]}),
        )
        .await
        .ok(201)
        .clone();
    let c = || claims("idp|carol", "carol@example.com");

    let rs = bearer(&s, &sign(Algorithm::RS256, Some("rsa-1"), &c(), &RSA.signing));
    assert_eq!(rs.get("/api/v1/me").await.ok(200)["id"], carol["id"]);
    let es = bearer(&s, &sign(Algorithm::ES256, Some("ec-1"), &c(), &ec.signing));
    assert_eq!(es.get("/api/v1/me").await.ok(200)["id"], carol["id"]);

    // Another key under a published kid, a kid nobody published, and a
    // Supabase secret this server does not have.
    let forged = sign(Algorithm::ES256, Some("ec-1"), &c(), &ec_key("ec-1").signing);
    let unknown = sign(Algorithm::ES256, Some("ec-9"), &c(), &ec_key("ec-9").signing);
    for (token, code) in
        [(forged, "invalid_signature"), (unknown, "unknown_key"), (hs256(&c()), "algorithm_not_allowed")]
    {
        let r = bearer(&s, &token).get("/api/v1/me").await;
        r.problem(401, "unauthorized");
        assert_eq!(r.body["reason"], code);
    }
    assert_eq!(events(&s, "action=auth.authenticate&outcome=denied").await.len(), 3);
    s.stop().await;

    // The provider unreachable: 503, the client may retry; not a refusal.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks.json", closed.local_addr().expect("address"));
    drop(closed);
    let jwt = JwtSettings { enabled: true, jwks_url: Some(url), ..JwtSettings::default() };
    let mut s = jwt_server(&db, jwt).await;
    let r = bearer(&s, &sign(Algorithm::RS256, Some("rsa-1"), &c(), &RSA.signing)).get("/api/v1/me").await;
    r.problem(503, "service_unavailable");
    assert!(!r.body.to_string().contains("127.0.0.1"), "the provider's address stays in the log");
    assert_eq!(events(&s, "action=auth.authenticate").await.len(), 3, "the same database: the 3 above");
    s.stop().await;
}

pub async fn bad_jwt_settings_stop_the_start(db: Arc<TestDb>) {
    let cases = [
        (JwtSettings { enabled: true, ..JwtSettings::default() }, "set hs256_secret"),
        (
            JwtSettings { hs256_secret: Some(Secret::new("short".into())), ..hs_settings() },
            "at least 32 bytes",
        ),
        (JwtSettings { algorithms: vec!["none".into()], ..hs_settings() }, "never accepted"),
        (JwtSettings { jwks_url: Some("ftp://idp.example.com/keys".into()), ..hs_settings() }, "https://"),
    ];
    for (jwt, expected) in cases {
        let mut s = settings(&db);
        s.auth.jwt = jwt;
        let err = promptvault_server::start(s).await.expect_err("refused");
        let msg = err.to_string();
        assert!(msg.starts_with("configuration: auth.jwt") && msg.contains(expected), "{msg}");
    }
}
