//! Rebuilds the kernel when a migration is added or changed: `sqlx::migrate!` embeds the migration folders at
//! compile time but, on stable Rust, does not tell cargo to watch them.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
