//! `tagger users`: accounts of the web workbench. Passwords come from a prompt, standard
//! input or a flag, and are stored only as argon2id hashes.

use crate::audit_trail;
use crate::cli::UsersCommand;
use crate::web::{hash_password, new_password_problem};
use anyhow::{Context, bail};
use datasets::store::prelude::*;
use datasets::{Actor, AnyStore, AuditAction, NewUser, Role, Username};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};

/// The shortest password `users add` accepts (the web form asks the same).
pub const MIN_PASSWORD_CHARS: usize = crate::web::MIN_PASSWORD_CHARS;

/// A random password for generated accounts (`tagger demo`): 16 characters from an
/// unambiguous alphabet, about 80 bits.
pub fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

fn read_password(flag: Option<String>, stdin: bool) -> anyhow::Result<String> {
    if let Some(password) = flag {
        return Ok(password);
    }
    let input = std::io::stdin();
    if stdin || !input.is_terminal() {
        let mut line = String::new();
        input
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    // Without a terminal library the prompt echoes; scripts should use --password-stdin.
    print!("password (shown as you type; use --password-stdin to avoid that): ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    input.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Creates an account, or with `replace` sets the password (and role) of an existing one.
pub async fn add_user(
    store: &AnyStore,
    username: &Username,
    role: Role,
    password: &str,
    replace: bool,
) -> anyhow::Result<datasets::User> {
    if let Some(problem) = new_password_problem(password) {
        bail!("{problem}");
    }
    let owned = password.to_string();
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await?
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    let cli = Actor::Cli(None);
    if replace && let Some(existing) = store.user_credentials(username).await? {
        let target = audit_trail::user_target(existing.user.id, existing.user.username.as_str());
        store
            .set_user_password(existing.user.id, &password_hash)
            .await?;
        let details = json!({ "sessions_ended": true });
        audit_trail::record(
            store,
            &cli,
            AuditAction::UserPassword,
            None,
            &*target,
            details,
        )
        .await;
        let user = store.set_user_role(existing.user.id, role).await?;
        if existing.user.role != user.role {
            let details = json!({ "role": user.role.as_str() });
            audit_trail::record(store, &cli, AuditAction::UserRole, None, target, details).await;
        }
        return Ok(user);
    }
    let user = store
        .create_user(&NewUser {
            username: username.clone(),
            role,
            password_hash,
        })
        .await?;
    audit_trail::record(
        store,
        &cli,
        AuditAction::UserCreate,
        None,
        audit_trail::user_target(user.id, user.username.as_str()),
        json!({ "role": user.role.as_str() }),
    )
    .await;
    Ok(user)
}

pub async fn run(store: &AnyStore, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add {
            username,
            role,
            password,
            password_stdin,
        } => {
            let username = Username::parse(&username)?;
            let role: Role = role.parse().map_err(anyhow::Error::msg)?;
            let password = read_password(password, password_stdin)?;
            let user = add_user(store, &username, role, &password, false).await?;
            println!("created user {} ({})", user.username, user.role);
        }
        UsersCommand::List => {
            println!("{:<32} {:<12} CREATED", "USERNAME", "ROLE");
            for user in store.users().await? {
                println!(
                    "{:<32} {:<12} {}",
                    user.username,
                    user.role,
                    user.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
    }
    Ok(())
}
