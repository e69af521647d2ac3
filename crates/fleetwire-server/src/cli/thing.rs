//! `fleetwire-server thing …`: the operator's view of things. Changes act with an
//! administrator's authority and are logged with `via = cli`.

use clap::Subcommand;

use crate::config::Config;
use crate::service::things::{Things, parse_mode};
use crate::store::Store;
use crate::store::things::mode_name;
use crate::util::term::{escape, escape_json};

#[derive(Subcommand)]
pub(crate) enum ThingCommand {
    /// Create a thing and print its code (the first user to connect with it is administrator).
    Create {
        /// open (the code is enough), confirm (an administrator approves) or invite (invited
        /// users only).
        #[arg(long, value_parser = ["open", "confirm", "invite"])]
        mode: String,
        /// A name for the operator's lists.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List every thing.
    List,
    /// Show a thing's members, pending requests and invites.
    Show {
        /// The thing's code (or its `t_…` id).
        code: String,
    },
    /// Revoke a user's access at once (they are blocked until invited again).
    Revoke {
        /// The thing's code (or its `t_…` id).
        code: String,
        /// The user to revoke.
        user: String,
    },
    /// Replace a thing's code; the old one stops working at once and is never reissued.
    Rotate {
        /// The thing's current code (or its `t_…` id).
        code: String,
    },
}

pub(crate) async fn run(cmd: ThingCommand, config: &Config, store: &Store) -> Result<(), String> {
    let things = Things::new(&config.things, &config.accounts, store.clone())?;
    let now = fleetwire_codes::UnixTime::from_millis(crate::util::clock::unix_millis());
    let fail = |e: crate::service::things::OpError| e.to_string();
    match cmd {
        ThingCommand::Create { mode, name } => {
            let mode = parse_mode(&mode)?;
            let made = things
                .operator_create(now, mode, name)
                .await
                .map_err(fail)?;
            println!("thing id: {}", made.id);
            println!("mode: {}", mode_name(mode));
            println!("code: {}", made.code);
            println!("The first user to connect with this code becomes its administrator.");
        }
        ThingCommand::List => {
            let list = things.operator_list().await.map_err(fail)?;
            println!("{} things", list.len());
            for t in list {
                println!(
                    "{}  {}  {:<7}  members {:>3}  admins {:>2}  pending {:>2}  invites {:>2}  {}",
                    t.id,
                    t.code,
                    mode_name(t.mode),
                    t.members,
                    t.administrators,
                    t.pending,
                    t.invites,
                    escape(&t.name)
                );
            }
        }
        ThingCommand::Show { code } => {
            let view = things.operator_show(&code).await.map_err(fail)?;
            let json = serde_json::to_string_pretty(&crate::api::things::view_json(&view))
                .map_err(|e| e.to_string())?;
            println!("{}", escape_json(&json));
        }
        ThingCommand::Revoke { code, user } => {
            let id = things
                .operator_revoke(now, &code, &user)
                .await
                .map_err(fail)?;
            println!(
                "{} revoked from {id}; they are blocked until invited again",
                escape(&user)
            );
        }
        ThingCommand::Rotate { code } => {
            let (id, code) = things.operator_rotate(now, &code).await.map_err(fail)?;
            println!("thing id: {id}");
            println!("new code: {code}");
            println!("The old code no longer works.");
        }
    }
    Ok(())
}
