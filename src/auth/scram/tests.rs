use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::*;

fn client(password: &str) -> ScramSha256 {
    ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported())
}

/// Runs client-first and client-final; returns the server-final-message.
fn exchange(server: &mut ScramServer, client: &mut ScramSha256) -> Result<Vec<u8>, AuthError> {
    let server_first = server.client_first(client.message())?;
    client
        .update(&server_first)
        .expect("client accepts server-first-message");
    server.client_final(client.message())
}

fn first_half(server: &mut ScramServer, client: &mut ScramSha256) -> String {
    let server_first = server.client_first(client.message()).unwrap();
    client.update(&server_first).unwrap();
    String::from_utf8(client.message().to_vec()).unwrap()
}

fn plain(password: &str) -> Secret {
    Secret::Plain(password.into())
}

fn scram(password: &str) -> Secret {
    Secret::parse(&ScramSecret::generate(password).encode()).unwrap()
}

#[test]
fn real_client_accepts_server_final_for_plain_and_scram_secrets() {
    for secret in [plain("pencil"), scram("pencil")] {
        let mut server = ScramServer::new(&secret).unwrap();
        let mut client = client("pencil");
        let server_final = exchange(&mut server, &mut client).unwrap();
        client
            .finish(&server_final)
            .expect("server signature verifies");
        assert!(server.client_key().is_some());
    }
}

#[test]
fn accepts_client_that_could_bind_but_was_not_asked() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let mut client = ScramSha256::new(b"pencil", ChannelBinding::unrequested());
    assert!(client.message().starts_with(b"y,,"));
    let server_final = exchange(&mut server, &mut client).unwrap();
    client.finish(&server_final).unwrap();
}

#[test]
fn client_key_hashes_to_stored_key() {
    let secret = ScramSecret::generate("pencil");
    let mut server = ScramServer::new(&Secret::Scram(secret.clone())).unwrap();
    assert_eq!(server.client_key(), None);
    exchange(&mut server, &mut client("pencil")).unwrap();
    let client_key = server.client_key().unwrap();
    assert_eq!(sha256(&client_key), secret.stored_key);
    let salted_password = crate::auth::secret::hi(b"pencil", &secret.salt, secret.iterations);
    assert_eq!(client_key, hmac_sha256(&salted_password, b"Client Key"));
}

#[test]
fn wrong_password_fails() {
    for secret in [plain("pencil"), scram("pencil")] {
        let mut server = ScramServer::new(&secret).unwrap();
        let result = exchange(&mut server, &mut client("pen"));
        assert!(matches!(result, Err(AuthError::Failed)), "{secret:?}");
        assert_eq!(server.client_key(), None);
    }
}

#[test]
fn tampered_nonce_is_rejected() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let mut client = client("pencil");
    let client_final = first_half(&mut server, &mut client).replacen(",r=", ",r=X", 1);
    let result = server.client_final(client_final.as_bytes());
    assert!(matches!(result, Err(AuthError::Malformed(_))));
    assert_eq!(server.client_key(), None);
}

#[test]
fn tampered_proof_fails() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let mut client = client("pencil");
    let client_final = first_half(&mut server, &mut client);
    let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
    let mut proof = STANDARD.decode(proof).unwrap();
    proof[0] ^= 1;
    let tampered = format!("{without_proof},p={}", STANDARD.encode(proof));
    let result = server.client_final(tampered.as_bytes());
    assert!(matches!(result, Err(AuthError::Failed)));
}

#[test]
fn channel_binding_flag_must_be_repeated_unchanged() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let mut client = client("pencil");
    // "eSws" is base64 of "y,,": a downgrade of the flag sent as "n,,".
    let client_final = first_half(&mut server, &mut client).replacen("c=biws", "c=eSws", 1);
    let result = server.client_final(client_final.as_bytes());
    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn channel_binding_request_is_rejected() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let client = ScramSha256::new(
        b"pencil",
        ChannelBinding::tls_server_end_point(vec![1, 2, 3]),
    );
    let result = server.client_first(client.message());
    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn md5_secret_cannot_do_scram() {
    let md5 = Secret::Md5(crate::auth::md5_hash("user", "pencil"));
    assert!(matches!(
        ScramServer::new(&md5),
        Err(AuthError::Unsupported(_))
    ));
}

#[test]
fn messages_out_of_order_are_rejected() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let result = server.client_final(b"c=biws,r=abc,p=AAAA");
    assert!(matches!(result, Err(AuthError::Malformed(_))));

    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    server.client_first(b"n,,n=,r=abc").unwrap();
    let again = server.client_first(b"n,,n=,r=abc");
    assert!(matches!(again, Err(AuthError::Malformed(_))));
}

#[test]
fn a_failed_exchange_cannot_be_resumed() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let mut client = client("pencil");
    let client_final = first_half(&mut server, &mut client);
    assert!(server.client_final(b"garbage").is_err());
    let retry = server.client_final(client_final.as_bytes());
    assert!(matches!(retry, Err(AuthError::Malformed(_))));
    assert_eq!(server.client_key(), None);
}

#[test]
fn non_utf8_message_is_malformed() {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    let result = server.client_first(b"n,,n=\xff,r=abc");
    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn server_first_extends_client_nonce_and_announces_verifier() {
    let secret = ScramSecret::from_password("pencil", b"0123456789abcdef", 4096);
    let mut server = ScramServer::new(&Secret::Scram(secret)).unwrap();
    let server_first = server.client_first(b"n,,n=,r=clientnonce").unwrap();
    let server_first = String::from_utf8(server_first).unwrap();
    let (nonce, rest) = server_first.split_once(',').unwrap();
    let server_nonce = nonce.strip_prefix("r=clientnonce").unwrap();
    assert_eq!(
        STANDARD.decode(server_nonce).unwrap().len(),
        SERVER_NONCE_BYTES
    );
    assert_eq!(rest, "s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096");
}

#[test]
fn unknown_user_exchange_looks_real_then_fails() {
    let mut server = ScramServer::for_unknown_user("ghost");
    let result = exchange(&mut server, &mut client("anything"));
    assert!(matches!(result, Err(AuthError::Failed)));
    assert_eq!(server.client_key(), None);
}

#[test]
fn unknown_user_salt_is_stable_per_user() {
    let salt_of = |user: &str| {
        let mut server = ScramServer::for_unknown_user(user);
        let server_first = server.client_first(b"n,,n=,r=abc").unwrap();
        let server_first = String::from_utf8(server_first).unwrap();
        let (_, salt_and_iterations) = server_first.split_once(",s=").unwrap();
        salt_and_iterations.to_owned()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("spectre"));
    assert!(salt_of("ghost").ends_with(",i=4096"));
}

/// The SCRAM-SHA-256 example exchange of RFC 7677 section 3. It names the
/// user in client-first-message-bare, which must enter the AuthMessage as sent.
#[test]
fn rfc_7677_example_exchange() {
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let secret = ScramSecret::from_password("pencil", &salt, 4096);
    let mut server = ScramServer::new(&Secret::Scram(secret)).unwrap();
    let server_first = server
        .client_first_with_server_nonce(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
    assert_eq!(
        server_first,
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let server_final = server
        .client_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
              p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        )
        .unwrap();
    assert_eq!(
        server_final,
        b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

/// An exchange recorded from psql against PostgreSQL, from postgres-protocol's tests.
#[test]
fn recorded_psql_exchange() {
    let salt = STANDARD.decode("fs3IXBy7U7+IvVjZ").unwrap();
    let secret = ScramSecret::from_password("foobar", &salt, 4096);
    let mut server = ScramServer::new(&Secret::Scram(secret)).unwrap();
    let server_first = server
        .client_first_with_server_nonce(
            b"n,,n=,r=9IZ2O01zb9IgiIZ1WJ/zgpJB",
            "jx/oIRLs02gGSHcw1KEty3eY",
        )
        .unwrap();
    assert_eq!(
        server_first,
        b"r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,s=fs3IXBy7U7+IvVjZ,i=4096"
    );
    let server_final = server
        .client_final(
            b"c=biws,r=9IZ2O01zb9IgiIZ1WJ/zgpJBjx/oIRLs02gGSHcw1KEty3eY,\
              p=AmNKosjJzS31NTlQYNs5BTeQjdHdk7lOflDo5re2an8=",
        )
        .unwrap();
    assert_eq!(
        server_final,
        b"v=U+ppxD5XUKtradnv8e2MkeupiA8FU87Sg8CXzXHDAzw="
    );
}

fn bound_server(data: &[u8], plus: bool) -> ScramServer {
    let mut server = ScramServer::new(&scram("pencil")).unwrap();
    server.bind_channel(Some(data.to_vec()), plus);
    server
}

#[test]
fn plus_exchange_with_matching_end_point_succeeds() {
    let mut server = bound_server(b"certificate hash", true);
    let mut client = ScramSha256::new(
        b"pencil",
        ChannelBinding::tls_server_end_point(b"certificate hash".to_vec()),
    );
    let server_final = exchange(&mut server, &mut client).unwrap();
    client.finish(&server_final).unwrap();
}

#[test]
fn plus_exchange_with_another_certificate_fails() {
    // A man in the middle: the client saw a different certificate than ours.
    let mut server = bound_server(b"our certificate", true);
    let mut client = ScramSha256::new(
        b"pencil",
        ChannelBinding::tls_server_end_point(b"their certificate".to_vec()),
    );
    assert!(matches!(
        exchange(&mut server, &mut client),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn plus_selected_without_binding_data_in_message_is_rejected() {
    let mut server = bound_server(b"hash", true);
    let result = server.client_first(client("pencil").message());
    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn binding_client_that_thinks_server_cannot_is_a_downgrade() {
    let mut server = bound_server(b"hash", false);
    let client = ScramSha256::new(b"pencil", ChannelBinding::unrequested());
    let result = server.client_first(client.message());
    assert!(matches!(result, Err(AuthError::Malformed(_))));
}

#[test]
fn plain_scram_still_works_on_a_tls_connection() {
    let mut server = bound_server(b"hash", false);
    let mut client = client("pencil");
    let server_final = exchange(&mut server, &mut client).unwrap();
    client.finish(&server_final).unwrap();
}
