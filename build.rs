//! `sqlx::migrate!` embeds the migration files at compile time, but cargo
//! does not know it reads them: without this, a new or edited migration is
//! silently left out of an incremental build (as sqlx's own docs warn).

fn main() {
    println!("cargo:rerun-if-changed=src/store/migrations");
}
