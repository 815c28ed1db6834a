//! Checks on names and texts that users choose; each returns a message a
//! person can act on.

use crate::error::ApiError;
use hallway_shared::protocol::{MAX_DISPLAY_NAME_CHARS, MAX_STATUS_TEXT_CHARS};

/// Trims and checks a display name.
pub fn display_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_DISPLAY_NAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "a display name has 1 to {MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a display name cannot contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

pub fn username(name: &str) -> Result<String, ApiError> {
    let ok_len = (3..=32).contains(&name.len());
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_len || !ok_chars {
        return Err(ApiError::BadRequest(
            "a username has 3 to 32 letters, digits, '_', '.' or '-'".into(),
        ));
    }
    Ok(name.to_owned())
}

pub fn password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if !(8..=256).contains(&chars) {
        return Err(ApiError::BadRequest(
            "a password has 8 to 256 characters".into(),
        ));
    }
    Ok(())
}

pub fn space_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > 60 || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a space name has 1 to 60 characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// Channel names are lower-case words joined by '-' or '_', like Slack's.
pub fn channel_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim().trim_start_matches('#').to_lowercase();
    let ok_len = (1..=40).contains(&name.chars().count());
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_'));
    if !ok_len || !ok_chars {
        return Err(ApiError::BadRequest(
            "a channel name has 1 to 40 letters, digits, '-' or '_'".into(),
        ));
    }
    Ok(name)
}

pub fn status_text(text: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_STATUS_TEXT_CHARS || text.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a status text has at most {MAX_STATUS_TEXT_CHARS} characters"
        )));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(display_name("  Ann ").unwrap(), "Ann");
        assert!(display_name("").is_err());
        assert!(display_name("a\u{7}b").is_err());
        assert!(display_name(&"x".repeat(41)).is_err());
        assert!(username("ann_1").is_ok());
        assert!(username("an").is_err());
        assert!(username("ann smith").is_err());
        assert!(password("short").is_err());
        assert_eq!(channel_name("#Design").unwrap(), "design");
        assert!(channel_name("two words").is_err());
        assert_eq!(status_text(Some("  ")).unwrap(), None);
    }
}
