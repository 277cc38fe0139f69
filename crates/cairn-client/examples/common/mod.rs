//! What the examples share: a client for the server the environment names.

use cairn_client::Client;

/// A client for `CAIRN_URL` (default `http://127.0.0.1:8848`), logging in as
/// `CAIRN_USERNAME` (default `admin`) with `CAIRN_PASSWORD`, keeping snapshots under
/// `target/example-snapshots`.
pub fn connect() -> Result<Client, Box<dyn std::error::Error>> {
    let url = std::env::var("CAIRN_URL").unwrap_or_else(|_| "http://127.0.0.1:8848".into());
    let username = std::env::var("CAIRN_USERNAME").unwrap_or_else(|_| "admin".into());
    let password = std::env::var("CAIRN_PASSWORD")
        .map_err(|_| "set CAIRN_PASSWORD to the password the server printed on its first start")?;
    Ok(Client::builder(url)
        .credentials(username, password)
        .snapshot_dir("target/example-snapshots")
        .build()?)
}
