//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! migration directories at compile time, and cargo would not otherwise notice a new
//! `.sql` file.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
