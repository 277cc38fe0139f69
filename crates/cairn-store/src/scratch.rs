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
    dropped: bool,
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
            // Straight to stderr: the test harness captures `eprintln!` of passing
            // tests, and a skip must be seen.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
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
            dropped: false,
        })
    }

    fn drop_statement(&self) -> String {
        match self.engine {
            Engine::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Engine::MySql => format!("DROP DATABASE IF EXISTS {}", self.name),
        }
    }

    /// Drops the database.
    pub async fn drop_database(mut self) {
        self.dropped = true;
        if let Err(e) = execute(self.engine, &self.admin_url, &self.drop_statement()).await {
            eprintln!("could not drop scratch database {}: {e}", self.name);
        }
    }

    /// Ends every connection to the database from the server's side, as a server that
    /// shuts down does (PostgreSQL's `57P01`, MySQL's killed connection).
    pub async fn terminate_connections(&self) -> Result<(), sqlx::Error> {
        match self.engine {
            Engine::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.admin_url).await?;
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&self.name)
                .execute(&mut conn)
                .await?;
                conn.close().await
            }
            Engine::MySql => {
                let mut conn = sqlx::MySqlConnection::connect(&self.admin_url).await?;
                // Cast: MariaDB reports this column as signed or unsigned depending on
                // the plan, and the decode must not depend on it.
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
                     WHERE db = ? AND id <> CONNECTION_ID()",
                )
                .bind(&self.name)
                .fetch_all(&mut conn)
                .await?;
                for id in ids {
                    // Gone already is fine: it was ending anyway.
                    let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}"))
                        .execute(&mut conn)
                        .await;
                }
                conn.close().await
            }
        }
    }
}

/// A test that fails before `drop_database` still removes its database: on a thread
/// of its own, since a drop cannot wait on the test's runtime.
impl Drop for Scratch {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (engine, url, statement) = (self.engine, self.admin_url.clone(), self.drop_statement());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(execute(engine, &url, &statement)).ok()
        });
        let _ = cleanup.join();
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
