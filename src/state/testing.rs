//! Test support (not part of the gateway): a fresh PostgreSQL database per test run.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection as _, Executor as _, PgConnection, Row as _};

/// Where the tests look for PostgreSQL (trust authentication, database `test`), unless
/// `VCGUARD_TEST_POSTGRES` names another `host:port`.
const SERVER: &str = "127.0.0.1:5432";
/// Databases of earlier runs older than this many seconds are dropped.
const LEFTOVER_SECS: u64 = 3600;

/// A fresh database's URL on the local PostgreSQL. When it is not reachable this prints
/// `SKIPPED: PostgreSQL not reachable …` and returns `None`, unless `VCGUARD_REQUIRE_POSTGRES=1`,
/// when it panics.
pub async fn fresh_postgres_database() -> Option<String> {
    let required = std::env::var("VCGUARD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let server = std::env::var("VCGUARD_TEST_POSTGRES").unwrap_or_else(|_| SERVER.to_owned());
    let mut last_error = String::new();
    for user in ["postgres", "root"] {
        let admin_url = format!("postgres://{user}@{server}/test");
        let mut conn = match PgConnection::connect(&admin_url).await {
            Ok(conn) => conn,
            Err(err) => {
                last_error = format!("{admin_url}: {err}");
                continue;
            }
        };
        drop_leftovers(&mut conn).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("vcguard_test_{now}_{}", &suffix[..8]);
        match conn
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
        {
            Ok(_) => return Some(format!("postgres://{user}@{server}/{name}")),
            Err(err) => last_error = format!("CREATE DATABASE as {user}: {err}"),
        }
    }
    if required {
        panic!("VCGUARD_REQUIRE_POSTGRES=1 but PostgreSQL is not usable: {last_error}");
    }
    println!(
        "SKIPPED: PostgreSQL not reachable at {server} ({last_error}); set VCGUARD_REQUIRE_POSTGRES=1 to make this a failure"
    );
    None
}

/// Drops the databases of earlier runs (best effort).
async fn drop_leftovers(conn: &mut PgConnection) {
    let Ok(rows) =
        sqlx::query("SELECT datname FROM pg_database WHERE datname LIKE 'vcguard_test_%'")
            .fetch_all(&mut *conn)
            .await
    else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for row in rows {
        let Ok(name) = row.try_get::<String, _>("datname") else {
            continue;
        };
        let created = name
            .trim_start_matches("vcguard_test_")
            .split('_')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(now);
        if now.saturating_sub(created) > LEFTOVER_SECS {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}
