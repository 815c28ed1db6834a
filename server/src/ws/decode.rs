//! Turns one text frame into a [`ClientMessage`], or into the error its sender
//! gets: pure, so that any input can be thrown at it in tests.

use hallway_shared::protocol::{ClientMessage, ErrorCode};

/// The `type`s a client may send, to tell "unknown type" from "bad fields".
const CLIENT_TYPES: &[&str] = &["join", "move", "chat_send", "signal", "set_status", "leave"];

/// Why a frame was refused, as sent back in an `error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejected {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Parses a frame: `malformed` if it is not a JSON object with a string
/// `type`, `unknown_type` for a type no client sends, `bad_request` when the
/// fields do not fit the type.
pub fn decode(text: &str) -> Result<ClientMessage, Rejected> {
    let typed_error = match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    let value = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => v,
        Err(e) => return Err(Rejected::new(ErrorCode::Malformed, not_json(text, &e))),
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => Err(Rejected::new(
            ErrorCode::Malformed,
            "expected a JSON object with a string \"type\"",
        )),
        Some(t) if !CLIENT_TYPES.contains(&t) => Err(Rejected::new(
            ErrorCode::UnknownType,
            format!("unknown message type {t:?}"),
        )),
        Some(t) => Err(Rejected::new(
            ErrorCode::BadRequest,
            format!("invalid {t:?} message: {typed_error}"),
        )),
    }
}

/// The message for a frame that is not JSON we can read. For an unpaired
/// UTF-16 surrogate (`"\ud800"`) serde_json speaks of a "hex escape", which
/// sends the reader looking in the wrong place; say what is wrong instead.
fn not_json(text: &str, e: &serde_json::Error) -> String {
    match unpaired_surrogate(text) {
        Some(escape) => format!(
            "not valid JSON: \\u{escape:04x} is an unpaired UTF-16 surrogate (line {} \
             column {}); strings must be Unicode: escape characters outside the Basic \
             Multilingual Plane as a surrogate pair, or send them as UTF-8",
            e.line(),
            e.column()
        ),
        None => format!("not valid JSON: {e}"),
    }
}

/// The first `\uXXXX` escape in `text` that is half of a surrogate pair
/// without its other half.
fn unpaired_surrogate(text: &str) -> Option<u16> {
    let bytes = text.as_bytes();
    let escape_at = |i: usize| -> Option<u16> {
        let hex = bytes.get(i..i.checked_add(6)?)?;
        if hex.first() != Some(&b'\\') || hex.get(1) != Some(&b'u') {
            return None;
        }
        u16::from_str_radix(std::str::from_utf8(hex.get(2..)?).ok()?, 16).ok()
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes.get(i) != Some(&b'\\') {
            i += 1;
            continue;
        }
        match escape_at(i) {
            Some(high @ 0xD800..=0xDBFF) => match i.checked_add(6).and_then(escape_at) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => return Some(high),
            },
            Some(low @ 0xDC00..=0xDFFF) => return Some(low),
            Some(_) => i += 6,
            // Any other escape is two bytes; skipping both keeps `\\u` apart.
            None => i += 2,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn each_kind_of_bad_frame_gets_its_code() {
        let code = |t: &str| decode(t).err().map(|r| r.code);
        assert_eq!(code("{"), Some(ErrorCode::Malformed));
        assert_eq!(code("[1]"), Some(ErrorCode::Malformed));
        assert_eq!(code(r#"{"type":"dance"}"#), Some(ErrorCode::UnknownType));
        assert_eq!(
            code(r#"{"type":"move","x":1}"#),
            Some(ErrorCode::BadRequest)
        );
        assert_eq!(code(r#"{"type":"leave"}"#), None);
    }

    #[test]
    fn a_lone_surrogate_is_named_as_such() {
        for text in [
            r#"{"type":"chat_send","channel_id":1,"client_msg_id":"a","body":"\ud800"}"#,
            r#"{"type":"chat_send","channel_id":1,"client_msg_id":"a","body":"\udc00x"}"#,
        ] {
            let r = decode(text).unwrap_err();
            assert_eq!(r.code, ErrorCode::Malformed, "{text}");
            assert!(r.message.contains("surrogate"), "{}", r.message);
            assert!(!r.message.contains("hex escape"), "{}", r.message);
        }
        assert_eq!(
            unpaired_surrogate(r#""\\ud800""#),
            None,
            "an escaped backslash"
        );
        assert_eq!(unpaired_surrogate(r#""\ud83d\ude00 \udfff""#), Some(0xdfff));
        // A proper pair is a character like any other.
        let pair =
            r#"{"type":"chat_send","channel_id":1,"client_msg_id":"a","body":"\ud83d\ude00"}"#;
        assert!(matches!(
            decode(pair),
            Ok(ClientMessage::ChatSend { body, .. }) if body == "\u{1F600}"
        ));
    }

    proptest! {
        /// Whatever arrives, the decoder answers without panicking.
        #[test]
        fn any_text_is_decoded_or_refused(text in any::<String>()) {
            let _ = decode(&text);
        }

        /// Frames that look like client messages, with any values in them.
        #[test]
        fn any_shaped_frame_is_decoded_or_refused(
            ty in prop_oneof![Just("join"), Just("move"), Just("chat_send"), Just("signal"),
                              Just("set_status"), Just("leave"), Just("x")],
            x in any::<i64>(),
            y in any::<f64>(),
            s in any::<String>(),
        ) {
            let frame = serde_json::json!({
                "type": ty, "x": x, "y": y, "space_id": x, "to": x, "channel_id": y,
                "facing": s, "status": s, "text": s, "body": s, "client_msg_id": s,
                "payload": {"kind": s},
            });
            let _ = decode(&frame.to_string());
        }
    }
}
