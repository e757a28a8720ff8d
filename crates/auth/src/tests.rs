use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::{json, Value};

use crate::{AuthError, Principal, Scope, Signer, Verifier, LOCAL_AUDIENCE, LOCAL_ISSUER};

const HOUR: Duration = Duration::from_secs(3600);

fn verifier(signers: &[&Signer]) -> Verifier {
    let keys: Vec<Value> = signers
        .iter()
        .flat_map(|s| {
            serde_json::from_str::<Value>(&s.jwks()).unwrap()["keys"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect();
    Verifier::from_jwks(&json!({ "keys": keys }).to_string(), LOCAL_ISSUER, LOCAL_AUDIENCE).unwrap()
}

/// A JWT of `header` and `claims`, signed over "header.claims" by `sign`.
fn jwt(header: Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let (h, c) = (
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
    );
    let signature = sign(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(overrides: Value) -> Value {
    let mut c = json!({
        "iss": LOCAL_ISSUER, "aud": LOCAL_AUDIENCE, "sub": "cust-1", "scope": "orders:read",
        "iat": now(), "nbf": now(), "exp": now() + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

#[test]
fn a_token_of_a_known_key_yields_its_subject_and_known_scopes() {
    let signer = Signer::generate("k1");
    let token = signer.mint("cust-1", &[Scope::OrdersWrite, Scope::OrdersRead], HOUR);
    assert_eq!(
        verifier(&[&signer]).verify(&token),
        Ok(Principal {
            subject: "cust-1".into(),
            scopes: vec![Scope::OrdersRead, Scope::OrdersWrite],
        })
    );
    let foreign = signer.mint_claims(&claims(json!({"scope": "orders:read billing:everything admin"})));
    let p = verifier(&[&signer]).verify(&foreign).unwrap();
    assert_eq!(
        p.scopes,
        [Scope::OrdersRead, Scope::Admin],
        "unknown scopes grant nothing"
    );
}

#[test]
fn expired_early_foreign_and_incomplete_tokens_are_refused_with_the_reason() {
    let signer = Signer::generate("k1");
    let v = verifier(&[&signer]);
    let refused = |overrides: Value| v.verify(&signer.mint_claims(&claims(overrides))).unwrap_err();
    assert_eq!(refused(json!({"exp": now() - 120})), AuthError::Expired);
    assert_eq!(refused(json!({"nbf": now() + 120})), AuthError::NotYetValid);
    assert_eq!(refused(json!({"iss": "someone-else"})), AuthError::WrongIssuer);
    assert_eq!(refused(json!({"aud": "another-api"})), AuthError::WrongAudience);
    assert!(matches!(refused(json!({"exp": null})), AuthError::BadClaims(_)));
    assert!(matches!(refused(json!({"sub": null})), AuthError::BadClaims(_)));
    assert!(matches!(refused(json!({"sub": ""})), AuthError::BadClaims(_)));
    assert_eq!(v.verify("not.a.jwt"), Err(AuthError::Malformed));
    assert_eq!(v.verify(""), Err(AuthError::Malformed));
}

#[test]
fn another_keys_token_and_a_tampered_one_do_not_verify() {
    let (ours, theirs) = (Signer::generate("k1"), Signer::generate("k2"));
    let v = verifier(&[&ours]);
    assert_eq!(
        v.verify(&theirs.mint("cust-1", &[Scope::Admin], HOUR)),
        Err(AuthError::UnknownKey)
    );
    // Their key under our kid: the signature gives it away.
    let mut forged = Signer::generate("k1").mint("cust-1", &[Scope::Admin], HOUR);
    assert_eq!(v.verify(&forged), Err(AuthError::BadSignature));
    // Our token with its claims swapped for an admin's.
    let token = ours.mint("cust-1", &[Scope::OrdersRead], HOUR);
    let parts: Vec<&str> = token.split('.').collect();
    let admin = URL_SAFE_NO_PAD.encode(claims(json!({"scope": "admin"})).to_string());
    forged = format!("{}.{admin}.{}", parts[0], parts[2]);
    assert_eq!(v.verify(&forged), Err(AuthError::BadSignature));
}

#[test]
fn the_none_algorithm_and_algorithm_confusion_are_refused() {
    let signer = Signer::generate("k1");
    let v = verifier(&[&signer]);
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "k1", "typ": "JWT"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims(json!({"scope": "admin"})).to_string());
    assert!(v.verify(&format!("{header}.{body}.")).is_err(), "alg none");
    // HS256 keyed with the public key, the classic confusion attack.
    let jwks: Value = serde_json::from_str(&signer.jwks()).unwrap();
    let public = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public.as_bytes());
    let confused = jwt(
        json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}),
        &claims(json!({"scope": "admin"})),
        |m| ring::hmac::sign(&key, m).as_ref().to_vec(),
    );
    assert_eq!(v.verify(&confused), Err(AuthError::WrongAlgorithm));
}

#[test]
fn keys_rotate_by_kid_and_a_jwks_must_pin_each_keys_algorithm() {
    let (old, new) = (Signer::generate("2026-10"), Signer::generate("2026-11"));
    let v = verifier(&[&old, &new]);
    for signer in [&old, &new] {
        let token = signer.mint("cust-1", &[Scope::OrdersRead], HOUR);
        assert_eq!(v.verify(&token).unwrap().subject, "cust-1", "{}", signer.kid());
    }
    let mut jwks: Value = serde_json::from_str(&old.jwks()).unwrap();
    jwks["keys"][0].as_object_mut().unwrap().remove("alg");
    let unpinned = Verifier::from_jwks(&jwks.to_string(), LOCAL_ISSUER, LOCAL_AUDIENCE).unwrap_err();
    assert!(unpinned.to_string().contains("no alg"), "{unpinned}");
    let symmetric = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s", "alg": "HS256"}]});
    assert!(Verifier::from_jwks(&symmetric.to_string(), LOCAL_ISSUER, LOCAL_AUDIENCE).is_err());
    assert!(Verifier::from_jwks(r#"{"keys": []}"#, LOCAL_ISSUER, LOCAL_AUDIENCE).is_err());
}

#[test]
fn the_local_key_is_created_once_and_loaded_after() {
    let dir = std::env::temp_dir().join(format!("omnisaga-auth-{}", rand::random::<u64>()));
    let first = Signer::load_or_create(&dir).unwrap();
    let again = Signer::load_or_create(&dir).unwrap();
    assert_eq!(first.kid(), again.kid());
    let jwks = std::fs::read_to_string(dir.join("jwks.json")).unwrap();
    let v = Verifier::from_jwks(&jwks, LOCAL_ISSUER, LOCAL_AUDIENCE).unwrap();
    assert!(v
        .verify(&again.mint("ops", &[Scope::Admin], HOUR))
        .unwrap()
        .has(Scope::Admin));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("signing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is its owner's only");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn scopes_parse_from_their_names_only() {
    for scope in Scope::ALL {
        assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
    }
    assert!("root".parse::<Scope>().unwrap_err().contains("orders:read"));
}

#[test]
fn rs256_and_es256_tokens_of_an_identity_providers_jwks_verify_and_forgeries_do_not() {
    use base64::engine::general_purpose::STANDARD;
    use ring::{
        rand::SystemRandom,
        signature::{self, KeyPair, RsaPublicKeyComponents},
    };
    let rng = SystemRandom::new();
    // A 2048-bit key made for this test only (openssl genpkey), PKCS#8.
    let pem = include_str!("testdata/rs256-test-key.pem");
    let der = STANDARD
        .decode(
            pem.lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let rsa = signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    let rsa_public = RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
    let ec = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
    let point = ec.public_key().as_ref();
    let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(&rsa_public.n), "e": b64(&rsa_public.e)},
        {"kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256",
         "x": b64(&point[1..33]), "y": b64(&point[33..])},
    ]});
    let v = Verifier::from_jwks(&jwks.to_string(), LOCAL_ISSUER, LOCAL_AUDIENCE).unwrap();
    let rs256 = |kid: &str, claims: &Value| {
        jwt(json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), claims, |m| {
            let mut sig = vec![0; rsa.public().modulus_len()];
            rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
            sig
        })
    };
    let es256 = |kid: &str, claims: &Value| {
        jwt(json!({"alg": "ES256", "kid": kid, "typ": "JWT"}), claims, |m| {
            ec.sign(&rng, m).unwrap().as_ref().to_vec()
        })
    };
    let ok = claims(json!({}));
    for token in [rs256("rsa-1", &ok), es256("ec-1", &ok)] {
        assert_eq!(v.verify(&token).unwrap().subject, "cust-1", "{token}");
        // The same signature over an admin's claims.
        let parts: Vec<&str> = token.split('.').collect();
        let admin = b64(claims(json!({"scope": "admin"})).to_string().as_bytes());
        let forged = format!("{}.{admin}.{}", parts[0], parts[2]);
        assert_eq!(v.verify(&forged), Err(AuthError::BadSignature));
    }
    assert_eq!(v.verify(&rs256("ec-1", &ok)), Err(AuthError::WrongAlgorithm));
    assert_eq!(v.verify(&es256("rsa-1", &ok)), Err(AuthError::WrongAlgorithm));
    assert_eq!(
        v.verify(&rs256("rsa-1", &claims(json!({"exp": now() - 120})))),
        Err(AuthError::Expired)
    );
}
