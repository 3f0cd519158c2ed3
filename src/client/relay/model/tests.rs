use super::*;

/// Feeds server tags to the model; returns what the client would get in order: the
/// forwarded tags, `!` for a replaced error, and synthetic replies as their tags.
fn answer(model: &mut Model, tags: &[u8], undo: &mut Vec<Change>) -> Vec<u8> {
    let mut client = Vec::new();
    for &tag in tags {
        let status = (tag == b'Z').then_some(b'I');
        let mut then = Vec::new();
        match model.on_server(tag, status, &mut then, undo) {
            Disposition::Forward => client.push(tag),
            Disposition::Swallow => {}
            Disposition::Replace(_) => client.push(b'!'),
        }
        client.extend(synthetic_tags(&then));
    }
    client
}

fn synthetic_tags(bytes: &[u8]) -> Vec<u8> {
    let mut tags = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        tags.push(bytes[at]);
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().unwrap()) as usize;
        at += 1 + len;
    }
    tags
}

fn client(model: &mut Model, requests: &[Request]) {
    for &request in requests {
        assert!(model.push(request, Route::Client, Vec::new()).is_empty());
    }
}

fn def(id: u64) -> Arc<StatementDef> {
    Arc::new(StatementDef::for_tests(id))
}

use Request::*;

#[test]
fn a_simple_query_is_clean_at_its_ready_for_query() {
    let mut model = Model::default();
    client(&mut model, &[Query]);
    assert!(!model.is_clean());
    assert_eq!(answer(&mut model, b"TDCZ", &mut Vec::new()), b"TDCZ");
    assert!(model.is_clean());
}

#[test]
fn a_pipeline_is_clean_only_after_its_last_sync_is_answered() {
    let mut model = Model::default();
    client(
        &mut model,
        &[Parse, Bind, Execute, Sync, Bind, Execute, Sync],
    );
    answer(&mut model, b"12CZ", &mut Vec::new());
    assert!(!model.is_clean(), "the second Sync is still owed");
    answer(&mut model, b"2CZ", &mut Vec::new());
    assert!(model.is_clean());
}

#[test]
fn simple_copy_from_stdin_ends_with_the_querys_ready_for_query() {
    // psql's \copy: no Sync ever comes (issue 12, case 1).
    let mut model = Model::default();
    client(&mut model, &[Query]);
    answer(&mut model, b"G", &mut Vec::new());
    assert_eq!(model.phase(), Phase::CopyIn);
    assert!(model.takes_copy_data());
    model.client_copy_done();
    answer(&mut model, b"CZ", &mut Vec::new());
    assert!(model.is_clean());
}

#[test]
fn a_copy_the_server_fails_before_copy_done_leaves_it_clean() {
    // issue 12, case 4: the client's late CopyData and CopyDone then reach nothing.
    let mut model = Model::default();
    client(&mut model, &[Query]);
    answer(&mut model, b"GEZ", &mut Vec::new());
    assert!(model.is_clean());
    assert!(!model.takes_copy_data());
}

#[test]
fn extended_copy_ignores_the_sync_sent_before_copy_in() {
    let mut model = Model::default();
    client(&mut model, &[Parse, Bind, Describe, Execute, Sync]);
    answer(&mut model, b"12nG", &mut Vec::new());
    assert_eq!(model.push(Sync, Route::Client, Vec::new()).len(), 0);
    model.client_copy_done();
    client(&mut model, &[Sync]);
    answer(&mut model, b"CZ", &mut Vec::new());
    assert!(model.is_clean());
}

#[test]
fn an_error_discards_up_to_the_sync_even_when_the_sync_comes_late() {
    // issue 12, case 5: pipeline fails, more is sent, and only then the Sync.
    let mut model = Model::default();
    client(&mut model, &[Parse, Bind, Execute]);
    assert_eq!(answer(&mut model, b"12E", &mut Vec::new()), b"12E");
    assert_eq!(model.phase(), Phase::SkippingUntilSync);
    client(&mut model, &[Bind, Execute, Query]);
    client(&mut model, &[Sync]);
    assert_eq!(answer(&mut model, b"Z", &mut Vec::new()), b"Z");
    assert!(model.is_clean());
}

#[test]
fn changes_of_discarded_requests_come_back_to_be_undone() {
    // issue 12, case 2: the eviction Close and the new Parse after a failed statement.
    let mut model = Model::default();
    client(&mut model, &[Parse, Bind, Execute]);
    let close = vec![Change::ServerStatement {
        id: 1,
        was: Some(def(1)),
    }];
    let parse = vec![Change::ServerStatement { id: 2, was: None }];
    model.push(Close, Route::Swallow, close);
    model.push(Parse, Route::Client, parse);
    client(&mut model, &[Bind, Execute, Sync]);
    assert!(model.must_hold_statement_messages());
    let mut undo = Vec::new();
    assert_eq!(answer(&mut model, b"12EZ", &mut undo), b"12EZ");
    let ids: Vec<u64> = undo
        .iter()
        .map(|c| match c {
            Change::ServerStatement { id, .. } => *id,
            Change::ClientName { .. } => 0,
        })
        .collect();
    assert_eq!(
        ids,
        [1, 2],
        "oldest first; the caller undoes them newest first"
    );
    assert!(!model.must_hold_statement_messages());
    assert!(model.is_clean());
}

#[test]
fn synthetic_replies_are_sent_in_their_place_and_never_after_an_error() {
    let mut model = Model::default();
    client(&mut model, &[Parse]);
    model.push_synthetic(Synthetic::ParseComplete, Vec::new());
    client(&mut model, &[Bind, Execute]);
    model.push_synthetic(Synthetic::CloseComplete, Vec::new());
    client(&mut model, &[Sync]);
    // The Execute fails: the CloseComplete behind it must not be sent.
    assert_eq!(answer(&mut model, b"1", &mut Vec::new()), b"11");
    assert_eq!(answer(&mut model, b"2EZ", &mut Vec::new()), b"2EZ");
    assert!(model.is_clean());
}

#[test]
fn synthetic_replies_pushed_while_the_server_discards_are_dropped() {
    let mut model = Model::default();
    client(&mut model, &[Bind]);
    answer(&mut model, b"E", &mut Vec::new());
    let named = vec![Change::ClientName {
        name: "s1".into(),
        was: None,
    }];
    assert_eq!(
        model.push_synthetic(Synthetic::ParseComplete, named).len(),
        1
    );
    let mut out = Vec::new();
    model.drain_synthetic(&mut out);
    assert!(out.is_empty());
}

#[test]
fn a_refused_query_fails_on_the_server_and_the_client_gets_pgmuxs_error() {
    let mut model = Model::default();
    model.push(Query, Route::Refused(Box::new([b'E'])), Vec::new());
    assert_eq!(answer(&mut model, b"EZ", &mut Vec::new()), b"!Z");
    assert!(model.is_clean());
}

#[test]
fn pgmuxs_own_requests_are_swallowed_but_their_errors_reach_the_client() {
    let mut model = Model::default();
    model.push(Parse, Route::Swallow, Vec::new());
    client(&mut model, &[Bind, Execute, Sync]);
    assert_eq!(answer(&mut model, b"12CZ", &mut Vec::new()), b"2CZ");
    model.push(Parse, Route::Swallow, Vec::new());
    client(&mut model, &[Bind, Execute, Sync]);
    assert_eq!(answer(&mut model, b"EZ", &mut Vec::new()), b"EZ");
    assert!(model.is_clean());
}

#[test]
fn an_unexpected_ready_for_query_is_forwarded_and_ends_a_discard() {
    // A Sync sent during a COPY that failed before the server read it.
    let mut model = Model::default();
    client(&mut model, &[Parse, Bind, Execute, Sync]);
    answer(&mut model, b"12G", &mut Vec::new());
    assert_eq!(answer(&mut model, b"E", &mut Vec::new()), b"E");
    assert_eq!(model.phase(), Phase::SkippingUntilSync);
    assert_eq!(answer(&mut model, b"Z", &mut Vec::new()), b"Z");
    assert!(model.is_clean());
}

#[test]
fn the_hold_covers_changes_before_a_boundary_only() {
    let mut model = Model::default();
    let named = || {
        vec![Change::ClientName {
            name: "s".into(),
            was: None,
        }]
    };
    model.push(Parse, Route::Client, named());
    assert!(
        !model.must_hold_statement_messages(),
        "same stretch: discarded together"
    );
    client(&mut model, &[Sync]);
    assert!(model.must_hold_statement_messages());
    answer(&mut model, b"1Z", &mut Vec::new());
    assert!(!model.must_hold_statement_messages());
    model.push(Query, Route::Client, named());
    assert!(
        model.must_hold_statement_messages(),
        "a PREPARE is its own stretch"
    );
    answer(&mut model, b"CZ", &mut Vec::new());
    assert!(!model.must_hold_statement_messages());
}

#[test]
fn inside_a_transaction_the_server_stays_until_it_ends() {
    let mut model = Model::default();
    client(&mut model, &[Query]);
    let mut then = Vec::new();
    model.on_server(b'C', None, &mut then, &mut Vec::new());
    model.on_server(b'Z', Some(b'T'), &mut then, &mut Vec::new());
    assert!(model.idle_in_transaction());
    assert!(!model.is_clean());
}

#[test]
fn the_changes_of_the_request_a_ready_for_query_answers_stand() {
    let mut model = Model::default();
    let named = vec![Change::ClientName {
        name: "calc".into(),
        was: None,
    }];
    model.push(Query, Route::Client, named);
    let mut undo = Vec::new();
    answer(&mut model, b"CZ", &mut undo);
    assert!(undo.is_empty());
}
