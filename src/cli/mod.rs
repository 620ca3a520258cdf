//! The operator commands that talk to running nodes over their HTTP API:
//! `flashgate promote` and `flashgate switchover`, and what they share with
//! each other and with `flashgate demo`.
//!
//! # Layout
//! - `node_url`: `NodeUrl`, a node's HTTP base URL, checked when parsed.
//! - `duration`: `parse_duration` for flags such as `--timeout 30s`, and
//!   `show_duration` for output.
//! - `cluster`: `ClusterStatus` (`GET /v1/cluster`), `Promoted`, `HandedOver`:
//!   the answers, parsed; no I/O.
//! - `admin`: `AdminClient`, the blocking HTTP calls, and `CallError`, which
//!   says which node refused what, and why.
//! - `promote`: `flashgate promote`.
//! - `switchover`: `flashgate switchover`, a planned handover in four steps.
//! - `status`: `flashgate status`, one node's state for a terminal.
//! - `backup`: `flashgate backup` (a consistent backup of a running node)
//!   and `flashgate backup verify`; `backup_files`: a backup directory's
//!   files and manifest, checked and loaded into a data dir; `restore`:
//!   `flashgate restore`.

pub mod admin;
pub mod backup;
pub mod backup_files;
pub mod cluster;
pub mod duration;
pub mod node_url;
pub mod promote;
pub mod restore;
pub mod status;
pub mod switchover;

/// `--token` (or `FLASHGATE_ADMIN_TOKEN`): the token the operator commands
/// send to the nodes. `promote` and `switchover` need the admin token (the
/// same on both nodes of a pair); `status` needs an operator or admin token.
#[derive(Debug, clap::Args)]
pub struct TokenArg {
    /// The nodes' admin token (for `status`, an operator token is enough).
    #[arg(
        long = "token",
        value_name = "TOKEN",
        env = "FLASHGATE_ADMIN_TOKEN",
        hide_env_values = true,
        value_parser = parse_admin_token
    )]
    pub token: String,
}

/// Checks an admin token given on the command line: it goes into an HTTP
/// header, so it must be printable ASCII without spaces.
pub fn parse_admin_token(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the admin token is empty; give the node's token (flashgate serve --admin-token, or <data dir>/admin-token)".into());
    }
    if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err("the admin token must be printable ASCII without spaces; check for a stray newline or quote".into());
    }
    Ok(text.to_owned())
}

/// What an operator should do about a refusal with `code`, when flashgate's
/// own detail cannot know it (it does not know which command was run).
pub fn hint(code: &str) -> Option<&'static str> {
    match code {
        "unauthorized" | "forbidden" => Some(
            "pass the node's admin token with --token or FLASHGATE_ADMIN_TOKEN \
             (a node started without one stores it in <data dir>/admin-token)",
        ),
        "not_standby" => Some(
            "GET /v1/cluster on the node shows its role and, when it knows it, the current primary",
        ),
        "no_standby" => Some(
            "the primary has no connected standby: start one with \
             `flashgate serve --role standby --follow <the primary's replication address>` \
             and wait until the primary's GET /v1/cluster shows peer.connected",
        ),
        "not_primary" => {
            Some("the node is not the primary; GET /v1/cluster on it names the current primary")
        }
        "not_found" => Some(
            "the node does not know this endpoint: it may run a flashgate without replication; \
             check `flashgate --version` on it",
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_token_must_fit_in_a_header() {
        assert_eq!(parse_admin_token("s3cret-token"), Ok("s3cret-token".into()));
        assert!(parse_admin_token("").unwrap_err().contains("empty"));
        assert!(parse_admin_token("token\n")
            .unwrap_err()
            .contains("newline"));
        assert!(parse_admin_token("two words").is_err());
        assert!(parse_admin_token("jeton-été").is_err());
    }

    #[test]
    fn refusals_an_operator_can_fix_come_with_a_hint() {
        for code in [
            "unauthorized",
            "forbidden",
            "not_standby",
            "no_standby",
            "not_primary",
        ] {
            assert!(hint(code).is_some(), "{code}");
        }
        assert_eq!(hint("sold_out"), None);
    }
}
