//! Client authentication: where the client's token is found, and what never goes upstream.
//!
//! OpenAI clients send `Authorization: Bearer <token>`; Google's SDKs send their "API key"
//! as `x-goog-api-key` or `?key=`, so native requests accept all three. The token is then
//! looked up in the config store `auth_tokens` (a keyed lookup: no byte-by-byte comparison
//! happens in our code, so nothing here can exit early on a matching prefix).
//!
//! **Roles: admin wins.** A token may be listed as a client and as an admin. Wherever the role
//! changes what the caller gets (`/v1/status`, the key check), the admin list is asked first,
//! so such a token is an admin there, on both edges ([`lookup_order`], [`caller`]). On
//! Google's API both roles are served alike, so the client list is asked first (one lookup
//! for the common case) and the token is counted under its client label.

use crate::client::envelope::{Dialect, ErrorReply};
use crate::client::query::percent_decode;
use crate::client::route::Access;

/// The list a token was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `auth_tokens` (Workers: `VALID_AUTH_TOKENS`).
    Client,
    /// `admin_tokens` (Workers: `ADMIN_TOKENS`).
    Admin,
}

/// Who is calling: the label of their token, and whether it is an admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's label (usage counts, `/v1/status`).
    pub label: String,
    /// Found in the admin list.
    pub admin: bool,
}

/// The lists to look a token up in, in order: the first that knows it decides. Admin first
/// wherever the role changes the answer.
pub fn lookup_order(access: Access) -> [Role; 2] {
    match access {
        Access::Viewer | Access::Admin => [Role::Admin, Role::Client],
        Access::Anyone | Access::Client | Access::Upload => [Role::Client, Role::Admin],
    }
}

/// The caller, from the first list (in [`lookup_order`]) that holds the token and its label
/// there; or the 401 (unknown token) or 403 (a client token where an admin one is needed).
pub fn caller(access: Access, found: Option<(Role, String)>) -> Result<Caller, ErrorReply> {
    match found {
        None => Err(ErrorReply::invalid_token()),
        Some((Role::Client, _)) if access == Access::Admin => Err(ErrorReply::admin_required()),
        Some((role, label)) => Ok(Caller { label, admin: role == Role::Admin }),
    }
}

/// The credentials a request carried, as raw header / query values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// `Authorization` (OpenAI clients: `Bearer <token>`).
    pub authorization: Option<&'a str>,
    /// `x-goog-api-key` (Google's SDKs).
    pub goog_api_key: Option<&'a str>,
    /// `?key=` (Google's REST examples).
    pub query_key: Option<&'a str>,
    /// `x-api-key` (Anthropic's SDKs; read only where [`may_be_anthropic`](crate::client::route::may_be_anthropic)).
    pub api_key: Option<&'a str>,
}

/// The client token, or the 401 to answer with.
pub fn client_token(presented: Presented<'_>, dialect: Dialect) -> Result<String, ErrorReply> {
    let bearer = presented.authorization.and_then(bearer_token);
    let token = match dialect {
        Dialect::OpenAi => bearer,
        Dialect::Anthropic => presented.api_key.map(|t| t.trim().to_string()).or(bearer),
        Dialect::Google => presented
            .goog_api_key
            .map(|t| t.trim().to_string())
            .or_else(|| presented.query_key.map(percent_decode))
            .or(bearer),
    };
    match token {
        None => Err(ErrorReply::missing_token(dialect)),
        Some(t) if t.is_empty() => Err(ErrorReply::missing_token(dialect)),
        Some(t) if !plausible_token(&t) => Err(ErrorReply::invalid_token()),
        Some(t) => Ok(t),
    }
}

fn bearer_token(header: &str) -> Option<String> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// Tokens are 1–256 visible ASCII characters; anything else is refused without a lookup.
fn plausible_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether two tokens are equal, in time that depends only on their lengths (for an edge that
/// must compare tokens itself; Fastly looks them up in a config store instead).
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut differ = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        differ |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF);
    }
    differ == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presented<'a>(auth: Option<&'a str>, goog: Option<&'a str>, key: Option<&'a str>) -> Presented<'a> {
        Presented { authorization: auth, goog_api_key: goog, query_key: key, api_key: None }
    }

    #[test]
    fn openai_takes_only_bearer() {
        assert_eq!(client_token(presented(Some("Bearer tok-1"), None, None), Dialect::OpenAi), Ok("tok-1".into()));
        assert_eq!(client_token(presented(Some("bearer  tok-1 "), None, None), Dialect::OpenAi), Ok("tok-1".into()));
        let missing = client_token(presented(None, Some("tok"), None), Dialect::OpenAi).expect_err("401");
        assert_eq!((missing.status, missing.code.as_str()), (401, "missing_token"));
        assert!(client_token(presented(Some("Basic abc"), None, None), Dialect::OpenAi).is_err());
    }

    #[test]
    fn google_takes_header_query_or_bearer() {
        assert_eq!(client_token(presented(None, Some("t1"), None), Dialect::Google), Ok("t1".into()));
        assert_eq!(client_token(presented(None, None, Some("t%2D2")), Dialect::Google), Ok("t-2".into()));
        assert_eq!(client_token(presented(Some("Bearer t3"), None, None), Dialect::Google), Ok("t3".into()));
    }

    #[test]
    fn implausible_tokens_are_refused() {
        let long = "x".repeat(300);
        let e = client_token(presented(Some(&format!("Bearer {long}")), None, None), Dialect::OpenAi).expect_err("401");
        assert_eq!(e.code, "invalid_token");
        assert!(client_token(presented(None, None, Some("a%0Ab")), Dialect::Google).is_err());
    }

    #[test]
    fn admin_wins_where_the_role_matters() {
        // A token in both lists: the first list asked decides.
        let both = |access| {
            let first = lookup_order(access)[0];
            caller(access, Some((first, format!("{first:?}"))))
        };
        assert_eq!(both(Access::Viewer).map(|c| c.admin), Ok(true));
        assert_eq!(both(Access::Admin).map(|c| c.admin), Ok(true));
        assert_eq!(both(Access::Client).map(|c| c.label), Ok("Client".to_string()));
        assert_eq!(
            caller(Access::Admin, Some((Role::Client, "app".into()))).map_err(|e| e.code),
            Err("admin_required".into())
        );
        assert_eq!(caller(Access::Viewer, None).map_err(|e| e.code), Err("invalid_token".into()));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("tok-1", "tok-1"));
        assert!(!same_token("tok-1", "tok-2") && !same_token("tok", "tok-1") && !same_token("", "x"));
        assert!(same_token("", ""));
    }
}
