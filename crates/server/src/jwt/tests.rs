//! Tests against a real JWKS server on loopback, with keys made here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::*;

const SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";
const USER: &str = "8f2a6c1e-0b7d-4c55-9a3e-2f1d7e6b9c40";

struct TestKeys {
    rsa: RsaTestKey,
    rsa_next: RsaTestKey,
    ec: EcTestKey,
}

struct RsaTestKey {
    kid: &'static str,
    signing: EncodingKey,
    jwk: Value,
    public_pem: String,
}

struct EcTestKey {
    kid: &'static str,
    signing: EncodingKey,
    jwk: Value,
}

/// Made once: RSA key generation is slow in debug builds.
static KEYS: LazyLock<TestKeys> =
    LazyLock::new(|| TestKeys { rsa: rsa_key("rsa-1"), rsa_next: rsa_key("rsa-2"), ec: ec_key("ec-1") });

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_key(kid: &'static str) -> RsaTestKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
    let public = private.to_public_key();
    RsaTestKey {
        kid,
        signing: EncodingKey::from_rsa_der(private.to_pkcs1_der().expect("PKCS#1").as_bytes()),
        jwk: json!({
            "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64(&public.n().to_bytes_be()), "e": b64(&public.e().to_bytes_be()),
        }),
        public_pem: public.to_public_key_pem(LineEnding::LF).expect("PEM"),
    }
}

fn ec_key(kid: &'static str) -> EcTestKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let point = private.verifying_key().to_encoded_point(false);
    EcTestKey {
        kid,
        signing: EncodingKey::from_ec_der(private.to_pkcs8_der().expect("PKCS#8").as_bytes()),
        jwk: json!({
            "kty": "EC", "kid": kid, "crv": "P-256", "use": "sig",
            "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
        }),
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// What Supabase puts in a user's access token, give or take.
fn claims() -> Value {
    json!({
        "sub": USER,
        "email": "ada@example.com",
        "aud": "authenticated",
        "role": "authenticated",
        "iss": "https://project.supabase.co/auth/v1",
        "iat": now(),
        "exp": now() + 600,
        "app_metadata": { "roles": ["editor", "viewer"] },
    })
}

fn with(mut claims: Value, name: &str, value: Value) -> Value {
    claims[name] = value;
    claims
}

fn without(mut claims: Value, name: &str) -> Value {
    claims.as_object_mut().expect("object").remove(name);
    claims
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("token")
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, claims, &EncodingKey::from_secret(SECRET.as_bytes()))
}

fn rs256(key: &RsaTestKey, claims: &Value) -> String {
    sign(Algorithm::RS256, Some(key.kid), claims, &key.signing)
}

fn es256(claims: &Value) -> String {
    sign(Algorithm::ES256, Some(KEYS.ec.kid), claims, &KEYS.ec.signing)
}

/// A token put together by hand, for headers no library would write.
fn raw_token(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

fn hs_settings() -> JwtSettings {
    JwtSettings {
        enabled: true,
        hs256_secret: Some(Secret::new(SECRET.into())),
        audience: Some(vec!["authenticated".into()]),
        ..JwtSettings::default()
    }
}

fn jwks_settings(idp: &Idp) -> JwtSettings {
    JwtSettings { enabled: true, jwks_url: Some(idp.url.clone()), ..JwtSettings::default() }
}

fn verifier(settings: &JwtSettings) -> JwtVerifier {
    JwtVerifier::new(settings, http()).expect("valid settings")
}

fn jwks(keys: &[&Value]) -> Value {
    json!({ "keys": keys })
}

/// A JWKS endpoint on loopback that counts its requests.
struct Idp {
    url: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    stop: CancellationToken,
    served: Option<JoinHandle<()>>,
}

impl Idp {
    async fn start(jwks: Value) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().expect("address"));
        let jwks = Arc::new(Mutex::new(jwks));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served_jwks, counter) = (jwks.clone(), hits.clone());
        let app = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = served_jwks.lock().expect("lock").clone();
                async move { axum::Json(body) }
            }),
        );
        let stop = CancellationToken::new();
        let signal = stop.clone();
        let served = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal.cancelled().await })
                .await
                .expect("serve");
        });
        Idp { url, jwks, hits, stop, served: Some(served) }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn publish(&self, jwks: Value) {
        *self.jwks.lock().expect("lock") = jwks;
    }

    /// Stops listening and closes every connection.
    async fn go_down(&mut self) {
        self.stop.cancel();
        if let Some(served) = self.served.take() {
            tokio::time::timeout(Duration::from_secs(10), served)
                .await
                .expect("the JWKS server stops")
                .expect("the JWKS server task");
        }
    }
}

#[tokio::test]
async fn supabase_hs256_token_is_accepted() {
    let settings = JwtSettings { role_claim: Some("/app_metadata/roles".into()), ..hs_settings() };
    let v = verifier(&settings);
    let c = claims();
    let verified = v.verify(&hs256(&c)).await.expect("valid token");
    assert_eq!(verified.subject, USER);
    assert_eq!(verified.email.as_deref(), Some("ada@example.com"));
    assert_eq!(verified.roles, ["editor", "viewer"]);
    assert_eq!(verified.issuer.as_deref(), Some("https://project.supabase.co/auth/v1"));
    assert_eq!(verified.expires_at.timestamp(), c["exp"].as_i64().expect("exp"));
    assert_eq!(verified.raw, c);

    // A single-string role claim, and no role claim at all.
    let v = verifier(&JwtSettings { role_claim: Some("role".into()), ..hs_settings() });
    assert_eq!(v.verify(&hs256(&c)).await.expect("valid").roles, ["authenticated"]);
    assert!(verifier(&hs_settings()).verify(&hs256(&c)).await.expect("valid").roles.is_empty());
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_accepted_from_one_fetch() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk, &KEYS.ec.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    assert_eq!(v.algorithms(), [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(v.verify(&rs256(&KEYS.rsa, &claims())).await.expect("RS256").subject, USER);
    assert_eq!(v.verify(&es256(&claims())).await.expect("ES256").subject, USER);
    assert_eq!(v.verify(&rs256(&KEYS.rsa, &claims())).await.expect("RS256 again").subject, USER);
    assert_eq!(idp.hits(), 1, "keys are cached");
}

#[tokio::test]
async fn wrong_signatures_are_refused() {
    let v = verifier(&hs_settings());
    let other = sign(Algorithm::HS256, None, &claims(), &EncodingKey::from_secret(&[7u8; 48]));
    assert_eq!(v.verify(&other).await, Err(JwtError::InvalidSignature));

    // A payload changed after signing.
    let token = hs256(&claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = b64(with(claims(), "sub", json!("someone-else")).to_string().as_bytes());
    parts[1] = &forged;
    assert_eq!(v.verify(&parts.join(".")).await, Err(JwtError::InvalidSignature));

    // Signed by the next RSA key but naming the current one; and an EC
    // signature that is not one.
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk, &KEYS.ec.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    let wrong_key = sign(Algorithm::RS256, Some(KEYS.rsa.kid), &claims(), &KEYS.rsa_next.signing);
    assert_eq!(v.verify(&wrong_key).await, Err(JwtError::InvalidSignature));
    let header = json!({ "alg": "ES256", "kid": KEYS.ec.kid });
    assert_eq!(v.verify(&raw_token(&header, &claims(), &[1u8; 64])).await, Err(JwtError::InvalidSignature));
}

#[tokio::test]
async fn unsigned_tokens_are_refused() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk])).await;
    let both = JwtSettings { hs256_secret: Some(Secret::new(SECRET.into())), ..jwks_settings(&idp) };
    for settings in [hs_settings(), both] {
        let v = verifier(&settings);
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = json!({ "alg": alg, "typ": "JWT" });
            assert_eq!(v.verify(&raw_token(&header, &claims(), b"")).await, Err(JwtError::Unsigned), "{alg}");
            let signed_anyway = raw_token(&header, &claims(), b"signature");
            assert_eq!(v.verify(&signed_anyway).await, Err(JwtError::Unsigned), "{alg}");
        }
    }
    assert_eq!(idp.hits(), 0, "refused before any key is looked for");
}

#[tokio::test]
async fn hmac_signed_with_the_public_key_is_refused() {
    let rsa = &KEYS.rsa;
    let oct = json!({ "kty": "oct", "kid": "hmac", "k": b64(rsa.public_pem.as_bytes()) });
    let idp = Idp::start(jwks(&[&rsa.jwk, &oct])).await;
    let forgeries = [
        rsa.public_pem.as_bytes().to_vec(),
        rsa.jwk.to_string().into_bytes(),
        rsa.jwk["n"].as_str().expect("n").as_bytes().to_vec(),
    ];
    let only_jwks = verifier(&jwks_settings(&idp));
    let both =
        verifier(&JwtSettings { hs256_secret: Some(Secret::new(SECRET.into())), ..jwks_settings(&idp) });
    for secret in &forgeries {
        let secret = EncodingKey::from_secret(secret);
        for kid in [Some(rsa.kid), Some("hmac"), None] {
            let forged = sign(Algorithm::HS256, kid, &claims(), &secret);
            // Without a shared secret HS256 is not even allowed...
            assert_eq!(only_jwks.verify(&forged).await, Err(JwtError::AlgorithmNotAllowed));
            // ...and with one, only that secret verifies HS256, never a JWKS key.
            assert_eq!(both.verify(&forged).await, Err(JwtError::InvalidSignature));
        }
    }
    // Allowing HS256 without a secret is refused outright.
    let settings = JwtSettings { algorithms: vec!["HS256".into(), "RS256".into()], ..jwks_settings(&idp) };
    assert!(
        matches!(JwtVerifier::new(&settings, http()), Err(JwtConfigError::HmacWithoutSecret(a)) if a == "HS256")
    );
}

#[tokio::test]
async fn algorithm_must_be_allowed_and_match_the_key_type() {
    // Only a secret: RS256 and ES256 are not allowed.
    let v = verifier(&hs_settings());
    assert_eq!(v.verify(&rs256(&KEYS.rsa, &claims())).await, Err(JwtError::AlgorithmNotAllowed));
    assert_eq!(v.verify(&es256(&claims())).await, Err(JwtError::AlgorithmNotAllowed));
    let hs512 = sign(Algorithm::HS512, None, &claims(), &EncodingKey::from_secret(SECRET.as_bytes()));
    assert_eq!(v.verify(&hs512).await, Err(JwtError::AlgorithmNotAllowed), "HS512 not on the list");
    let header = json!({ "alg": "XS256" });
    assert_eq!(v.verify(&raw_token(&header, &claims(), b"x")).await, Err(JwtError::AlgorithmNotAllowed));

    // A JWKS: the algorithm must suit the key the kid names.
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk, &KEYS.ec.jwk])).await;
    let v = verifier(&JwtSettings {
        algorithms: vec!["RS256".into(), "ES256".into(), "PS256".into()],
        ..jwks_settings(&idp)
    });
    let es_naming_rsa = sign(Algorithm::ES256, Some(KEYS.rsa.kid), &claims(), &KEYS.ec.signing);
    assert_eq!(v.verify(&es_naming_rsa).await, Err(JwtError::KeyTypeMismatch));
    let rs_naming_ec = sign(Algorithm::RS256, Some(KEYS.ec.kid), &claims(), &KEYS.rsa.signing);
    assert_eq!(v.verify(&rs_naming_ec).await, Err(JwtError::KeyTypeMismatch));
    // The JWK says RS256; a PS256 token cannot use it even though both are RSA.
    let ps = sign(Algorithm::PS256, Some(KEYS.rsa.kid), &claims(), &KEYS.rsa.signing);
    assert_eq!(v.verify(&ps).await, Err(JwtError::KeyTypeMismatch));
    assert_eq!(idp.hits(), 1);
}

#[tokio::test]
async fn expiry_is_required_and_checked_with_leeway() {
    let v = verifier(&hs_settings());
    let c = claims();
    assert_eq!(v.verify(&hs256(&without(c.clone(), "exp"))).await, Err(JwtError::MissingClaim("exp".into())));
    // An `exp` that is not a NumericDate counts as none.
    assert_eq!(
        v.verify(&hs256(&with(c.clone(), "exp", json!("tomorrow")))).await,
        Err(JwtError::MissingClaim("exp".into()))
    );
    assert_eq!(v.verify(&hs256(&with(c.clone(), "exp", json!(now() - 120)))).await, Err(JwtError::Expired));
    // Ten seconds late is within the default 30 s leeway...
    let late = hs256(&with(c.clone(), "exp", json!(now() - 10)));
    assert!(v.verify(&late).await.is_ok());
    // ...but not without leeway.
    let strict = verifier(&JwtSettings { leeway_seconds: 0, ..hs_settings() });
    assert_eq!(strict.verify(&late).await, Err(JwtError::Expired));
}

#[tokio::test]
async fn not_before_and_issued_at_in_the_future_are_refused() {
    let v = verifier(&hs_settings());
    let c = claims();
    assert_eq!(
        v.verify(&hs256(&with(c.clone(), "nbf", json!(now() + 120)))).await,
        Err(JwtError::NotYetValid)
    );
    assert!(v.verify(&hs256(&with(c.clone(), "nbf", json!(now() + 10)))).await.is_ok(), "within leeway");
    assert_eq!(
        v.verify(&hs256(&with(c.clone(), "iat", json!(now() + 120)))).await,
        Err(JwtError::IssuedInFuture)
    );
    assert!(v.verify(&hs256(&with(c.clone(), "iat", json!(now() + 10)))).await.is_ok(), "within leeway");
    assert_eq!(
        v.verify(&hs256(&with(c.clone(), "iat", json!("now")))).await,
        Err(JwtError::InvalidClaim("iat".into()))
    );
    let strict = verifier(&JwtSettings { leeway_seconds: 0, ..hs_settings() });
    assert_eq!(
        strict.verify(&hs256(&with(c.clone(), "nbf", json!(now() + 10)))).await,
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        strict.verify(&hs256(&with(c, "iat", json!(now() + 10)))).await,
        Err(JwtError::IssuedInFuture)
    );
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let issuer = "https://project.supabase.co/auth/v1";
    let v = verifier(&JwtSettings { issuer: Some(issuer.into()), ..hs_settings() });
    let c = claims();
    assert!(v.verify(&hs256(&c)).await.is_ok());
    let other = with(c.clone(), "iss", json!("https://evil.example/auth/v1"));
    assert_eq!(v.verify(&hs256(&other)).await, Err(JwtError::WrongIssuer));
    assert_eq!(v.verify(&hs256(&without(c.clone(), "iss"))).await, Err(JwtError::WrongIssuer));

    let wrong_aud = with(c.clone(), "aud", json!("anon"));
    assert_eq!(v.verify(&hs256(&wrong_aud)).await, Err(JwtError::WrongAudience));
    assert_eq!(v.verify(&hs256(&without(c.clone(), "aud"))).await, Err(JwtError::WrongAudience));
    let several = with(c.clone(), "aud", json!(["other-api", "authenticated"]));
    assert!(v.verify(&hs256(&several)).await.is_ok(), "one of several audiences matches");

    // Not configured: any issuer and audience will do.
    let open = verifier(&JwtSettings { audience: None, ..hs_settings() });
    assert!(open.verify(&hs256(&other)).await.is_ok());
    assert!(open.verify(&hs256(&wrong_aud)).await.is_ok());
}

#[tokio::test]
async fn the_subject_is_required() {
    let v = verifier(&hs_settings());
    let c = claims();
    let missing = Err(JwtError::MissingClaim("sub".into()));
    assert_eq!(v.verify(&hs256(&without(c.clone(), "sub"))).await, missing);
    assert_eq!(v.verify(&hs256(&with(c.clone(), "sub", json!("")))).await, missing);
    assert_eq!(v.verify(&hs256(&with(c.clone(), "sub", json!("  ")))).await, missing);
    assert_eq!(
        v.verify(&hs256(&with(c.clone(), "sub", json!(42)))).await,
        Err(JwtError::InvalidClaim("sub".into()))
    );

    // Another claim, by JSON pointer.
    let v = verifier(&JwtSettings { user_claim: "/app_metadata/user_id".into(), ..hs_settings() });
    let nested = with(c.clone(), "app_metadata", json!({ "user_id": "u-7" }));
    assert_eq!(v.verify(&hs256(&nested)).await.expect("valid").subject, "u-7");
    assert_eq!(v.verify(&hs256(&c)).await, Err(JwtError::MissingClaim("/app_metadata/user_id".into())));
}

#[tokio::test]
async fn oversized_and_malformed_tokens_are_refused() {
    let v = verifier(&hs_settings());
    let big = with(claims(), "padding", json!("x".repeat(MAX_TOKEN_BYTES)));
    assert_eq!(v.verify(&hs256(&big)).await, Err(JwtError::TooLarge));
    for token in ["", "abc", "a.b", "a.b.c.d", "a.b.c", "!!.e30.x", "e30.e30.e30.e30.e30"] {
        assert_eq!(v.verify(token).await, Err(JwtError::Malformed), "{token:?}");
    }
    let critical = json!({ "alg": "HS256", "crit": ["exp"] });
    assert_eq!(v.verify(&raw_token(&critical, &claims(), b"x")).await, Err(JwtError::Malformed));
    // A valid signature over claims that are not a JSON object.
    let header = b64(br#"{"alg":"HS256"}"#);
    let payload = b64(br#""just a string""#);
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .expect("sign");
    assert_eq!(v.verify(&format!("{message}.{signature}")).await, Err(JwtError::Malformed));
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_then_picks_up_the_rotation() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    assert!(v.verify(&rs256(&KEYS.rsa, &claims())).await.is_ok());
    assert_eq!(idp.hits(), 1);

    // The provider rotates; a token with the new key arrives at once. The
    // last fetch was under 30 s ago, so it is not repeated yet.
    idp.publish(jwks(&[&KEYS.rsa.jwk, &KEYS.rsa_next.jwk]));
    let rotated = rs256(&KEYS.rsa_next, &claims());
    assert_eq!(v.verify(&rotated).await, Err(JwtError::UnknownKey));
    assert_eq!(idp.hits(), 1);

    v.advance_clock(Duration::from_secs(31));
    assert_eq!(v.verify(&rotated).await.expect("rotated key").subject, USER);
    assert_eq!(idp.hits(), 2, "exactly one refetch");
    assert!(v.verify(&rotated).await.is_ok());
    assert!(v.verify(&rs256(&KEYS.rsa, &claims())).await.is_ok());
    assert_eq!(idp.hits(), 2);
}

#[tokio::test]
async fn refetches_for_unknown_kids_are_rate_limited() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    assert!(v.verify(&rs256(&KEYS.rsa, &claims())).await.is_ok());
    let made_up =
        |i: usize| sign(Algorithm::RS256, Some(&format!("forged-{i}")), &claims(), &KEYS.rsa.signing);
    for i in 0..50 {
        assert_eq!(v.verify(&made_up(i)).await, Err(JwtError::UnknownKey));
    }
    assert_eq!(idp.hits(), 1, "no fetch within the minimum interval");
    v.advance_clock(Duration::from_secs(31));
    for i in 50..100 {
        assert_eq!(v.verify(&made_up(i)).await, Err(JwtError::UnknownKey));
    }
    assert_eq!(idp.hits(), 2, "one fetch per interval");
    assert!(v.verify(&rs256(&KEYS.rsa, &claims())).await.is_ok(), "known keys still verify");
}

#[tokio::test]
async fn concurrent_fetches_are_coalesced() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk, &KEYS.ec.jwk])).await;
    let v = Arc::new(verifier(&jwks_settings(&idp)));
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let v = v.clone();
            let token = if i % 2 == 0 { rs256(&KEYS.rsa, &claims()) } else { es256(&claims()) };
            tokio::spawn(async move { v.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("valid token").subject, USER);
    }
    assert_eq!(idp.hits(), 1, "one fetch served every waiting request");
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_provider_is_down() {
    let mut idp = Idp::start(jwks(&[&KEYS.rsa.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    let token = rs256(&KEYS.rsa, &claims());
    assert!(v.verify(&token).await.is_ok());
    idp.go_down().await;

    // Past the cache time: a key we do not have cannot be fetched...
    v.advance_clock(Duration::from_secs(700));
    let unknown = rs256(&KEYS.rsa_next, &claims());
    assert_eq!(v.verify(&unknown).await, Err(JwtError::KeysUnavailable));
    // ...but the cached key still verifies, now and after the next attempt.
    assert_eq!(v.verify(&token).await.expect("cached key").subject, USER);
    v.advance_clock(Duration::from_secs(31));
    assert!(v.verify(&token).await.is_ok());
    assert_eq!(idp.hits(), 1);

    // Down from the start: nothing to fall back on.
    let v = verifier(&jwks_settings(&idp));
    assert_eq!(v.verify(&token).await, Err(JwtError::KeysUnavailable));
}

#[tokio::test]
async fn stale_keys_are_refreshed_in_the_background() {
    let idp = Idp::start(jwks(&[&KEYS.rsa.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    let token = rs256(&KEYS.rsa, &claims());
    assert!(v.verify(&token).await.is_ok());
    v.advance_clock(Duration::from_secs(601));
    assert!(v.verify(&token).await.is_ok(), "the stale key serves while the refresh runs");
    // The refresh is a spawned task; wait for its request without sleeping blindly.
    tokio::time::timeout(Duration::from_secs(10), async {
        while idp.hits() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a background refresh");
    assert!(v.verify(&token).await.is_ok());
}

#[tokio::test]
async fn keys_without_kid() {
    let anonymous = |jwk: &Value| without(jwk.clone(), "kid");
    let rsa = anonymous(&KEYS.rsa.jwk);
    let idp = Idp::start(jwks(&[&rsa, &anonymous(&KEYS.ec.jwk)])).await;
    let v = verifier(&jwks_settings(&idp));
    // One key of each type: a token without kid finds the one of its type.
    let no_kid = sign(Algorithm::RS256, None, &claims(), &KEYS.rsa.signing);
    assert!(v.verify(&no_kid).await.is_ok());
    assert!(v.verify(&sign(Algorithm::ES256, None, &claims(), &KEYS.ec.signing)).await.is_ok());
    // A kid that no key has is unknown, even if a kid-less key would fit.
    assert_eq!(v.verify(&rs256(&KEYS.rsa, &claims())).await, Err(JwtError::UnknownKey));

    // Two RSA keys: a token without kid is ambiguous.
    let idp = Idp::start(jwks(&[&rsa, &KEYS.rsa_next.jwk])).await;
    let v = verifier(&jwks_settings(&idp));
    assert_eq!(v.verify(&no_kid).await, Err(JwtError::AmbiguousKey));
}

#[tokio::test]
async fn unusable_jwks_entries_are_skipped() {
    let small_rsa = json!({ "kty": "RSA", "kid": "small", "n": b64(&[0xC3; 128]), "e": "AQAB" });
    let encryption = with(KEYS.rsa_next.jwk.clone(), "use", json!("enc"));
    let idp = Idp::start(jwks(&[
        &small_rsa,
        &encryption,
        &json!({ "kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "ed" }),
        &json!({ "kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short" }),
        &json!("not even an object"),
        &KEYS.rsa.jwk,
    ]))
    .await;
    let v = verifier(&jwks_settings(&idp));
    assert!(v.verify(&rs256(&KEYS.rsa, &claims())).await.is_ok(), "the good key survives");
    let small = sign(Algorithm::RS256, Some("small"), &claims(), &KEYS.rsa.signing);
    assert_eq!(v.verify(&small).await, Err(JwtError::UnknownKey));
    assert_eq!(v.verify(&rs256(&KEYS.rsa_next, &claims())).await, Err(JwtError::UnknownKey));
    let short = sign(Algorithm::ES256, Some("short"), &claims(), &KEYS.ec.signing);
    assert_eq!(v.verify(&short).await, Err(JwtError::UnknownKey));
}

#[test]
fn settings_are_checked() {
    let err = |s: JwtSettings| JwtVerifier::new(&s, http()).expect_err("refused");
    assert!(matches!(
        err(JwtSettings { enabled: true, ..JwtSettings::default() }),
        JwtConfigError::NoKeySource
    ));
    for none in ["none", "NONE", "None"] {
        let s = JwtSettings { algorithms: vec!["HS256".into(), none.into()], ..hs_settings() };
        assert!(matches!(err(s), JwtConfigError::NoneAlgorithm), "{none}");
    }
    let s = JwtSettings { algorithms: vec!["HS257".into()], ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::UnknownAlgorithm(a) if a == "HS257"));
    let s = JwtSettings { algorithms: vec!["EdDSA".into()], ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::UnknownAlgorithm(_)));
    let s = JwtSettings { algorithms: vec!["RS256".into()], ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::AsymmetricWithoutJwks(a) if a == "RS256"));
    let s = JwtSettings { hs256_secret: Some(Secret::new("short".into())), ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::WeakSecret));
    let s =
        JwtSettings { hs256_secret: None, jwks_url: Some("ftp://idp.example/jwks".into()), ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::JwksUrl(_)));
    let s = JwtSettings { leeway_seconds: 3600, ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::Invalid(m) if m.contains("leeway_seconds")));
    let s = JwtSettings { audience: Some(vec![]), ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::Invalid(m) if m.contains("audience")));
    let s = JwtSettings { jwks_min_refresh_seconds: 0, ..hs_settings() };
    assert!(matches!(err(s), JwtConfigError::Invalid(_)));

    // Defaults follow the key sources.
    let url = Some("https://idp.example/.well-known/jwks.json".to_owned());
    let v = JwtVerifier::new(&hs_settings(), http()).expect("valid");
    assert_eq!(v.algorithms(), [Algorithm::HS256]);
    let both = JwtSettings { jwks_url: url.clone(), ..hs_settings() };
    let v = JwtVerifier::new(&both, http()).expect("valid");
    assert_eq!(v.algorithms(), [Algorithm::HS256, Algorithm::RS256, Algorithm::ES256]);
}

#[test]
fn the_secret_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("jwt-secret");
    std::fs::write(&path, format!("{SECRET}\n")).expect("write");
    let s = JwtSettings { hs256_secret: None, hs256_secret_file: Some(path.clone()), ..hs_settings() };
    assert_eq!(JwtVerifier::new(&s, http()).expect("valid").algorithms(), [Algorithm::HS256]);
    let s = JwtSettings { hs256_secret_file: Some(path), ..hs_settings() };
    assert!(
        matches!(JwtVerifier::new(&s, http()), Err(JwtConfigError::Invalid(m)) if m.contains("not both"))
    );
    let s = JwtSettings {
        hs256_secret: None,
        hs256_secret_file: Some(dir.path().join("missing")),
        ..hs_settings()
    };
    assert!(matches!(JwtVerifier::new(&s, http()), Err(JwtConfigError::SecretFile { .. })));
}

#[test]
fn settings_parse_from_toml() {
    let s: JwtSettings = toml::from_str(
        r#"
        enabled = true
        hs256_secret = "from-the-supabase-dashboard"
        audience = "authenticated"
        role_claim = "/app_metadata/roles"
        "#,
    )
    .expect("parses");
    assert!(s.enabled);
    assert_eq!(s.audience, Some(vec!["authenticated".to_owned()]));
    assert_eq!((s.leeway_seconds, s.jwks_cache_seconds, s.jwks_min_refresh_seconds), (30, 600, 30));
    assert_eq!((s.user_claim.as_str(), s.email_claim.as_str()), ("sub", "email"));
    assert!(!s.auto_provision);
    assert!(!format!("{s:?}").contains("from-the-supabase-dashboard"), "the secret is redacted");
    let s: JwtSettings = toml::from_str(r#"audience = ["a", "b"]"#).expect("parses");
    assert_eq!(s.audience, Some(vec!["a".to_owned(), "b".to_owned()]));
    let e = toml::from_str::<JwtSettings>("hs256_secrett = \"x\"").expect_err("unknown key");
    assert!(e.to_string().contains("unknown field"), "{e}");
}

#[tokio::test]
async fn errors_are_safe_to_show() {
    let v = verifier(&hs_settings());
    let c = claims();
    let tokens = [
        sign(Algorithm::HS256, None, &c, &EncodingKey::from_secret(b"another-secret-of-enough-length-0123")),
        hs256(&with(c.clone(), "exp", json!(now() - 3600))),
        hs256(&without(c.clone(), "sub")),
        raw_token(&json!({ "alg": "none" }), &c, b""),
        rs256(&KEYS.rsa, &c),
    ];
    for token in &tokens {
        let e = v.verify(token).await.expect_err("refused");
        let shown = e.to_string();
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!shown.contains(part), "{shown}");
        }
        assert!(!shown.contains(USER), "{shown}");
        let api = ApiError::from(e.clone());
        assert_eq!(api.status, StatusCode::UNAUTHORIZED);
        assert_eq!(api.extra["reason"], json!(e.code()));
    }
    assert_eq!(ApiError::from(JwtError::KeysUnavailable).status, StatusCode::SERVICE_UNAVAILABLE);
}
