//! Session-level settings made with SQL in transaction mode: they follow their client to
//! whichever server runs its next transaction and never reach another client.

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::harness::{self, pgmux};

async fn show(client: &Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("").to_owned()),
            _ => None,
        })
        .expect("one row")
}

/// search_path, statement_timeout, work_mem, TimeZone, a custom app.* setting and the role.
/// (A reset custom setting reads as empty rather than NULL once a backend has seen it.)
const PROBE: &str = "select concat_ws('|', current_setting('search_path'), current_setting('statement_timeout'), \
     current_setting('work_mem'), current_setting('TimeZone'), coalesce(current_setting('app.tenant', true), ''), current_user)";

#[tokio::test]
async fn settings_follow_their_client_and_never_reach_another() {
    let _guard = harness::shared();
    let role = harness::unique_name("acting_role");
    let superuser = harness::postgres().superuser().await;
    superuser
        .batch_execute(&format!("create role {role}; grant {role} to app"))
        .await
        .unwrap();
    let pgmux = pgmux().setting("default_pool_size", "1").start().await;
    let setter = pgmux.app().await;
    let bystander = pgmux.app().await;
    let defaults = show(&bystander, PROBE).await;

    setter
        .batch_execute(&format!(
            "set search_path = pg_catalog, public; set statement_timeout = '1234ms'; \
             set work_mem = '3MB'; set timezone = 'Asia/Tokyo'; set app.tenant = '42'; set role {role}"
        ))
        .await
        .unwrap();
    let wanted = format!("pg_catalog, public|1234ms|3MB|Asia/Tokyo|42|{role}");
    // One server: each turn, the server must be switched to the other client's settings.
    for _ in 0..5 {
        assert_eq!(show(&setter, PROBE).await, wanted);
        assert_eq!(
            show(&bystander, PROBE).await,
            defaults,
            "settings leaked to another client"
        );
    }

    setter
        .batch_execute("reset work_mem; reset role")
        .await
        .unwrap();
    let after_reset = show(&setter, PROBE).await;
    assert!(
        after_reset.contains("|4MB|") && after_reset.ends_with("|app"),
        "{after_reset}"
    );
    assert_eq!(show(&bystander, PROBE).await, defaults);
}

#[tokio::test]
async fn set_config_sticks_and_set_local_does_not() {
    let _guard = harness::shared();
    let pgmux = pgmux().setting("default_pool_size", "2").start().await;
    let client = pgmux.app().await;
    let others: Vec<Client> = futures_util::future::join_all((0..3).map(|_| pgmux.app())).await;
    client
        .simple_query("select set_config('app.tenant', 'seven', false)")
        .await
        .unwrap();
    client
        .batch_execute("begin; set local work_mem = '9MB'; commit")
        .await
        .unwrap();
    for round in 0..6 {
        // Other clients keep both servers busy in turn, so the client moves around.
        for other in &others {
            assert_eq!(
                show(other, "select current_setting('app.tenant', true)").await,
                "",
                "round {round}"
            );
        }
        assert_eq!(
            show(&client, "select current_setting('app.tenant', true)").await,
            "seven"
        );
        assert_eq!(
            show(&client, "show work_mem").await,
            "4MB",
            "SET LOCAL ended with its transaction"
        );
    }
}
