//! Chat text commands: `/me`, `/nick`, `/status` and friends. Anything else
//! starting with `/` is an unknown command; `//` escapes a leading slash.

use hallway_shared::protocol::{MessageKind, Status};

#[derive(Debug, PartialEq)]
pub enum ChatInput {
    Message(MessageKind, String),
    Nick(String),
    Status(Status, Option<String>),
    /// A known command used wrongly: how to use it.
    Usage(&'static str),
    Unknown(String),
}

pub const HELP: &str = "commands: /me ACTION, /nick NAME, /status available|busy|away [TEXT], /away [TEXT], /busy [TEXT], /back; start with // to send a leading /";

pub fn parse(body: &str) -> ChatInput {
    let body = body.trim();
    if let Some(rest) = body.strip_prefix("//") {
        return ChatInput::Message(MessageKind::Text, format!("/{rest}"));
    }
    let Some(command) = body.strip_prefix('/') else {
        return ChatInput::Message(MessageKind::Text, body.to_owned());
    };
    let (name, arg) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    let arg = arg.trim();
    let text = (!arg.is_empty()).then(|| arg.to_owned());
    match name.to_ascii_lowercase().as_str() {
        "me" if arg.is_empty() => ChatInput::Usage("usage: /me ACTION"),
        "me" => ChatInput::Message(MessageKind::Me, arg.to_owned()),
        "nick" | "name" if arg.is_empty() => ChatInput::Usage("usage: /nick NAME"),
        "nick" | "name" => ChatInput::Nick(arg.to_owned()),
        "status" => {
            let (word, rest) = arg.split_once(char::is_whitespace).unwrap_or((arg, ""));
            match Status::parse(word) {
                Some(s) => {
                    ChatInput::Status(s, (!rest.trim().is_empty()).then(|| rest.trim().to_owned()))
                }
                None => ChatInput::Usage("usage: /status available|busy|away [TEXT]"),
            }
        }
        "away" | "afk" => ChatInput::Status(Status::Away, text),
        "busy" | "dnd" => ChatInput::Status(Status::Busy, text),
        "back" | "available" => ChatInput::Status(Status::Available, text),
        _ => ChatInput::Unknown(name.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse("hi"),
            ChatInput::Message(MessageKind::Text, "hi".into())
        );
        assert_eq!(
            parse("/me waves"),
            ChatInput::Message(MessageKind::Me, "waves".into())
        );
        assert_eq!(
            parse("//etc"),
            ChatInput::Message(MessageKind::Text, "/etc".into())
        );
        assert_eq!(parse("/nick  Bob B "), ChatInput::Nick("Bob B".into()));
        assert_eq!(
            parse("/status busy in a call"),
            ChatInput::Status(Status::Busy, Some("in a call".into()))
        );
        assert_eq!(parse("/away"), ChatInput::Status(Status::Away, None));
        assert!(matches!(parse("/status sleepy"), ChatInput::Usage(_)));
        assert!(matches!(parse("/me"), ChatInput::Usage(_)));
        assert!(matches!(parse("/nick "), ChatInput::Usage(_)));
        assert_eq!(parse("/dance"), ChatInput::Unknown("dance".into()));
    }
}
