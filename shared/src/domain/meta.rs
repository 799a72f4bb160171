//! Meta (WhatsApp, Messenger, Instagram) webhook rules that need no I/O.

use subtle::ConstantTimeEq;

use crate::Error;

/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE_LEN: usize = 1024;

/// The subscription handshake: Meta calls `GET` with `hub.mode=subscribe`, the verify token
/// configured in the app dashboard and a challenge to echo.
///
/// Returns the challenge to answer with (200, plain text). A wrong mode or token is a 403;
/// the token comparison takes the same time wherever the first difference is.
pub fn verify_subscription(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected_token: &str,
) -> Result<String, Error> {
    let token_ok = verify_token
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected_token.as_bytes())));
    if mode != Some("subscribe") || !token_ok {
        return Err(Error::Forbidden(
            "hub.mode must be subscribe and hub.verify_token must match".into(),
        ));
    }
    match challenge {
        Some(c) if !c.is_empty() && c.len() <= MAX_CHALLENGE_LEN => Ok(c.to_owned()),
        _ => Err(Error::bad_request(
            "invalid_challenge",
            "hub.challenge is missing or too long",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_handshake_echoes_the_challenge() {
        let got = verify_subscription(Some("subscribe"), Some("tok"), Some("1158201444"), "tok");
        assert_eq!(got.unwrap(), "1158201444");
    }

    #[test]
    fn wrong_token_or_mode_is_forbidden() {
        for (mode, token) in [
            (Some("subscribe"), Some("nope")),
            (Some("subscribe"), None),
            (Some("unsubscribe"), Some("tok")),
            (None, Some("tok")),
            (Some("subscribe"), Some("to")),
        ] {
            let err = verify_subscription(mode, token, Some("1"), "tok").unwrap_err();
            assert_eq!(err.code(), "forbidden");
        }
    }

    #[test]
    fn missing_challenge_is_a_bad_request() {
        let err = verify_subscription(Some("subscribe"), Some("tok"), None, "tok").unwrap_err();
        assert_eq!(err.code(), "invalid_challenge");
    }
}
