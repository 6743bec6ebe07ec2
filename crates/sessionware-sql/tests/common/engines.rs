//! Every reachable engine behind one type, each with a migrated table of its own and raw
//! access to it.

use sessionware_core::time::{Duration, OffsetDateTime};
use sessionware_core::{Data, ManualClock, Record, SessionId};
use sessionware_sql::SqlStore;

use super::{TempDb, drop_mysql, drop_pg, mysql, pg, unique_table};

/// Raw access to the table behind a store, for checks the store API does not offer.
pub enum Raw {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
    /// The database file lives as long as the engine.
    Lite(sqlx::SqlitePool, #[allow(dead_code)] TempDb),
}

pub struct Engine {
    pub name: &'static str,
    pub store: SqlStore,
    pub raw: Raw,
    pub table: String,
}

impl Engine {
    pub async fn count(&self) -> i64 {
        let t = &self.table;
        match &self.raw {
            Raw::Pg(p) => sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{t}\""))
                .fetch_one(p)
                .await
                .unwrap(),
            Raw::My(p) => sqlx::query_scalar(&format!("SELECT COUNT(*) FROM `{t}`"))
                .fetch_one(p)
                .await
                .unwrap(),
            Raw::Lite(p, _) => sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{t}\""))
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }

    pub async fn drop_table(self) {
        match &self.raw {
            Raw::Pg(p) => drop_pg(p, &self.table).await,
            Raw::My(p) => drop_mysql(p, &self.table).await,
            Raw::Lite(..) => {}
        }
    }
}

/// Every engine that is reachable, each with a migrated table of its own.
pub async fn engines(test: &str, clock: Option<ManualClock>) -> Vec<Engine> {
    let mut out = Vec::new();
    let with_clock = |s: SqlStore| match &clock {
        Some(c) => s.with_clock(c.clone()),
        None => s,
    };
    if let Some((store, pool, table)) = pg(test).await {
        out.push(Engine {
            name: "postgres",
            store: with_clock(store),
            raw: Raw::Pg(pool),
            table,
        });
    }
    if let Some((store, pool, table)) = mysql(test).await {
        out.push(Engine {
            name: "mariadb",
            store: with_clock(store),
            raw: Raw::My(pool),
            table,
        });
    }
    let db = TempDb::new(test);
    let store = SqlStore::connect(&db.url()).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&db.url()).await.unwrap();
    let table = unique_table(test);
    let store = with_clock(store.with_table(&table).unwrap());
    store.migrate().await.unwrap();
    out.push(Engine {
        name: "sqlite",
        store,
        raw: Raw::Lite(pool, db),
        table,
    });
    out
}

pub fn record(now: OffsetDateTime, lives: Duration, data: serde_json::Value) -> Record {
    Record {
        id: SessionId::generate().unwrap(),
        data: match data {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => Data::new(),
        },
        user: None,
        created_at: now,
        expires_at: now + lives,
    }
}
