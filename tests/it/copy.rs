//! COPY in both directions, COPY failures, and streaming of large results and large
//! messages with bounded pgmux memory (DESIGN.md facts 5 and 8).

use std::time::Duration;

use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt, TryStreamExt};

use crate::harness::{self, pgmux, Pgmux};
use crate::raw_wire::{cstr, message, RawConn};

/// Deterministic COPY text rows `id \t body \n` whose bodies contain tabs and
/// backslashes, escaped the way PostgreSQL itself escapes them on COPY TO, so the
/// bytes that come back out must equal the bytes that went in. Returns the encoded
/// data and the sum of the decoded body lengths.
fn copy_rows(count: usize, body_len: usize) -> (Vec<u8>, i64) {
    let mut out = Vec::with_capacity(count * (body_len + 16));
    let mut total = 0i64;
    for id in 0..count {
        let mut body = String::with_capacity(body_len + 8);
        for i in 0..body_len {
            let c = match (id * 31 + i * 7) % 53 {
                0 => '\t',
                1 => '\\',
                n => (b'a' + (n % 26) as u8) as char,
            };
            body.push(c);
        }
        total += body.chars().count() as i64;
        let escaped = body.replace('\\', "\\\\").replace('\t', "\\t");
        out.extend_from_slice(format!("{id}\t{escaped}\n").as_bytes());
    }
    (out, total)
}

/// Streams `data` into `COPY table FROM STDIN` in 64 KiB chunks; the rows copied or the
/// first error the server reported.
async fn copy_in(
    client: &tokio_postgres::Client,
    table: &str,
    data: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    let sink = client
        .copy_in(&format!("copy {table} (id, body) from stdin"))
        .await?;
    pin_mut!(sink);
    for chunk in data.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(chunk)).await?;
    }
    sink.as_mut().finish().await
}

async fn copy_out(client: &tokio_postgres::Client, sql: &str) -> Vec<u8> {
    let stream = client.copy_out(sql).await.unwrap();
    pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

#[tokio::test]
async fn ten_megabytes_copy_in_and_out_byte_for_byte_then_the_server_serves_another_client() {
    let _guard = harness::shared();
    // One server: the second client below can only be served if COPY left it clean.
    // A short query_wait_timeout turns "never released" into a quick, clear error.
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("query_wait_timeout", "\"10s\"")
        .start()
        .await;
    let table = harness::unique_name("copy_big");
    let client = pgmux.app().await;
    client
        .batch_execute(&format!("create table {table} (id int, body text)"))
        .await
        .unwrap();

    let (data, body_chars) = copy_rows(100_000, 90);
    assert!(data.len() > 10_000_000, "{} bytes", data.len());
    assert_eq!(copy_in(&client, &table, &data).await.unwrap(), 100_000);

    let out = copy_out(
        &client,
        &format!("copy (select id, body from {table} order by id) to stdout"),
    )
    .await;
    assert_eq!(
        out.len(),
        data.len(),
        "COPY TO returned a different amount of data"
    );
    assert!(
        out == data,
        "COPY TO returned different bytes than COPY FROM received"
    );

    let other = pgmux.app().await;
    let row = other
        .query_one(
            &format!("select count(*), sum(length(body))::int8 from {table}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 100_000);
    assert_eq!(row.get::<_, i64>(1), body_chars);
    other
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

async fn count(client: &tokio_postgres::Client, table: &str) -> i64 {
    let sql = format!("select count(*) from {table}");
    client.query_one(&sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_failed_or_abandoned_copy_in_leaves_no_rows_and_the_connection_usable() {
    let _guard = harness::shared();
    let pgmux = pgmux()
        .setting("default_pool_size", "1")
        .setting("query_wait_timeout", "\"10s\"")
        .start()
        .await;
    let table = harness::unique_name("copy_fail");
    let client = pgmux.app().await;
    client
        .batch_execute(&format!("create table {table} (id int, body text)"))
        .await
        .unwrap();

    // Good rows first, then a non-integer id: the server rejects the whole COPY.
    let mut data = copy_rows(1_000, 20).0;
    data.extend_from_slice(b"not-a-number\tbad\n");
    let error = copy_in(&client, &table, &data).await.unwrap_err();
    assert_eq!(error.code().map(|c| c.code()), Some("22P02"), "{error:?}");
    assert_eq!(
        count(&client, &table).await,
        0,
        "rows of the failed COPY are visible"
    );

    // Dropping the sink unfinished makes tokio-postgres send CopyFail + Sync.
    {
        let sink = client
            .copy_in(&format!("copy {table} (id, body) from stdin"))
            .await
            .unwrap();
        pin_mut!(sink);
        sink.send(Bytes::from(copy_rows(500, 20).0)).await.unwrap();
    }
    assert_eq!(
        count(&client, &table).await,
        0,
        "rows of the abandoned COPY are visible"
    );
    // The one server is free for someone else too.
    let other = pgmux.app().await;
    assert_eq!(count(&other, &table).await, 0);
    copy_in(&other, &table, &copy_rows(10, 5).0).await.unwrap();
    assert_eq!(count(&client, &table).await, 10);
    client
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn copy_fail_reason_reaches_the_client_and_a_client_vanishing_mid_copy_frees_the_server() {
    let _guard = harness::shared();
    // Trust auth lets a raw-wire client log in without a SCRAM exchange.
    let pgmux = pgmux()
        .setting("auth_type", "\"trust\"")
        .setting("default_pool_size", "1")
        .start()
        .await;
    let table = harness::unique_name("copy_raw");
    let login = [("user", "app"), ("database", "app")];
    let mut raw = RawConn::login(pgmux.addr(), &login).await.unwrap();
    raw.query(&format!("create table {table} (id int, body text)"))
        .await
        .unwrap();

    raw.send(&message(b'Q', &cstr(&format!("copy {table} from stdin"))))
        .await;
    assert_eq!(
        raw.read().await.map(|m| m.0),
        Some(b'G'),
        "expected CopyInResponse"
    );
    raw.send(&message(b'd', &copy_rows(100, 10).0)).await;
    raw.send(&message(b'f', &cstr("the test changed its mind")))
        .await;
    let error = raw.read_until_ready().await.unwrap_err();
    assert_eq!(error.code, "57014", "{error:?}");
    assert!(
        error.message.contains("the test changed its mind"),
        "{error:?}"
    );
    assert_eq!(
        raw.query_value(&format!("select count(*) from {table}"))
            .await,
        "0"
    );

    // A client that disappears in the middle of a COPY: the server must not be handed
    // on still inside the COPY (or with its rows half-committed).
    raw.send(&message(b'Q', &cstr(&format!("copy {table} from stdin"))))
        .await;
    assert_eq!(raw.read().await.map(|m| m.0), Some(b'G'));
    raw.send(&message(b'd', &copy_rows(100, 10).0)).await;
    drop(raw);
    let mut next = RawConn::login(pgmux.addr(), &login).await.unwrap();
    assert_eq!(
        next.query_value(&format!("select count(*) from {table}"))
            .await,
        "0"
    );
    assert_eq!(
        next.query_value("select 'still works'").await,
        "still works"
    );
    next.query(&format!("drop table {table}")).await.unwrap();
}

#[tokio::test]
async fn psql_backslash_copy_round_trips_a_file() {
    let _guard = harness::shared();
    let pgmux = pgmux().start().await;
    let table = harness::unique_name("copy_psql");
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = copy_rows(2_000, 40);
    let input = dir.path().join("in.tsv");
    let output = dir.path().join("out.tsv");
    std::fs::write(&input, &data).unwrap();

    let mut psql = pgmux.tool_command(&harness::postgres().bin("psql"), "app", "secret", "app");
    psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg("-c")
        .arg(format!("create table {table} (id int, body text)"))
        .arg("-c")
        .arg(format!(
            "\\copy {table} (id, body) from '{}'",
            input.display()
        ))
        .arg("-c")
        .arg(format!(
            "\\copy (select id, body from {table} order by id) to '{}'",
            output.display()
        ))
        .arg("-c")
        .arg(format!("drop table {table}"));
    tokio::task::spawn_blocking(move || {
        harness::run_tool(&mut psql, Duration::from_secs(60))
            .assert_success()
            .status
    })
    .await
    .unwrap();
    let round_tripped = std::fs::read(&output).unwrap();
    assert_eq!(round_tripped.len(), data.len());
    assert!(round_tripped == data, "\\copy out differs from \\copy in");
}

/// Peak resident set size (VmHWM) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const MB: u64 = 1024 * 1024;

/// Logs in once and runs a query, so the baseline includes pool and session setup.
async fn warmed_up(pgmux: &Pgmux) -> (tokio_postgres::Client, u64) {
    let client = pgmux.app().await;
    client.query_one("select 1", &[]).await.unwrap();
    let baseline = peak_rss(pgmux.pid());
    (client, baseline)
}

#[tokio::test]
async fn a_300_megabyte_result_streams_through_without_pgmux_buffering_it() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let (client, baseline) = warmed_up(&pgmux).await;

    let params: [&str; 0] = [];
    let rows = client
        .query_raw(
            "select repeat('x', 1000) from generate_series(1, 300000)",
            params,
        )
        .await
        .unwrap();
    pin_mut!(rows);
    let (mut count, mut bytes) = (0u64, 0u64);
    // Consumed row by row: the test itself never holds more than one row.
    while let Some(row) = rows.try_next().await.unwrap() {
        let value: &str = row.get(0);
        count += 1;
        bytes += value.len() as u64;
    }
    assert_eq!((count, bytes), (300_000, 300_000_000));

    let peak = peak_rss(pgmux.pid());
    eprintln!(
        "pgmux VmHWM: baseline {} KiB, after 300 MB result {} KiB",
        baseline / 1024,
        peak / 1024
    );
    // A pooler that gathered the result (or let its buffer grow with it) would need
    // hundreds of MB; bounded streaming needs a few socket buffers.
    assert!(
        peak < 64 * MB,
        "pgmux peak RSS {} MiB while streaming 300 MB",
        peak / MB
    );
    assert!(
        peak - baseline < 40 * MB,
        "pgmux peak RSS grew by {} MiB",
        (peak - baseline) / MB
    );
    assert_eq!(
        client
            .query_one("select 2", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        2
    );
}

#[tokio::test]
async fn a_single_50_megabyte_value_arrives_intact_without_pgmux_holding_it_whole() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let (client, baseline) = warmed_up(&pgmux).await;

    let row = client
        .query_one("select repeat('y', 50000000)", &[])
        .await
        .unwrap();
    let value: &str = row.get(0);
    assert_eq!(value.len(), 50_000_000);
    assert!(
        value.bytes().all(|b| b == b'y'),
        "the value was corrupted on the way"
    );
    drop(row);

    let peak = peak_rss(pgmux.pid());
    eprintln!(
        "pgmux VmHWM: baseline {} KiB, after one 50 MB DataRow {} KiB",
        baseline / 1024,
        peak / 1024
    );
    // Holding the whole message would need 50 MB on top of the baseline.
    assert!(
        peak - baseline < 40 * MB,
        "pgmux peak RSS grew by {} MiB for one 50 MB row",
        (peak - baseline) / MB
    );
}

#[tokio::test]
async fn a_20_megabyte_bind_parameter_reaches_the_server_intact() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let (client, baseline) = warmed_up(&pgmux).await;
    let table = harness::unique_name("big_param");
    client
        .batch_execute(&format!("create table {table} (body text)"))
        .await
        .unwrap();

    // Not all one letter, so truncation or reordering would make the comparison fail.
    let value: String = (0..20_000_000u32)
        .map(|i| (b'a' + (i % 23) as u8) as char)
        .collect();
    let inserted = client
        .execute(&format!("insert into {table} values ($1)"), &[&value])
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    // Sent a second time (another 20 MB Bind) to compare on the server side.
    let row = client
        .query_one(
            &format!("select length(body), body = $1 from {table}"),
            &[&value],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 20_000_000);
    assert!(
        row.get::<_, bool>(1),
        "the stored value differs from the one sent"
    );

    let peak = peak_rss(pgmux.pid());
    eprintln!(
        "pgmux VmHWM: baseline {} KiB, after two 20 MB Bind messages {} KiB",
        baseline / 1024,
        peak / 1024
    );
    // Holding the whole Bind would need 20 MB; a relay needs a few socket buffers.
    assert!(
        peak - baseline < 16 * MB,
        "pgmux peak RSS grew by {} MiB for a 20 MB Bind",
        (peak - baseline) / MB
    );
    client
        .batch_execute(&format!("drop table {table}"))
        .await
        .unwrap();
}
