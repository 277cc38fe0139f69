//! Throw-away databases for tests: each test that needs PostgreSQL or MySQL gets a
//! database of its own on the server its `CAIRN_TEST_*_URL` names, and drops it after.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection as _;

/// Which server a scratch database lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MySql,
}

impl Engine {
    /// The environment variable that names the server for tests.
    pub fn env_var(self) -> &'static str {
        match self {
            Engine::Postgres => "CAIRN_TEST_POSTGRES_URL",
            Engine::MySql => "CAIRN_TEST_MYSQL_URL",
        }
    }
}

/// A database made for one test.
#[derive(Debug)]
pub struct Scratch {
    pub engine: Engine,
    /// URL of the scratch database itself.
    pub url: String,
    admin_url: String,
    name: String,
}

fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

impl Scratch {
    /// A fresh database on the engine's test server, or `None` (with a note on stderr)
    /// when its URL is not set.
    pub async fn create(engine: Engine) -> Option<Scratch> {
        let Ok(admin_url) = std::env::var(engine.env_var()) else {
            eprintln!(
                "{} is not set; skipping this {engine:?} test",
                engine.env_var()
            );
            return None;
        };
        Some(
            Self::create_at(engine, &admin_url)
                .await
                .unwrap_or_else(|e| panic!("{} is set but {e}", engine.env_var())),
        )
    }

    /// A fresh database on the server `admin_url` names.
    pub async fn create_at(engine: Engine, admin_url: &str) -> Result<Scratch, sqlx::Error> {
        let admin_url = admin_url.to_owned();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "cairn_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos % 100_000
        );
        execute(engine, &admin_url, &format!("CREATE DATABASE {name}")).await?;
        Ok(Scratch {
            engine,
            url: with_database(&admin_url, &name),
            admin_url,
            name,
        })
    }

    /// Drops the database.
    pub async fn drop_database(self) {
        let statement = match self.engine {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Engine::MySql => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        if let Err(e) = execute(self.engine, &self.admin_url, &statement).await {
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }
}

async fn execute(engine: Engine, url: &str, statement: &str) -> Result<(), sqlx::Error> {
    match engine {
        Engine::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::raw_sql(statement).execute(&mut conn).await?;
            conn.close().await
        }
        Engine::MySql => {
            let mut conn = sqlx::MySqlConnection::connect(url).await?;
            sqlx::raw_sql(statement).execute(&mut conn).await?;
            conn.close().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_replace_the_path() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(with_database("mysql://root@h", "x"), "mysql://root@h/x");
        assert_eq!(
            with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
    }
}
