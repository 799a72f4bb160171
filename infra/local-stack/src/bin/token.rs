//! `make token`: prints a local agent JWT (HS256, signed with DEV_JWT_SECRET).
//!
//! Usage: token [--tenant T] [--role agent|admin] [--sub AGENT] [--ttl SECONDS]

use local_stack::BoxError;
use local_stack::token::{AgentClaims, mint};

fn main() -> Result<(), BoxError> {
    let mut tenant = "acme".to_owned();
    let mut role = "admin".to_owned();
    let mut sub = "agent-1".to_owned();
    let mut ttl: i64 = 12 * 3600;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tenant" => tenant = value,
            "--role" => role = value,
            "--sub" => sub = value,
            "--ttl" => ttl = value.parse().map_err(|_| "--ttl takes seconds")?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let secret = std::env::var("DEV_JWT_SECRET").unwrap_or_else(|_| "dev-jwt-secret".to_owned());
    println!(
        "{}",
        mint(&secret, &AgentClaims::new(&tenant, &role, &sub, ttl))?
    );
    Ok(())
}
